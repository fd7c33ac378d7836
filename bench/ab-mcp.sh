#!/usr/bin/env bash
# Builds compared back to back, for a machine whose speed drifts (a shared VM): for each round,
# each build in turn gets a fresh warden (durable SQLite ledger) in front of its own
# warden-echo-server, then closed loops of 1 and 50 clients and an open loop of 1,000 calls/s
# at 50 connections, each printed on one line. Compare builds within a round, and rounds
# against each other to see the drift.
#
# Usage: bench/ab-mcp.sh ROUNDS SECONDS DIR...
#   DIR: a directory holding the `warden` of one build (copy it out of target/release after
#   each build). The first DIR also holds `warden-echo-server` and `warden-load`, used for every
#   build: a load generator that differs between builds would be measured as a difference of
#   warden (it was once: an older `warden-load` timed open-loop calls from their slot).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=$1; SECONDS_PER_RUN=$2; shift 2
TOOLS=$1
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
source bench/lib.sh

one_build() { # DIR
  local bin=$1 dir ECHO_PORT ECHO_PID AGENT_PORT OP_PORT WARDEN_PID token url
  dir=$(mktemp -d -p "$tmp")
  start_echo "$TOOLS" "$dir/echo.log"
  echo_charter > "$dir/charter.yaml"
  start_warden "$bin" "$dir/charter.yaml" "$dir/data" "$dir/warden.log"
  token=$(open_session "$bin" "$dir/data" | json_field token)
  url="http://127.0.0.1:$AGENT_PORT/mcp"
  load() { # seconds, then more of warden-load's options
    local seconds=$1; shift
    "$TOOLS/warden-load" --url "$url" --token "$token" --tool echo.echo --warmup 1 --seconds "$seconds" "$@"
  }
  load 2 > /dev/null
  local one fifty rate
  one=$(load "$SECONDS_PER_RUN")
  fifty=$(load "$SECONDS_PER_RUN" --concurrency 50)
  rate=$(load "$SECONDS_PER_RUN" --concurrency 50 --rate 1000)
  kill "$WARDEN_PID" "$ECHO_PID" 2>/dev/null || true
  wait "$WARDEN_PID" "$ECHO_PID" 2>/dev/null || true
  python3 - "$bin" "$one" "$fifty" "$rate" <<'PY'
import json, sys
name = sys.argv[1].rstrip("/").split("/")[-1]
a, b, c = (json.loads(x) for x in sys.argv[2:5])
print(f"{name:<12} c=1 p50 {a['p50_us']:>5} µs p99 {a['p99_us']:>5} µs | c=50 {b['calls_per_second']:>7.0f} calls/s"
      f" | 1000/s p50 {c['p50_us']:>5} µs p99 {c['p99_us']:>5} µs max {c['max_us']:>6} µs")
PY
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  for bin in "$@"; do one_build "$bin"; done
done
