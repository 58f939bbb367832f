#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance,
# server scenarios) against an MCP server over Streamable HTTP, prints one row
# per scenario, and exits non-zero when a scenario listed in
# scripts/mcp-conformance/expected-pass.txt does not pass.
#
#   scripts/mcp-conformance.sh URL [SCENARIO...]     e.g. http://127.0.0.1:7700/mcp
#   scripts/mcp-conformance.sh --self-test [SCENARIO...]
#   scripts/mcp-conformance.sh --install             install only
#   scripts/mcp-conformance.sh --list                the suite's server scenarios
#
# Without SCENARIOs it runs every server scenario of the suite that applies at
# the spec version (2025-11-25 unless MCP_CONFORMANCE_SPEC says otherwise), the
# ones in not-applicable.txt included (shown apart, never counted), and from
# 2026-07-28 on the extensions' scenarios too (tasks). --self-test
# starts the reference server (scripts/mcp-conformance/reference-server.mjs) on
# 127.0.0.1 and requires every applicable scenario to pass against it.
#
# A scenario passes when none of its checks fails and one of its own succeeds;
# warnings are shown, not counted. Two readings are stricter than the suite's:
# tools-call-simple-text and tools-call-error do not pass on an "unknown tool"
# isError result (the suite accepts any text block there).
#
# The URL's host must be localhost, 127.0.0.1 or [::1] (dns-rebinding-protection
# fails otherwise), and the suite sends no credentials.
#
# Environment:
#   MCP_CONFORMANCE_SPEC        spec version to run at (default 2025-11-25)
#   MCP_CONFORMANCE_TIMEOUT_MS  per-scenario timeout (default 10000)
#   MCP_CONFORMANCE_EXPECTED    expected-pass list (default scripts/mcp-conformance/expected-pass-SPEC.txt
#                               if there is one, else expected-pass.txt)
#   MCP_CONFORMANCE_RESULTS     where checks.json files go (default a new /tmp/mcp-conformance.* dir, kept)
#   MCP_CONFORMANCE_VERBOSE=1   print the suite's own output too
#
# It installs what it needs on first use into scripts/mcp-conformance/node_modules
# (npm ci from the committed lock file: the suite, the MCP SDK, and Node 22 from the
# npm package `node`, since the suite needs Node >= 22.19); later runs skip that.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$ROOT/scripts/mcp-conformance"
NODE="$DIR/node_modules/node/bin/node"
CONF="$DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
STAMP="$DIR/node_modules/.toolwire-installed-lock"
SPEC="${MCP_CONFORMANCE_SPEC:-2025-11-25}"
[[ "$SPEC" == draft ]] && SPEC=2026-07-28
TIMEOUT_MS="${MCP_CONFORMANCE_TIMEOUT_MS:-10000}"
EXPECTED_DEFAULT="$DIR/expected-pass.txt"
[[ -f "$DIR/expected-pass-$SPEC.txt" ]] && EXPECTED_DEFAULT="$DIR/expected-pass-$SPEC.txt"
EXPECTED="${MCP_CONFORMANCE_EXPECTED:-$EXPECTED_DEFAULT}"
NOT_APPLICABLE="$DIR/not-applicable.txt"

usage() {
  sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

installed() {
  [[ -x "$NODE" && -f "$CONF" && -f "$STAMP" ]] &&
    cmp -s "$DIR/package-lock.json" "$STAMP" &&
    [[ "$("$NODE" --version 2>/dev/null)" == v22.* ]]
}

install() {
  installed && return 0
  command -v npm >/dev/null || { echo "mcp-conformance: needs npm to install the suite (apt-get install npm)" >&2; exit 2; }
  echo "mcp-conformance: installing into $DIR/node_modules (npm ci) ..." >&2
  (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2
  [[ -x "$NODE" ]] || { echo "mcp-conformance: npm ci did not install Node 22 at $NODE (was the 'node' package's preinstall script blocked?)" >&2; exit 2; }
  cp "$DIR/package-lock.json" "$STAMP"
}

conformance() { "$NODE" "$CONF" "$@"; }

# `conformance list --server` prints "  - name [v1,v2,...]": the spec versions a
# scenario applies at ("extension" for the optional ones).
LISTING=""
list_scenarios() { # all names, or with a spec version those that apply at it
  [[ -n "$LISTING" ]] || LISTING="$(conformance list --server)"
  if (( $# )); then
    sed -n 's/^  - \([^ ]*\) \[\(.*\)\]$/\1 ,\2,/p' <<<"$LISTING" | awk -v v=",$1," 'index($2, v) { print $1 }'
  else
    sed -n 's/^  - \([^ ]*\).*/\1/p' <<<"$LISTING"
  fi
}

SELF_TEST=0
case "${1:-}" in
  "" | -h | --help) usage ;;
  --install) install; echo "mcp-conformance: installed ($("$NODE" --version), conformance $("$NODE" -p "require('$DIR/node_modules/@modelcontextprotocol/conformance/package.json').version"))"; exit 0 ;;
  --list) install; conformance list --server; exit 0 ;;
  --self-test) SELF_TEST=1; shift ;;
  -*) usage ;;
  *) URL="$1"; shift ;;
esac

install

RESULTS="${MCP_CONFORMANCE_RESULTS:-$(mktemp -d /tmp/mcp-conformance.XXXXXX)}"
mkdir -p "$RESULTS"
LOG="$RESULTS/conformance.log"

SERVER_PID=""
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null; true; }
trap cleanup EXIT

if (( SELF_TEST )); then
  "$NODE" "$DIR/reference-server.mjs" --host 127.0.0.1 --port 0 >"$RESULTS/reference-server.log" 2>&1 &
  SERVER_PID=$!
  URL=""
  for _ in $(seq 100); do
    URL="$(sed -n 's/^listening //p' "$RESULTS/reference-server.log")"
    [[ -n "$URL" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n "$URL" ]] || { echo "mcp-conformance: the reference server did not start:" >&2; cat "$RESULTS/reference-server.log" >&2; exit 2; }
fi

LISTING="$(conformance list --server)"
KNOWN="$(list_scenarios | tr '\n' ' ')"                # every server scenario of this suite version
APPLICABLE="$(list_scenarios "$SPEC" | tr '\n' ' ')"  # those that apply at $SPEC
for s in "$@"; do
  [[ " $KNOWN " == *" $s "* ]] || { echo "mcp-conformance: no server scenario '$s' (see --list)" >&2; exit 2; }
done

echo "mcp-conformance: $URL at spec $SPEC; results in $RESULTS"
start=$(date +%s%N)
out() { if [[ "${MCP_CONFORMANCE_VERBOSE:-0}" == 1 ]]; then tee -a "$LOG"; else cat >>"$LOG"; fi; }
common=(--url "$URL" --spec-version "$SPEC" --timeout "$TIMEOUT_MS" -o "$RESULTS")
if (( $# )); then
  SCENARIOS="$*"
  for s in "$@"; do
    echo "=== $s" | out
    conformance server "${common[@]}" --scenario "$s" 2>&1 | out || true
  done
else
  SCENARIOS="$APPLICABLE"
  conformance server "${common[@]}" --suite all 2>&1 | out || true
  # The tasks extension of 2026-07-28 is in no suite: each of its scenarios on its own
  # (forced: an extension is on no spec timeline). Other extensions (skills) do not apply.
  if [[ "$SPEC" != 2025-* && "$SPEC" != 2024-* ]]; then
    # Four at a time: each mostly waits (polling, jobs of a second or two).
    ext=$(sed -n 's/^  - \(tasks-[^ ]*\) \[extension\]$/\1/p' <<<"$LISTING")
    for s in $ext; do
      (conformance server "${common[@]}" --force --scenario "$s" >"$RESULTS/ext-$s.log" 2>&1 || true) &
      while (( $(jobs -rp | wc -l) >= 4 )); do sleep 0.2; done
      SCENARIOS="$SCENARIOS $s"
    done
    wait
    for s in $ext; do { echo "=== $s"; cat "$RESULTS/ext-$s.log"; } | out; done
  fi
fi
ms=$(( ($(date +%s%N) - start) / 1000000 ))
printf 'mcp-conformance: the suite ran in %d.%d s (log: %s)\n' $((ms / 1000)) $((ms % 1000 / 100)) "$LOG"

report=(--results "$RESULTS" --scenarios "$SCENARIOS" --known "$KNOWN" --not-applicable "$NOT_APPLICABLE")
if (( SELF_TEST )); then report+=(--require-all); else report+=(--expected "$EXPECTED"); fi
"$NODE" "$DIR/report.mjs" "${report[@]}"
