#!/usr/bin/env bash
# Benchmarks an MCP `tools/call` through warden against the same upstream called directly.
#
# Upstream: warden-echo-server (a minimal Streamable HTTP MCP server, JSON responses).
# Through warden: authentication, decision, ledger commit of attempt+decision+forwarded (one
# group-committed transaction), the upstream call, ledger commit of the result — durable
# (SQLite WAL, synchronous=FULL). Runs closed loops with 1 and 50 clients, and an open loop at
# 1,000 calls/s with 50 clients, and prints calls/s, latency percentiles, the latency warden
# adds, warden's peak RSS, and warden's own CPU per call (user + system time during its runs).
# The floor: the disk's durable-write latency (warden-fsync-probe: a 4 KiB page and fdatasync,
# as a WAL commit) is measured in the same run, before and after the loads, on the data
# directory's filesystem, and warden's added latency is printed as "floor + overhead". Last,
# 10,000 sessions are opened (SESSIONS=N to change) and warden's RSS with them open is printed.
#
# Usage: bench/gateway.sh [seconds per run, default 10]
# Environment: STORE=postgres benchmarks the gateway on PostgreSQL instead, one instance and a
# fleet of three (bench/fleet.sh, which says how); CONSOLE=1 keeps the console open on the live timeline of the bench's session,
# OTLP=1 exports spans to an OTLP receiver (bench/extras.sh says how); compare a run without and
# one with them.
set -euo pipefail
cd "$(dirname "$0")/.."
case ${STORE:-sqlite} in
  sqlite) ;;
  postgres) exec bench/fleet.sh "$@" ;;
  *) echo "STORE must be sqlite or postgres" >&2; exit 64 ;;
esac
SECONDS_PER_RUN=${1:-10}
source bench/extras.sh

cargo build --release -q -p warden -p warden-testkit
BIN=target/release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

source bench/lib.sh
start_echo "$BIN" "$tmp/echo.log"
echo_charter > "$tmp/charter.yaml"
extras_env > "$tmp/extras.env"
# shellcheck disable=SC2046 # one VAR=value per word
start_warden "$BIN" "$tmp/charter.yaml" "$tmp/data" "$tmp/warden.log" $(cat "$tmp/extras.env")
OPENED=$(open_session "$BIN" "$tmp/data")
TOKEN=$(json_field token <<<"$OPENED")
SESSION_ID=$(json_field id <<<"$OPENED")
extras_start "http://127.0.0.1:$OP_PORT" "$tmp/data" "$SESSION_ID"

run() { # label url token tool concurrency [rate]
  local args=(--url "$2" --tool "$4" --concurrency "$5" --seconds "$SECONDS_PER_RUN" --label "$1")
  [ -n "$3" ] && args+=(--token "$3")
  [ -n "${6:-}" ] && args+=(--rate "$6")
  "$BIN/warden-load" "${args[@]}"
}

results="$tmp/results.jsonl"
floor="$tmp/floor.jsonl"
"$BIN/warden-fsync-probe" --dir "$tmp/data" --seconds 3 >> "$floor"
# warden's own CPU (user + system, clock ticks) spent during the runs through it: what it costs
# per call, whatever else (a browser, a receiver) shares the cores.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$WARDEN_PID/stat"; }
WARDEN_TICKS=0
through_warden() {
  local before; before=$(cpu_ticks)
  run "$@" >> "$results"
  WARDEN_TICKS=$(( WARDEN_TICKS + $(cpu_ticks) - before ))
}
for c in 1 50; do
  run "direct c=$c" "http://127.0.0.1:$ECHO_PORT/mcp" "" echo "$c" >> "$results"
  through_warden "warden c=$c" "http://127.0.0.1:$AGENT_PORT/mcp" "$TOKEN" echo.echo "$c"
done
run "direct 1000/s" "http://127.0.0.1:$ECHO_PORT/mcp" "" echo 50 1000 >> "$results"
through_warden "warden 1000/s" "http://127.0.0.1:$AGENT_PORT/mcp" "$TOKEN" echo.echo 50 1000
"$BIN/warden-fsync-probe" --dir "$tmp/data" --seconds 3 >> "$floor"

RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$WARDEN_PID/status")
# Open sessions held by the gateway: SESSIONS of them opened through the operator plane (16 at
# a time), then warden's resident and peak memory.
SESSIONS=${SESSIONS:-10000}
python3 - "http://127.0.0.1:$OP_PORT" "$(cat "$tmp/data/operator.token")" "$SESSIONS" <<'PY' > "$tmp/sessions.txt"
import http.client, json, sys, threading, urllib.parse
base, token, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
url = urllib.parse.urlparse(base)
lock, opened, failed = threading.Lock(), [0], [0]
def worker(n):
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = json.dumps({"agent": "bench-agent", "user": "bench", "ttl": "2h"})
    for _ in range(n):
        conn.request("POST", "/v1/sessions", body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = conn.getresponse(); r.read()
        with lock:
            if r.status == 201: opened[0] += 1
            else: failed[0] += 1
threads = [threading.Thread(target=worker, args=(total // 16 + (i < total % 16),)) for i in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(opened[0], failed[0])
PY
read -r SESSIONS_OPENED SESSIONS_FAILED < "$tmp/sessions.txt"
SESSIONS_RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$WARDEN_PID/status")
SESSIONS_HWM_KB=$(awk '/VmHWM/ {print $2}' "/proc/$WARDEN_PID/status")
extras_report > "$tmp/extras.txt"
RECORDS=$("$BIN/warden" audit verify --data "$tmp/data" --format json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("records", "?"))' || echo "?")

python3 - "$results" "$RSS_KB" "$RECORDS" "$WARDEN_TICKS" "$(getconf CLK_TCK)" "$floor" \
  "$SESSIONS_OPENED" "$SESSIONS_FAILED" "$SESSIONS_RSS_KB" "$SESSIONS_HWM_KB" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {r["label"]: r for r in rows}
floors = [json.loads(l) for l in open(sys.argv[6])]
print(f"{'run':<16}{'calls/s':>10}{'errors':>8}{'p50 µs':>9}{'p90 µs':>9}{'p99 µs':>9}")
for r in rows:
    print(f"{r['label']:<16}{r['calls_per_second']:>10.0f}{r['errors']:>8}{r['p50_us']:>9}{r['p90_us']:>9}{r['p99_us']:>9}")
print()
for when, f in zip(["before the loads", "after the loads"], floors):
    print(f"fsync floor ({when}): p50 {f['p50_us']} µs   p99 {f['p99_us']} µs   ({f['writes']} writes of 4 KiB + fdatasync)")
# The floor a run is read against: the worse of the two measurements, per percentile.
fp50 = max(f["p50_us"] for f in floors)
fp99 = max(f["p99_us"] for f in floors)
for mode in ["c=1", "c=50", "1000/s"]:
    d, w = by[f"direct {mode}"], by[f"warden {mode}"]
    a50, a99 = w["p50_us"] - d["p50_us"], w["p99_us"] - d["p99_us"]
    print(f"added by warden, {mode:<7}: p50 {a50:>6} µs = floor {fp50} + {a50 - fp50:>5}   "
          f"p99 {a99:>6} µs = floor {fp99} + {a99 - fp99:>5}")
c50 = by["warden c=50"]["calls_per_second"] / max(by["direct c=50"]["calls_per_second"], 1e-9)
print(f"throughput at 50 clients: {c50 * 100:.0f}% of calling the upstream directly")
print(f"\nwarden peak RSS during the loads: {int(sys.argv[2])/1024:.1f} MiB; ledger records after the run: {sys.argv[3]}")
print(f"with {sys.argv[7]} sessions open ({sys.argv[8]} refused): RSS {int(sys.argv[9])/1024:.1f} MiB, "
      f"peak {int(sys.argv[10])/1024:.1f} MiB")
warden_calls = sum(r["calls"] for r in rows if r["label"].startswith("warden"))
cpu_s = int(sys.argv[4]) / int(sys.argv[5])
if warden_calls:
    print(f"warden CPU during its runs: {cpu_s:.1f} s for {warden_calls} calls = {cpu_s / warden_calls * 1e6:.0f} µs per call")
PY
cat "$tmp/extras.txt"
