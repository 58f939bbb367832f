#!/usr/bin/env bash
# Builds one variant of a firmware (each firmware is a workspace of its own) the way the
# footprint budgets and the QEMU test measure it. Prints cargo's progress and diagnostics.
#
#   scripts/build-firmware.sh qemu                 # default features, target/
#   scripts/build-firmware.sh qemu postcard        # only these features, target/postcard/
#   scripts/build-firmware.sh nucleo-f429zi postcard
#   scripts/build-firmware.sh qemu postcard --bin node   # more cargo arguments after the features
#
# The one difference from a plain `cargo build --release` in the firmware's folder: source paths
# are remapped (the repository to /toolwire, the cargo home to /cargo). A panic's location
# carries its file name into flash, so without this a firmware built in a checkout at a longer
# path is larger (seen: 72 B on the NUCLEO build, checked out under /check instead of /work) and
# the budgets would depend on where the repository lies. Run from anywhere.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fw=${1:?usage: build-firmware.sh FIRMWARE [FEATURES] [CARGO ARGS...]}
features=${2:-}
shift $(($# < 2 ? $# : 2))

cargo_home=${CARGO_HOME:-$HOME/.cargo}
remap="target.'cfg(all())'.rustflags=['--remap-path-prefix=$root=/toolwire', '--remap-path-prefix=$cargo_home=/cargo']"
# Every variant builds in one target directory, so the crates whose features do not change
# with the variant (the HAL, embassy, cortex-m, serde...) are built once; the binaries this
# build made are then copied to the variant's own place: target/<triple>/release/ for the
# default features, target/<features>/<triple>/release/ otherwise.
build=target/variants
args=(build --release --locked --config "$remap" --target-dir "$build"
  --message-format=json-render-diagnostics)
out=target
if [ -n "$features" ]; then
  args+=(--no-default-features --features "$features")
  out=target/$features
fi

cd "$root/firmware/$fw"
messages=$(mktemp)
trap 'rm -f "$messages"' EXIT
# Variables that would redirect or override the firmware's own .cargo/config.toml are dropped.
env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS -u CARGO_TARGET_DIR \
  -u CARGO_BUILD_TARGET -u CARGO_BUILD_TARGET_DIR cargo "${args[@]}" "$@" >"$messages"
grep -o '"executable":"[^"]*"' "$messages" | sed 's/^"executable":"//; s/"$//' |
  while read -r elf; do
    rel=${elf#"$PWD/$build/"}
    mkdir -p "$out/$(dirname "$rel")"
    cp "$elf" "$out/$rel"
  done
