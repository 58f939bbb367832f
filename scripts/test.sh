#!/usr/bin/env bash
# Runs every test of the project. Installs what a fresh machine lacks first (rustup components
# and targets, and the tools later steps need), so this one command is all CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Every test runner's output goes through here so the last line can total them up.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
counted() { "$@" 2>&1 | tee -a "$log"; }

step "toolchain: components and targets"
rustup component add rustfmt clippy >/dev/null
rustup target add thumbv7em-none-eabihf thumbv7m-none-eabi thumbv6m-none-eabi >/dev/null

step "format"
cargo fmt --all --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
counted cargo test --workspace --locked

step "toolwire-core builds for bare metal without std"
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  cargo build -p toolwire-core --no-default-features --target "$target" --locked
done

passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "summary: $passed passed, $failed failed"
