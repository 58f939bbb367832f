#!/usr/bin/env bash
# Boots a firmware ELF on QEMU's lm3s6965evb with UART0 served as a TCP socket on loopback.
#
#   scripts/qemu-uart.sh ELF [PORT]      (PORT defaults to 4555)
#
# QEMU listens on 127.0.0.1:PORT and waits for one client before starting the guest
# (`wait=on`), so no byte the firmware sends is lost. Semihosting output (panics, diagnostics)
# goes to this script's stderr/stdout; QEMU exits with the firmware's semihosting exit status
# (0 success, 1 failure). The process is `exec`ed, so the caller's PID is QEMU's PID: kill it to
# stop the guest. Only loopback is used.
#
# Extra QEMU arguments can be passed in QEMU_EXTRA_ARGS.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 ELF [PORT]" >&2
    exit 2
fi
ELF=$1
PORT=${2:-4555}
[ -f "$ELF" ] || { echo "no such ELF: $ELF" >&2; exit 2; }
command -v qemu-system-arm >/dev/null || { echo "qemu-system-arm missing: run scripts/install-qemu.sh" >&2; exit 1; }

# -nographic: no display; -monitor none: the monitor must not claim stdio (-nographic would mux it
# there); -serial tcp:...: UART0 <-> socket. nodelay=on matters: QEMU writes each byte the guest
# transmits to the socket separately, and with Nagle on, 64-byte echo round trips fell from ~1000/s
# to ~23/s. -semihosting-config target=native: semihosting served by QEMU itself (no gdb).
#
# Firmware built on firmware/qemu switches its UART FIFO on only if the host has sent nothing by
# the time it has booted (~1 ms); a host that talks first gets a lossless but ~3x slower UART.
# shellcheck disable=SC2086
exec qemu-system-arm \
    -M lm3s6965evb \
    -nographic \
    -monitor none \
    -serial "tcp:127.0.0.1:${PORT},server=on,wait=on,nodelay=on" \
    -semihosting-config enable=on,target=native \
    ${QEMU_EXTRA_ARGS:-} \
    -kernel "$ELF"
