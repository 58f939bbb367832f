#!/usr/bin/env bash
# The Python environment of the interop tests: a venv with the official MCP SDK (the client the
# MCP bridge test drives), `websockets` (a third-party WebSocket peer), and for the HTTP face's
# test (cli/tests/http_interop.rs) `httpx` (an HTTP client), `prometheus_client` (its OpenMetrics
# parser reads /metrics) and `schemathesis` (checks the live API against /openapi.json).
# Idempotent: creates the venv once, installs the pinned versions when missing or different, and
# prints the venv's python on stdout (everything else goes to stderr). Fails loudly if anything
# cannot be installed: the tests that use it fail rather than skip.
#
#   PY=$(scripts/python-env.sh)
#
# TOOLWIRE_VENV overrides the location (default: .venv at the repository root, git-ignored).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${TOOLWIRE_VENV:-$root/.venv}
# Bump together with the tests that use them.
pins=(mcp==2.3.0 websockets==17.4 httpx==0.28.1 prometheus_client==0.26.0 schemathesis==4.32.5)

log() { echo "python-env: $*" >&2; }

# Two test processes may run this at once: serialize on a lock inside the venv's folder.
mkdir -p "$venv"
exec 9>"$venv/.toolwire-lock"
if command -v flock >/dev/null; then
    flock -w 600 9 || { log "timed out waiting for $venv/.toolwire-lock"; exit 1; }
fi

py=$venv/bin/python
if [[ ! -x $py ]]; then
    command -v python3 >/dev/null || { log "python3 is not installed"; exit 1; }
    log "creating $venv"
    python3 -m venv "$venv" >&2 || {
        log "python3 -m venv failed (Debian: apt-get install python3-venv)"
        exit 1
    }
fi

# `pip freeze` is slow-ish; check the pins with importlib.metadata instead.
missing=$("$py" - "${pins[@]}" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        if version(name) != want:
            print(pin)
    except PackageNotFoundError:
        print(pin)
EOF
)
if [[ -n $missing ]]; then
    log "installing: $(echo $missing)"
    "$py" -m pip install --disable-pip-version-check --quiet "${pins[@]}" >&2 || {
        log "pip install ${pins[*]} failed"
        exit 1
    }
fi

echo "$py"
