#!/usr/bin/env bash
# Runs every fuzz target for a short while, one after the other, from the committed seeds.
#
#   scripts/fuzz-smoke.sh                          # 10 s per target
#   FUZZ_SECONDS=120 scripts/fuzz-smoke.sh node_sm # some targets, longer
#   FUZZ_RUNS=10000000 scripts/fuzz-smoke.sh gateway_sm json_differential decode_json
#                                                  # the long campaign: a number of executions
#
# Each target starts from a temporary copy of fuzz/corpus/<target>/seed-* (the committed corpus
# does not grow). Crash inputs land in fuzz/artifacts/<target>/ (ignored by git); reproduce one
# with `cargo +nightly fuzz run -s none <target> <file>`, see it with `cargo +nightly fuzz fmt`.
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 10)
#   FUZZ_RUNS       executions per target instead of a time (unset by default); one job
#   FUZZ_SANITIZER  none (default: the core has no unsafe code; ~2x faster) or address
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default 10)
#
# Exits non-zero if any target crashed, hung or failed to build.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-10}
sanitizer=${FUZZ_SANITIZER:-none}
timeout=${FUZZ_TIMEOUT:-10}
runs=${FUZZ_RUNS:-}
if [ -n "$runs" ]; then
    limit="-runs=$runs"
    what="$runs runs"
else
    limit="-max_total_time=$seconds"
    what="${seconds}s"
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

all_targets=$(cargo +nightly fuzz list --fuzz-dir fuzz)
targets=${*:-$all_targets}

# One build for all targets (release, debug assertions and overflow checks on).
cargo +nightly fuzz build --fuzz-dir fuzz -s "$sanitizer"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=0
rows=()
for t in $targets; do
    corpus="$work/corpus-$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    cp fuzz/corpus/"$t"/seed-* "$corpus"/ 2>/dev/null || true
    log="$work/$t.log"
    echo "== $t: $what" >&2
    if cargo +nightly fuzz run --fuzz-dir fuzz -s "$sanitizer" "$t" "$corpus" -- \
        "$limit" -timeout="$timeout" -print_final_stats=1 \
        >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        failed=1
        # The panic message and the input that caused it.
        grep -E "panicked at|^[^ ].*(assert|overflow|not reported|changed|differ)|Test unit written|SUMMARY" "$log" \
            | head -n 12 >&2 || true
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [ -z "$execs" ]; then
        # No final stats after a crash: take the last status line ("#N ... exec/s: R").
        last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
        execs=$(printf '%s' "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
        rate=$(printf '%s' "$last" | sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p')
    fi
    rows+=("$(printf '%-18s %12s %10s  %s' "$t" "${execs:--}" "${rate:--}" "$result")")
done

printf '\n%-18s %12s %10s  %s\n' target executions execs/s result
for r in "${rows[@]}"; do
    printf '%s\n' "$r"
done
exit "$failed"
