#!/usr/bin/env bash
# Instructions per event of every bridging process, counted by valgrind's callgrind while the
# bench's latency scenario runs slowly enough that each event is handled alone (as at 1,000
# events/s, where nothing batches). Unlike CPU time, the count does not move with the machine's
# load, so two builds compare in one run each, even beside a compile (docs/performance.md,
# "Instructions per event").
#
#   scripts/instructions.sh [bin dir (target/release)] [contenders (pipeline skeleton)]
#
# Environment: RATE (events/s, 50), WINDOW (seconds counted, 10), OUT (where the callgrind files
# and the bench's log go, a new temporary directory), CHECKPOINT_STORE (none). Needs valgrind
# (Debian: `valgrind`).
#
# Checkpoints are off unless CHECKPOINT_STORE says otherwise: a save writes one record per
# stream that moved, so at this rate every event brings a record of its own, where at 1,000
# events/s over 100 streams one in ten does; counted here, they would swamp the per-event path.
set -euo pipefail

bin=$(realpath "${1:-target/release}")
contenders=${2:-pipeline skeleton}
rate=${RATE:-50}
window=${WINDOW:-10}
out=${OUT:-$(mktemp -d /tmp/instructions.XXXXXX)}
export CHECKPOINT_STORE=${CHECKPOINT_STORE:-none}
command -v valgrind > /dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 69; }

# The bench starts whatever it finds in SSE_BIN_DIR: the measured binaries run under callgrind,
# the others as they are.
wrap="$out/bin"
mkdir -p "$wrap"
for b in "$bin"/*; do
    [ -x "$b" ] && [ -f "$b" ] && ln -sf "$b" "$wrap/"
done
for name in sse-ingest sse-schema sse-publisher sse-connector sse-bench-skeleton; do
    rm -f "$wrap/$name"
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/%s.%%p.out %s/%s "$@"\n' \
        "$out" "$name" "$bin" "$name" > "$wrap/$name"
    chmod +x "$wrap/$name"
done

for c in $contenders; do
    log="$out/$c.log"
    rm -f "$out"/*.out*
    BENCH_ONLY=latency BENCH_CONTENDERS=$c BENCH_LATENCY_RATE=$rate BENCH_RUNS=1 \
        BENCH_OUT="$out/bench-$c" SSE_BIN_DIR="$wrap" "$bin/sse-bench" > "$log" 2>&1 &
    bench=$!
    # The window opens once the warm-up events have passed (one per stream).
    until grep -q "starting $c" "$log"; do
        kill -0 $bench 2> /dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.5
    done
    sleep 6
    callgrind_control --zero > /dev/null 2>&1
    sleep "$window"
    callgrind_control --dump > /dev/null 2>&1
    wait $bench || { cat "$log" >&2; exit 1; }
    events=$((rate * window))
    for f in "$out"/*.out.1; do
        what=$(sed -n 's/^cmd: *[^ ]*\/\([^ /]*\)\( .*\)\?$/\1\2/p' "$f" | awk '{print $1, ($1 == "sse-bench-skeleton") ? $4 : ""}')
        total=$(sed -n 's/^summary: //p' "$f")
        printf '%-10s %-24s %8d instructions per event\n' "$c" "$what" $((total / events))
        mkdir -p "$out/$c" && mv "$f" "$out/$c/"
    done
done
echo "callgrind files: $out (callgrind_annotate <file>)"
