#!/usr/bin/env bash
# Benchmarks the observer's engine (crate warden-observer) on a synthetic, realistic ledger:
# a day of benign history, then 10,000 sessions active at once taking model turns that propose
# the actions they attempt (turn, intent, attempt and decision records), with the coding-agent
# example charter's detectors and correlation rules. Prints the engine's throughput in records
# per second on one core and its resident memory with 10,000 active sessions (VmRSS read from
# /proc/self/status before and after; the records are generated in rounds and dropped once
# ingested, so the difference is the engine's state).
#
# Goals: >= 100,000 records/s; <= 256 MiB with 10,000 active sessions.
#
# Then detection to intervention end to end (bench/observer_latency.py): a real gateway under
# sustained traffic (warden-load, closed loop, $LATENCY_CONCURRENCY clients: the highest rate
# the machine sustains with them), a real `warden observe`, and $DETECTIONS probe sessions that
# each read a labelled resource and send; from the ledger alone, the time from the send's
# record to the first decision refused by the observer's `freeze_tool`. Goal: p99 < 1 s.
#
# Usage: bench/observer.sh [sessions, default 10000] [rounds, default 10] [--criterion]
#        DETECTIONS=200 LATENCY_CONCURRENCY=16 (environment) for the second part
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${1:-10000}
ROUNDS=${2:-10}

echo "== engine: replay throughput and memory ($SESSIONS active sessions, $ROUNDS rounds)"
out=$(cargo run --release -q -p warden-observer --example observer_load -- "$SESSIONS" "$ROUNDS")
echo "$out"
rps=$(sed -n 's/^records_per_second=//p' <<<"$out")
mib=$(sed -n 's/^engine_mib=//p' <<<"$out")
printf 'engine throughput: %s records/s (goal >= 100000)\n' "$rps"
printf 'engine memory with %s sessions: %s MiB (goal <= 256)\n' "$SESSIONS" "$mib"

if [[ " $* " == *" --criterion "* ]]; then
  echo "== criterion: engine/replay"
  cargo bench -q -p warden-observer --bench engine
fi

echo "== detection to intervention under sustained traffic (${DETECTIONS:-200} detections)"
cargo build --release -q -p warden -p warden-testkit --bin warden --bin warden-echo-server --bin warden-load
python3 bench/observer_latency.py --bin target/release \
  --detections "${DETECTIONS:-200}" --concurrency "${LATENCY_CONCURRENCY:-16}"
