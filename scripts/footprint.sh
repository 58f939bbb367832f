#!/usr/bin/env bash
# Prints the memory footprint of a Cortex-M ELF built with cortex-m-rt:
#   text, rodata, data, bss (bytes), flash = vector table + text + rodata + data (data's initial
#   values live in flash), and static RAM = data + bss (+ uninit). The stack is not counted: it
#   grows down from the top of RAM.
# Usage: scripts/footprint.sh [--markdown] path/to/elf [more elfs...]
#   --markdown (or -m): one markdown table, a row per ELF (bytes; KiB for flash and RAM).
# Uses llvm-size from the Rust llvm-tools component if present, else any llvm-size on PATH.
set -euo pipefail

markdown=0
if [ "${1:-}" = "--markdown" ] || [ "${1:-}" = "-m" ]; then
    markdown=1
    shift
fi
if [ $# -lt 1 ]; then
    echo "usage: $0 [--markdown] ELF [ELF...]" >&2
    exit 2
fi

find_llvm_size() {
    local sysroot candidate
    if sysroot=$(rustc --print sysroot 2>/dev/null); then
        candidate=$(ls "$sysroot"/lib/rustlib/*/bin/llvm-size 2>/dev/null | head -n1 || true)
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return; fi
    fi
    for candidate in ~/.rustup/toolchains/*/lib/rustlib/*/bin/llvm-size; do
        [ -x "$candidate" ] && { echo "$candidate"; return; }
    done
    command -v llvm-size || command -v arm-none-eabi-size || true
}

SIZE=$(find_llvm_size)
if [ -z "$SIZE" ]; then
    echo "no llvm-size found: run 'rustup component add llvm-tools'" >&2
    exit 1
fi

if [ "$markdown" = 1 ]; then
    echo "| ELF | text+vectors | rodata | data | bss | flash | static RAM |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
fi

for elf in "$@"; do
    # `llvm-size -A` prints "section size addr" lines (sysv format).
    "$SIZE" -A "$elf" | awk -v elf="$elf" -v md="$markdown" '
        $1 == ".vector_table" { vt += $2 }
        $1 == ".text"         { text += $2 }
        $1 == ".rodata"       { rodata += $2 }
        $1 == ".data"         { data += $2 }
        $1 == ".gnu.sgstubs"  { text += $2 }
        $1 == ".bss"          { bss += $2 }
        $1 == ".uninit"       { uninit += $2 }
        END {
            flash = vt + text + rodata + data
            ram = data + bss + uninit
            if (md) {
                printf "| `%s` | %d | %d | %d | %d | %d (%.1f KiB) | %d (%.1f KiB) |\n", elf, text + vt, rodata, data, bss + uninit, flash, flash / 1024, ram, ram / 1024
                exit
            }
            printf "%s\n", elf
            printf "  vector_table %7d\n  text         %7d\n  rodata       %7d\n  data         %7d\n  bss          %7d\n", vt, text, rodata, data, bss
            if (uninit) printf "  uninit       %7d\n", uninit
            printf "  flash        %7d  (%.1f KiB: vector_table+text+rodata+data)\n", flash, flash / 1024
            printf "  static RAM   %7d  (%.1f KiB: data+bss%s; stack not included)\n", ram, ram / 1024, uninit ? "+uninit" : ""
        }'
done
