#!/usr/bin/env bash
# A lone agent's calls: an MCP `tools/call` through warden (the setup of bench/gateway.sh:
# warden-echo-server behind it, durable SQLite ledger) at a low, steady rate, against the same
# call at higher rates and in a closed loop. For each: the latency, warden's CPU per call and its
# context switches per call (all threads, /proc). Then the low rate again with a second load of
# 500 calls/s beside it, alternately without and with: what the low rate pays for an idle
# process (threads asleep, caches cold) rather than for its own work.
#
# Usage: bench/low-rate.sh [seconds per run, default 8]
# Environment: BIN=directory of the binaries (default target/release, built first).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-8}
source bench/lib.sh
bench_start
echo_gateway "$BIN" "$tmp"

through() { "$BIN/warden-load" --url "http://127.0.0.1:$AGENT_PORT/mcp" --token "$TOKEN" --tool echo.echo "$@"; }
ticks() { awk '{print $14 + $15}' "/proc/$WARDEN_PID/stat"; }
HZ=$(getconf CLK_TCK)

# run LABEL [warden-load options]: one client, SECONDS_PER_RUN seconds, one line of figures.
run() {
  local label=$1 t0 s0 out calls
  shift
  t0=$(ticks); s0=$(switches "$WARDEN_PID")
  out=$(through --concurrency 1 --seconds "$SECONDS_PER_RUN" --warmup 0 "$@")
  calls=$(json_field calls <<<"$out")
  printf '%-22s %6s calls  p50 %5s µs  p99 %5s µs  warden CPU/call %5s µs  switches/call %s\n' \
    "$label" "$calls" "$(json_field p50_us <<<"$out")" "$(json_field p99_us <<<"$out")" \
    $(( ($(ticks) - t0) * 1000000 / HZ / calls )) $(( ($(switches "$WARDEN_PID") - s0) / calls ))
}

through --concurrency 1 --seconds 1 --warmup 0 > /dev/null   # the first calls (connections, caches)
echo "== one client, through warden"
run "25 calls/s" --rate 25
run "200 calls/s" --rate 200
run "closed loop"
echo "== direct to the echo server, 25 calls/s"
direct=$("$BIN/warden-load" --url "http://127.0.0.1:$ECHO_PORT/mcp" --tool echo --concurrency 1 \
  --rate 25 --seconds "$SECONDS_PER_RUN" --warmup 1)
echo "p50 $(json_field p50_us <<<"$direct") µs  p99 $(json_field p99_us <<<"$direct") µs"

echo "== 25 calls/s through warden, alone and with 500 calls/s (5 connections) beside it"
for beside in 0 500 0 500; do
  bg=
  if [ "$beside" != 0 ]; then
    through --concurrency 5 --rate "$beside" --seconds $((SECONDS_PER_RUN + 3)) --warmup 0 > /dev/null &
    bg=$!
    sleep 0.5
  fi
  out=$(through --concurrency 1 --rate 25 --seconds "$SECONDS_PER_RUN" --warmup 1)
  [ -n "$bg" ] && wait "$bg"
  printf 'beside it %3s calls/s:  p50 %5s µs  p90 %5s µs  p99 %5s µs\n' "$beside" \
    "$(json_field p50_us <<<"$out")" "$(json_field p90_us <<<"$out")" "$(json_field p99_us <<<"$out")"
done
