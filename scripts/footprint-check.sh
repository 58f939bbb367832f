#!/usr/bin/env bash
# Checks the firmware footprints against their budgets and prints the table. Sizes are
# deterministic for one toolchain, one source tree and one checkout path; the builds remap source
# paths (scripts/build-firmware.sh), but a crate's symbol hashes still include its path, and the
# code layout that follows moves a size by a few bytes of alignment (seen: the QEMU node 8 B
# smaller in a checkout under /check than under /work). So flash may exceed its limit by
# SLACK bytes before the check fails. Run it after the firmware builds of
# scripts/test.sh (it builds nothing); it fails if an ELF is missing or above its limit.
#
# Each row: ELF, then flash and static RAM limits (bytes), then the aim of issue 16 for each.
# A limit is the aim where the aim is met, else the figure reached, so that any growth fails
# here; "over aim" in the table says which budgets are not met yet. A change that shrinks a
# firmware should lower its limit (the table prints the new figures).
#
# Usage: scripts/footprint-check.sh [--markdown]
set -euo pipefail
cd "$(dirname "$0")/.."

markdown=0
[ "${1:-}" = "--markdown" ] && markdown=1

Q=firmware/qemu/target
N=firmware/nucleo-f429zi/target
KIB=1024
SLACK=32
# ELF                                              flash limit  RAM limit  flash aim     RAM aim
budgets=(
  "$Q/thumbv7m-none-eabi/release/node                58260        6800       $((24 * KIB)) $((8 * KIB))"
  "$Q/postcard/thumbv7m-none-eabi/release/node       36756        6800       $((24 * KIB)) $((8 * KIB))"
  "$Q/json/thumbv7m-none-eabi/release/node           51928        6800       $((24 * KIB)) $((8 * KIB))"
  "$Q/thumbv7m-none-eabi/release/node_bare           47028        3356       $((12 * KIB)) $((8 * KIB))"
  "$Q/postcard/thumbv7m-none-eabi/release/node_bare  24592        3356       $((12 * KIB)) $((8 * KIB))"
  "$N/thumbv7em-none-eabihf/release/node             118108       23620      $((64 * KIB)) -"
  "$N/postcard/thumbv7em-none-eabihf/release/node    68212        22524      $((64 * KIB)) -"
)

sizes() {
  bash scripts/footprint.sh "$1" | awk '$1 == "flash" { f = $2 } $1 == "static" { r = $3 } END { print f, r }'
}

fail=0
if [ "$markdown" = 1 ]; then
  echo "| ELF | flash | limit | aim | static RAM | limit | aim | |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
else
  printf '%-66s %8s %8s %8s %7s %7s %7s  %s\n' ELF flash limit aim RAM limit aim status
fi
for row in "${budgets[@]}"; do
  read -r elf flash_limit ram_limit flash_aim ram_aim <<<"$row"
  if [ ! -f "$elf" ]; then
    echo "missing: $elf (build the firmware first: scripts/test.sh, firmware step)" >&2
    fail=1
    continue
  fi
  read -r flash ram <<<"$(sizes "$elf")"
  status=ok
  if [ "$flash" -gt $((flash_limit + SLACK)) ] || [ "$ram" -gt "$ram_limit" ]; then
    status="OVER LIMIT"
    fail=1
  else
    over=()
    [ "$flash" -gt "$flash_aim" ] && over+=(flash)
    [ "$ram_aim" != - ] && [ "$ram" -gt "$ram_aim" ] && over+=(RAM)
    if [ ${#over[@]} = 0 ]; then status="aims met"; else status="${over[*]} over aim"; fi
  fi
  if [ "$markdown" = 1 ]; then
    printf '| `%s` | %d | %d | %d | %d | %d | %s | %s |\n' "${elf#firmware/}" "$flash" "$flash_limit" \
      "$flash_aim" "$ram" "$ram_limit" "$ram_aim" "$status"
  else
    printf '%-66s %8d %8d %8d %7d %7d %7s  %s\n' "${elf#firmware/}" "$flash" "$flash_limit" \
      "$flash_aim" "$ram" "$ram_limit" "$ram_aim" "$status"
  fi
done
if [ "$fail" != 0 ]; then
  echo "footprint check failed: a firmware grew past its limit (or is missing)." >&2
  echo "If the growth is wanted, raise its limit in scripts/footprint-check.sh and say why." >&2
fi
exit "$fail"
