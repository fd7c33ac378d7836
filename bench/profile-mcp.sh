#!/usr/bin/env bash
# Where warden's CPU goes in an MCP `tools/call`: the setup of bench/gateway.sh (warden in front
# of warden-echo-server, durable SQLite ledger), then closed loops of 1 and 50 clients through
# warden. For each: warden's CPU per call (user and system time of all its threads, from
# /proc/PID/stat), its context switches per call (every thread, voluntary and not, from
# /proc/PID/task/*/status: each cross-thread hand-off on the call path is one or two), and the
# upstream's CPU per call beside it. Figures of CPU time per call hold on a busy machine, where
# latencies do not.
#
# With PERF=1, the 1-client loop runs under `perf record -g` and the report is printed by
# shared object and symbol. The release binary has no symbol table (Cargo.toml), so warden's
# own code is one block there; build it with `cargo build --profile profiling -p warden
# -p warden-testkit` and run with BIN=target/profiling to see its functions.
#
# Usage: bench/profile-mcp.sh [seconds per run, default 10]
# Environment: BIN=directory of the binaries (default target/release, built first);
# CHECKPOINTS=1 signs checkpoints (a key made with `warden audit keygen`, the default
# `[checkpoints]` settings), to see what the signer costs per call.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
source bench/lib.sh
bench_start
warden_env=()
if [ "${CHECKPOINTS:-0}" = 1 ]; then
  "$BIN/warden" audit keygen --out "$tmp/checkpoint.key" --name bench.example/warden > /dev/null
  warden_env=(WARDEN_CHECKPOINT_KEY="$tmp/checkpoint.key")
fi
echo_gateway "$BIN" "$tmp" "${warden_env[@]}"

ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
load() { # label concurrency seconds
  "$BIN/warden-load" --url "http://127.0.0.1:$AGENT_PORT/mcp" --token "$TOKEN" --tool echo.echo \
    --concurrency "$2" --seconds "$3" --label "$1"
}
measure() { # label concurrency
  local w0 e0 s0 row
  read -r -a w0 <<<"$(ticks "$WARDEN_PID")"; read -r -a e0 <<<"$(ticks "$ECHO_PID")"
  s0=$(switches "$WARDEN_PID")
  if [ "${PERF:-0}" = 1 ] && [ "$2" = 1 ]; then
    perf record -q -g -o "$tmp/perf.data" -p "$WARDEN_PID" -- sleep "$SECONDS_PER_RUN" 2>/dev/null &
    local perf_pid=$!
    row=$(load "$1" "$2" "$SECONDS_PER_RUN")
    wait "$perf_pid" || true
  elif [ "$2" = 1 ] && command -v perf > /dev/null; then
    # The ledger's writes per commit: SQLite writes a WAL frame as two pwrite64 (header, page)
    # and a checkpoint one per page; each commit is one fsync (a checkpoint adds its own).
    perf stat -x, -o "$tmp/io.txt" -e syscalls:sys_enter_pwrite64,syscalls:sys_enter_fsync \
      -p "$WARDEN_PID" -- sleep "$SECONDS_PER_RUN" 2>/dev/null &
    local stat_pid=$!
    row=$(load "$1" "$2" "$SECONDS_PER_RUN")
    wait "$stat_pid" || true
  else
    row=$(load "$1" "$2" "$SECONDS_PER_RUN")
  fi
  read -r -a w1 <<<"$(ticks "$WARDEN_PID")"; read -r -a e1 <<<"$(ticks "$ECHO_PID")"
  echo "$row" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read()); hz = int(sys.argv[1]); calls = max(r["calls"], 1)
us = lambda t: int(t) / hz * 1e6 / calls
wu, ws, eu, es = (us(int(b) - int(a)) for a, b in zip(sys.argv[2:6], sys.argv[6:10]))
cs = (int(sys.argv[11]) - int(sys.argv[10])) / calls
label, errors = r["label"], r["errors"]
print(f"{label:<8} {calls:>7} calls ({errors} errors)  warden CPU/call: {wu + ws:6.0f} µs "
      f"(user {wu:.0f}, system {ws:.0f}), {cs:.1f} context switches/call;  upstream CPU/call: {eu + es:.0f} µs")
' "$(getconf CLK_TCK)" "${w0[0]}" "${w0[1]}" "${e0[0]}" "${e0[1]}" "${w1[0]}" "${w1[1]}" "${e1[0]}" "${e1[1]}" \
    "$s0" "$(switches "$WARDEN_PID")"
  if [ -s "$tmp/io.txt" ]; then
    awk -F, '/pwrite64/ {w = $1} /fsync/ {f = $1} END {
      if (f > 0) printf "         ledger writes: %.1f pwrite64 per fsync (%d fsync)\n", w / f, f }' "$tmp/io.txt"
    rm -f "$tmp/io.txt"
  fi
}

load warmup 4 2 > /dev/null
measure "c=1" 1
measure "c=50" 50
if [ "${PERF:-0}" = 1 ]; then
  echo
  echo "perf, 1 client, warden's samples by shared object (self time):"
  perf report -q -i "$tmp/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^$' | head -12
  echo
  echo "top symbols (self time):"
  perf report -q -i "$tmp/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v '^$' | head -40
fi
