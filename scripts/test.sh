#!/usr/bin/env bash
# Runs every test of the project. Installs what a fresh machine lacks first (rustup components
# and targets, QEMU, curl, cargo-fuzz, a Python venv, the MCP conformance suite with a Node 22),
# so this one command is all CI runs.
#
#   FUZZ_SECONDS=N   seconds per fuzz target in the smoke run (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s  (%s)\n' "$*" "$(date +%H:%M:%S)"; }

# Every test runner's output goes through here so the last line can total them up.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
counted() { "$@" 2>&1 | tee -a "$log"; }

step "toolchain, QEMU, curl, Python: install what is missing"
rustup component add rustfmt clippy >/dev/null
rustup target add thumbv7em-none-eabihf thumbv7m-none-eabi thumbv6m-none-eabi >/dev/null
bash scripts/install-qemu.sh
command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
# The shell built-in's sandbox (cli/src/builtin.rs) runs programs through these two.
{ command -v prlimit && command -v setpriv; } >/dev/null || { apt-get update -qq && apt-get install -y -qq util-linux; }
bash scripts/python-env.sh >/dev/null
# The official MCP conformance suite and the Node 22 it needs (cli/tests/mcp_conformance.rs).
bash scripts/mcp-conformance.sh --install >/dev/null

step "format"
cargo fmt --all --check
for fw in firmware/*/; do (cd "$fw" && cargo fmt --check); done
(cd benches/peers && cargo fmt --check)

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "docs build without warnings (broken or private intra-doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "tests (unit, integration, loopback sockets, QEMU, network namespace, Python interop)"
counted cargo test --workspace --locked

step "toolwire-core builds for bare metal without std, with each encoding"
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  for features in "" json postcard json,postcard; do
    cargo build -p toolwire-core --no-default-features --features "$features" --target "$target" --locked
  done
done
# A device's core (no unique-names, and without JSON frames the small validator): its unit tests.
counted cargo test -p toolwire-core --lib --no-default-features --features postcard --locked
counted cargo test -p toolwire-core --lib --no-default-features --features json --locked

step "firmware builds (each its own workspace, every variant the README lists) and footprint budgets"
# Default features (both encodings; NUCLEO with defmt), then postcard only (NUCLEO without
# defmt), and JSON only for QEMU, each variant's ELFs in a directory of its own (the QEMU test
# builds the same ones, through the same script: one shared target directory, so a variant
# rebuilds only the crates its features change, ~25 s instead of ~90 s for a QEMU variant;
# source paths remapped, so sizes do not depend on where the checkout is). The check fails if a
# firmware outgrows its limit, and prints the table.
for fw in qemu nucleo-f429zi; do
  bash scripts/build-firmware.sh "$fw"
  bash scripts/build-firmware.sh "$fw" postcard
done
bash scripts/build-firmware.sh qemu json
bash scripts/footprint-check.sh

step "benchmarks compile; end-to-end and fleet benchmarks, short runs"
# One release build of every binary and benchmark: built package by package, feature
# unification would differ and rebuild toolwire-smol and its dependents once per package.
cargo build --release --locked --workspace --bins --bench '*'
SMOL_THREADS=2 target/release/e2e --quick
# Many idle nodes on one gateway (the `toolwire` binary next to it, run as a child process): a
# few hundred nodes per transport and encoding, ~10 s; fails if any node is dropped.
target/release/fleet --quick

# The peers benchmark (jsonrpsee, tarpc) is a workspace of its own, so tokio stays out of the
# product crates; it sets SMOL_THREADS for its own children. Its release build is the cost here;
# in the root's target directory it reuses ~90 of its ~250 crates from the build above (measured
# cold: 155 crates compiled instead of 246, 435 s instead of 578 s on a loaded machine; the rest
# differ in features or profile). Clippy on it would add a second full pass over its
# dependencies, so it is run by hand (benches/README.md, "Peers").
cargo run --release --locked --manifest-path benches/peers/Cargo.toml --target-dir target -- --quick

step "fuzz smoke run"
bash scripts/fuzz-smoke.sh

passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "summary: $passed passed, $failed failed"
