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
# Then detection to intervention end to end (the section at the end; `--no-latency` skips it):
# from the commit of the anomalous record to the first decision that sees the observer's
# control, under sustained load through the gateway (p50, p90, p99). Goal: p99 < 1 s.
#
# Usage: bench/observer.sh [sessions, default 10000] [rounds, default 10] [--criterion] [--no-latency]
#        environment: ITERATIONS (detections, default 50), LOAD_CONCURRENCY (load clients,
#        default 16), LOAD_SECONDS (how long the load may run, default 600)
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

# -- Detection to intervention ----------------------------------------------------------------
# The whole path on the release binaries: the gateway (`warden serve`), the observer (`warden
# observe`, its own process and credential), background load through the gateway (`warden-load`:
# MCP tools/call at the highest rate the machine sustains: $LOAD_CONCURRENCY clients, default 16, in a closed loop), and
# bench/observer_latency.py, which trips a `denial_storm` detector on a fresh session and times
# from the commit of the record that reaches the threshold to the first decision that carries
# the observer's control (both ledger times). Skipped with --no-latency.
if [[ " $* " == *" --no-latency "* ]]; then
  exit 0
fi
ITERATIONS=${ITERATIONS:-50}
LOAD_SECONDS=${LOAD_SECONDS:-600}
echo "== detection to intervention ($ITERATIONS iterations under load)"
cargo build --release -q -p warden -p warden-testkit
BIN=${CARGO_TARGET_DIR:-target}/release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
source bench/lib.sh
start_echo "$BIN" "$tmp/echo.log"
cat > "$tmp/charter.yaml" <<YAML
version: 1
identity: { id: bench-agent, name: Bench, purpose: benchmarks, serves: the benchmark }
inventory:
  servers:
    - { id: echo, url: "http://127.0.0.1:$ECHO_PORT/mcp", tools: [echo] }
    - { id: pay, tools: [create_payment] }
actions:
  rules:
    - { id: echo, tool: echo.echo, tier: autonomous, args: { text: { regex: "hello [0-9]+ [0-9]+" } } }
    - { id: small-payments, tool: pay.create_payment, tier: autonomous, args: { amount: { max: 100 } } }
    - { id: large-payments, tool: pay.create_payment, tier: prohibited, args: { amount: { not: { max: 100 } } } }
authority:
  roles: [{ id: ops, approve: [default] }]
  principals: [{ id: bench, roles: [ops] }]
observer:
  detectors:
    - { id: denials, kind: denial_storm, threshold: 3, window: 1m, response: frozen, alone: true }
YAML
start_warden "$BIN" "$tmp/charter.yaml" "$tmp/data" "$tmp/warden.log"
OPERATOR="http://127.0.0.1:$OP_PORT"
(umask 077 && curl -sf -X POST -H "Authorization: Bearer $(cat "$tmp/data/operator.token")" \
  -H 'content-type: application/json' -d '{"name":"bench-observer","role":"observer"}' \
  "$OPERATOR/v1/operator-tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' \
  > "$tmp/observer.token")
WARDEN_LOG=warn "$BIN/warden" observe --gateway "$OPERATOR" --token-file "$tmp/observer.token" \
  --charter "$tmp/charter.yaml" --data "$tmp/observer" > "$tmp/observer.log" 2>&1 &
pids+=($!)
TOKEN=$("$BIN/warden" session open --agent bench-agent --user bench --ttl 2h \
  --operator-url "$OPERATOR" --data "$tmp/data")
"$BIN/warden-load" --url "http://127.0.0.1:$AGENT_PORT/mcp" --token "$TOKEN" --tool echo.echo \
  --concurrency "${LOAD_CONCURRENCY:-16}" --seconds "$LOAD_SECONDS" --warmup 2 --label "background load" > "$tmp/load.json" 2>&1 &
LOAD_PID=$!
pids+=($LOAD_PID)
sleep 3
head() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("SELECT MAX(seq) FROM records").fetchone()[0])' "$tmp/data/ledger.db"; }
before=$(head)
t0=$(date +%s.%N)
python3 bench/observer_latency.py --agent "http://127.0.0.1:$AGENT_PORT" --operator "$OPERATOR" \
  --data "$tmp/data" --iterations "$ITERATIONS" | tee "$tmp/latency.json"
t1=$(date +%s.%N)
after=$(head)
python3 - "$before" "$after" "$t0" "$t1" <<'PY'
import sys
before, after, t0, t1 = int(sys.argv[1] or 0), int(sys.argv[2] or 0), float(sys.argv[3]), float(sys.argv[4])
print(f"ledger records committed during the measurement: {(after - before) / (t1 - t0):.0f}/s "
      f"(about {(after - before) / (t1 - t0) / 4:.0f} tools/call/s: 4 records each)")
PY
