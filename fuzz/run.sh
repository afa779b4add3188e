#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60).
#   fuzz/run.sh 600            # ten minutes per target, one after another
#   JOBS=2 fuzz/run.sh 600     # two targets at a time
#   fuzz/run.sh 30 parse_key   # only the named targets
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). On a stable
# toolchain RUSTC_BOOTSTRAP=1 lets it pass the -Z flags it needs.
# Seeds are read from fuzz/corpus/<target> (committed, never written);
# new inputs go to fuzz/target/corpus/<target>, crashes to
# fuzz/artifacts/<target>. Exits non-zero if any target found a crash.
# No sanitizer: the engine is safe Rust but for its mmap calls, and
# without ASan the targets run several times faster. Debug assertions and
# overflow checks are on (the cargo-fuzz default).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export RUSTC_BOOTSTRAP=1
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(index_ops index_replay parse_digest parse_range parse_key record_decode recover_store)
fi
jobs=${JOBS:-1}

cargo fuzz build --sanitizer none

logdir=target/fuzz-logs
mkdir -p "$logdir"
run_one() {
    local t=$1
    mkdir -p "target/corpus/$t" "artifacts/$t"
    # -timeout: an input running 10 s is a hang (an infinite loop is a bug).
    if cargo fuzz run --sanitizer none "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$logdir/$t.log" 2>&1; then
        status=ok
    else
        status=FAILED
    fi
    local runs corp
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logdir/$t.log" | grep -o '[0-9]*$' || echo '?')
    corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$logdir/$t.log" | tail -1 || echo 'corp: ?')
    printf '%-14s %-6s executions=%s %s (log: fuzz/%s)\n' "$t" "$status" "$runs" "$corp" "$logdir/$t.log"
    [ "$status" = ok ]
}

fail=0
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || fail=1
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || fail=1
    running=$((running - 1))
done
if [ "$fail" -ne 0 ]; then
    echo "a fuzz target failed: see fuzz/artifacts/ and the logs above" >&2
fi
exit "$fail"
