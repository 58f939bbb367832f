#!/usr/bin/env bash
# Installs what the QEMU firmware tests need, idempotently and non-interactively:
#   - the Rust target thumbv7m-none-eabi (and the llvm-tools component, for footprint.sh);
#   - qemu-system-arm from bookworm-backports (QEMU 10.x).
#
# Why backports: on Debian bookworm a plain `apt-get install qemu-system-arm` pulls QEMU 7.2,
# whose dependencies remove a preinstalled qemu-utils 10.x. Installing from bookworm-backports
# keeps the versions consistent.
#
# Run as root (or with sudo available). Safe to run repeatedly.
set -euo pipefail

log() { printf 'install-qemu: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        log "not root and no sudo: cannot install packages"; exit 1
    fi
fi

# --- Rust target and tools ------------------------------------------------------------------
if command -v rustup >/dev/null 2>&1; then
    rustup target add thumbv7m-none-eabi >/dev/null
    rustup component add llvm-tools >/dev/null 2>&1 \
        || rustup component add llvm-tools-preview >/dev/null 2>&1 \
        || log "warning: could not add llvm-tools (footprint.sh will look for another llvm-size)"
else
    log "warning: rustup not found; add the thumbv7m-none-eabi target by hand"
fi

# --- qemu-system-arm ------------------------------------------------------------------------
if command -v qemu-system-arm >/dev/null 2>&1; then
    log "qemu-system-arm present: $(qemu-system-arm --version | head -n1)"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
BACKPORTS=/etc/apt/sources.list.d/bookworm-backports.sources

# Find the system's existing Debian entry (URIs + Signed-By) to copy.
uris=""
signed_by=""
if [ ! -f "$BACKPORTS" ]; then
    # deb822 files first (Debian 12 containers ship /etc/apt/sources.list.d/debian.sources).
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # Walk the stanzas; take the first whose Suites contains "bookworm" (not -security).
        stanza=$(awk -v RS= '/(^|\n)Suites:[^\n]*[ \t]bookworm([ \t\n]|$)/ { print; exit }' "$f")
        if [ -n "$stanza" ]; then
            uris=$(printf '%s\n' "$stanza" | sed -n 's/^URIs:[[:space:]]*//p' | head -n1)
            signed_by=$(printf '%s\n' "$stanza" | sed -n 's/^Signed-By:[[:space:]]*//p' | head -n1)
            [ -n "$uris" ] && break
        fi
    done
    # Fall back to a one-line sources.list entry.
    if [ -z "$uris" ] && [ -f /etc/apt/sources.list ]; then
        line=$(grep -E '^[[:space:]]*deb[[:space:]].*[[:space:]]bookworm[[:space:]]' /etc/apt/sources.list | head -n1 || true)
        if [ -n "$line" ]; then
            signed_by=$(printf '%s\n' "$line" | sed -n 's/.*signed-by=\([^] ]*\).*/\1/p')
            uris=$(printf '%s\n' "$line" | sed -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}')
        fi
    fi
    if [ -z "$uris" ]; then
        uris="http://deb.debian.org/debian"
        log "no Debian bookworm entry found; using $uris"
    fi
    if [ -z "$signed_by" ] && [ -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then
        signed_by=/usr/share/keyrings/debian-archive-keyring.gpg
    fi
    log "adding $BACKPORTS (URIs: $uris)"
    {
        echo "Types: deb"
        echo "URIs: $uris"
        echo "Suites: bookworm-backports"
        echo "Components: main"
        [ -n "$signed_by" ] && echo "Signed-By: $signed_by"
    } | $SUDO tee "$BACKPORTS" >/dev/null
fi

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-arm
log "installed: $(qemu-system-arm --version | head -n1)"
