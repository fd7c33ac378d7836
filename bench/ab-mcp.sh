#!/usr/bin/env bash
# Builds compared back to back, for a machine whose speed drifts (a shared VM): for each round,
# each build in turn gets a fresh warden (durable SQLite ledger) in front of its own
# warden-echo-server, then closed loops of 1 and 50 clients and an open loop of 1,000 calls/s
# at 50 connections, each printed on one line. Compare builds within a round, and rounds
# against each other to see the drift.
#
# Usage: bench/ab-mcp.sh ROUNDS SECONDS DIR...
#   DIR: a directory holding `warden`, `warden-echo-server` and `warden-load` of one build
#   (copy them out of target/release after each build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=$1; SECONDS_PER_RUN=$2; shift 2
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

one_build() { # DIR
  local bin=$1 dir ECHO_PORT AGENT_PORT OP_PORT echo_pid warden_pid token url
  dir=$(mktemp -d -p "$tmp")
  ECHO_PORT=$(free_port); AGENT_PORT=$(free_port); OP_PORT=$(free_port)
  "$bin/warden-echo-server" --listen "127.0.0.1:$ECHO_PORT" > "$dir/echo.log" 2>&1 &
  echo_pid=$!; pids+=("$echo_pid")
  cat > "$dir/charter.yaml" <<YAML
version: 1
identity: { id: bench-agent, name: Bench, purpose: benchmarks, serves: the benchmark }
inventory:
  servers:
    - { id: echo, url: "http://127.0.0.1:$ECHO_PORT/mcp", tools: [echo] }
actions:
  rules:
    - { id: echo, tool: echo.echo, tier: autonomous, args: { text: { regex: "hello [0-9]+ [0-9]+" } } }
authority:
  roles: [{ id: ops, approve: [default] }]
  principals: [{ id: bench, roles: [ops] }]
YAML
  WARDEN_LOG=warn "$bin/warden" serve --charter "$dir/charter.yaml" --data "$dir/data" \
    --agent-listen "127.0.0.1:$AGENT_PORT" --operator-listen "127.0.0.1:$OP_PORT" > "$dir/warden.log" 2>&1 &
  warden_pid=$!; pids+=("$warden_pid")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$AGENT_PORT/healthz" > /dev/null 2>&1 && break; sleep 0.1; done
  token=$("$bin/warden" session open --agent bench-agent --user bench --ttl 2h --json \
    --operator-url "http://127.0.0.1:$OP_PORT" --data "$dir/data" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  url="http://127.0.0.1:$AGENT_PORT/mcp"
  load() { # seconds, then more of warden-load's options
    local seconds=$1; shift
    "$bin/warden-load" --url "$url" --token "$token" --tool echo.echo --warmup 1 --seconds "$seconds" "$@"
  }
  load 2 > /dev/null
  local one fifty rate
  one=$(load "$SECONDS_PER_RUN")
  fifty=$(load "$SECONDS_PER_RUN" --concurrency 50)
  rate=$(load "$SECONDS_PER_RUN" --concurrency 50 --rate 1000)
  kill "$warden_pid" "$echo_pid" 2>/dev/null || true
  wait "$warden_pid" "$echo_pid" 2>/dev/null || true
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
