#!/usr/bin/env bash
# Benchmarks OpenAI chat completions, side by side in one run: the same mock provider called
# directly, through warden's model proxy, and through the LiteLLM proxy.
#
# Upstream: warden-mock-llm (crates/warden-testkit; echoes the prompt, streaming or not).
# Through warden: session-token authentication, the request recorded in the ledger before it is
# forwarded (durable: SQLite WAL, synchronous=FULL, group commit), the answer relayed — a
# complete one only after its completion (and any intents) is recorded, a stream as it arrives
# with its completion recorded at its end. Through LiteLLM: its proxy (pinned below) with a
# master key, no database, one worker.
#
# Closed loop, 50 connections, non-streaming and streaming: requests/s, p50/p99, the latency
# each proxy adds over the direct run of the same mode, and each proxy's peak RSS (VmHWM, reset
# before each run) and CPU time per request. Then an open loop at a fixed rate (50 connections)
# that every target sustains, and one at 1,000 requests/s for direct and warden, where the
# added latency is the proxy's own work rather than queueing behind a saturated CPU (open-loop
# latency counts from each send; how late the load generator's timer made the sends is printed).
#
# The floor: the disk's durable-write latency (warden-fsync-probe: a 4 KiB page and fdatasync,
# as a WAL commit) on warden's data directory's filesystem, measured in the same run before and
# after the loads; warden's added latency at the high rate is printed as "floor + overhead".
#
# Usage: bench/models.sh [seconds per run, default 10]
# Environment: LOW_RATE (default 25 requests/s, all three targets), HIGH_RATE (default 1000,
# direct and warden), OPEN_LOOP=0 to skip the open-loop runs; for experiments, WARDEN (another
# warden binary) and DATA_PARENT (where warden's data directory goes, e.g. /dev/shm to take the
# disk's fsync out); LITELLM=0 leaves LiteLLM out (direct and warden only); CONSOLE=1 keeps the
# console open on the live timeline of the bench's session and OTLP=1 exports spans to an OTLP
# receiver (bench/extras.sh says how): compare a run without and one with them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
LOW_RATE=${LOW_RATE:-25}
HIGH_RATE=${HIGH_RATE:-1000}
OPEN_LOOP=${OPEN_LOOP:-1}
LITELLM=${LITELLM:-1}
source bench/extras.sh
LITELLM_VERSION=1.106.2
VENV=bench/.venv-litellm

cargo build --release -q -p warden -p warden-testkit
BIN=target/release
INSTALLED="(not run)"
if [ "$LITELLM" = 1 ] && [ ! -x "$VENV/bin/litellm" ]; then
  echo "creating $VENV with litellm[proxy]==$LITELLM_VERSION (a few minutes)..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"
fi
[ "$LITELLM" = 1 ] && INSTALLED=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')

WARDEN=${WARDEN:-$BIN/warden}
tmp=$(mktemp -d)
data=$(mktemp -d "${DATA_PARENT:-$tmp}/warden-data.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$data" "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # url what
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "$2 did not become ready" >&2
  return 1
}
MOCK_PORT=$(free_port); AGENT_PORT=$(free_port); OP_PORT=$(free_port); LITELLM_PORT=$(free_port)
MOCK="http://127.0.0.1:$MOCK_PORT"

"$BIN/warden-mock-llm" --listen "127.0.0.1:$MOCK_PORT" > "$tmp/mock.log" 2>&1 &
MOCK_PID=$!
pids+=("$MOCK_PID")
wait_for "$MOCK/v1/models" "the mock"

cat > "$tmp/charter.yaml" <<YAML
version: 1
identity: { id: bench-agent, name: Bench, purpose: benchmarks, serves: the benchmark }
inventory:
  models:
    - alias: bench
      routes:
        - { provider: openai, base_url: "$MOCK/v1", model: bench-model }
authority:
  roles: [{ id: ops, approve: [default] }]
  principals: [{ id: bench, roles: [ops] }]
YAML
extras_env > "$tmp/extras.env"
env $(cat "$tmp/extras.env") WARDEN_LOG=warn "$WARDEN" serve --charter "$tmp/charter.yaml" --data "$data" \
  --agent-listen "127.0.0.1:$AGENT_PORT" --operator-listen "127.0.0.1:$OP_PORT" > "$tmp/warden.log" 2>&1 &
WARDEN_PID=$!
pids+=("$WARDEN_PID")
wait_for "http://127.0.0.1:$AGENT_PORT/healthz" "warden" || { cat "$tmp/warden.log" >&2; exit 1; }
OPENED=$("$WARDEN" session open --agent bench-agent --user bench --ttl 2h --json \
  --operator-url "http://127.0.0.1:$OP_PORT" --data "$data")
TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$OPENED")
SESSION_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$OPENED")
extras_start "http://127.0.0.1:$OP_PORT" "$data" "$SESSION_ID"

TARGETS=(direct warden)
if [ "$LITELLM" = 1 ]; then
TARGETS+=(litellm)
cat > "$tmp/litellm.yaml" <<YAML
model_list:
  - model_name: bench
    litellm_params: { model: openai/bench-model, api_base: "$MOCK/v1", api_key: x }
general_settings: { master_key: sk-bench }
litellm_settings: { telemetry: false, set_verbose: false }
YAML
LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
  "$VENV/bin/litellm" --config "$tmp/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" \
  --num_workers 1 > "$tmp/litellm.log" 2>&1 &
LITELLM_PID=$!
pids+=("$LITELLM_PID")
wait_for "http://127.0.0.1:$LITELLM_PORT/health/liveliness" "LiteLLM" || { tail -20 "$tmp/litellm.log" >&2; exit 1; }
fi

# target -> "url key pid"
declare -A URL=([direct]="$MOCK" [warden]="http://127.0.0.1:$AGENT_PORT" [litellm]="http://127.0.0.1:$LITELLM_PORT")
declare -A KEY=([direct]="" [warden]="$TOKEN" [litellm]="sk-bench")
declare -A PID=([direct]="$MOCK_PID" [warden]="$WARDEN_PID" [litellm]="${LITELLM_PID:-}")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
results="$tmp/results.jsonl"
procs="$tmp/procs.jsonl"
run() { # target mode(plain|stream) loop(closed|RATE)
  local target=$1 mode=$2 loop=$3 pid=${PID[$1]}
  local label="$target $mode $loop"
  local args=(--url "${URL[$target]}" --model bench --concurrency 50 --warmup 2s
    --duration "${SECONDS_PER_RUN}s" --label "$label")
  [ -n "${KEY[$target]}" ] && args+=(--key "${KEY[$target]}")
  [ "$mode" = stream ] && args+=(--stream)
  [ "$loop" != closed ] && args+=(--rate "$loop")
  echo 5 > "/proc/$pid/clear_refs" 2>/dev/null || true # resets VmHWM
  local t0; t0=$(cpu_ticks "$pid")
  "$BIN/warden-llm-load" "${args[@]}" >> "$results"
  local t1; t1=$(cpu_ticks "$pid")
  local hwm; hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  echo "{\"label\": \"$label\", \"rss_kb\": $hwm, \"cpu_ticks\": $((t1 - t0))}" >> "$procs"
  echo "  done: $label" >&2
}

floor="$tmp/floor.jsonl"
"$BIN/warden-fsync-probe" --dir "$data" --seconds 3 >> "$floor"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before the runs: $LOAD_START" >&2
for mode in plain stream; do
  for target in "${TARGETS[@]}"; do run "$target" "$mode" closed; done
done
if [ "$OPEN_LOOP" = 1 ]; then
  for mode in plain stream; do
    for target in "${TARGETS[@]}"; do run "$target" "$mode" "$LOW_RATE"; done
    for target in direct warden; do run "$target" "$mode" "$HIGH_RATE"; done
  done
fi
extras_report > "$tmp/extras.txt"
"$BIN/warden-fsync-probe" --dir "$data" --seconds 3 >> "$floor"
RECORDS=$("$WARDEN" audit verify --data "$data" --format json 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin).get("records", "?"))' || echo "?")

python3 - "$results" "$procs" "$RECORDS" "$INSTALLED" "$LOAD_START" "$(nproc)" "$floor" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
procs = {p["label"]: p for p in map(json.loads, open(sys.argv[2]))}
records, version, load, cores = sys.argv[3:7]
floors = [json.loads(l) for l in open(sys.argv[7])]
by = {r["label"]: r for r in rows}
HZ = 100  # clock ticks per second (getconf CLK_TCK)

def fmt(us):
    return f"{us / 1000:.2f} ms" if abs(us) >= 1000 else f"{us} µs"

print(f"\nlitellm {version}; {cores} cores shared by the load generator, the mock and the proxies; "
      f"load average at the start: {load}\n")
loops = []
for r in rows:
    loop = r["label"].split()[2]
    if loop not in loops:
        loops.append(loop)
for loop in loops:
    title = "closed loop, 50 connections" if loop == "closed" else f"open loop, {loop} requests/s, 50 connections"
    print(f"== {title}")
    print(f"{'target':<9}{'mode':<8}{'req/s':>9}{'err':>5}{'p50':>11}{'p99':>11}{'added p50':>11}{'added p99':>11}"
          f"{'TTFB p50':>10}{'peak RSS':>10}{'CPU/req':>10}")
    for mode in ["plain", "stream"]:
        d = by.get(f"direct {mode} {loop}")
        for target in ["direct", "warden", "litellm"]:
            r = by.get(f"{target} {mode} {loop}")
            if r is None:
                continue
            p = procs[r["label"]]
            added = lambda k: "" if d is None or target == "direct" else fmt(r[k] - d[k])
            n = r["count"] + r["errors"]
            cpu = f"{p['cpu_ticks'] / HZ / n * 1e6:.0f} µs" if n else ""
            rss = f"{p['rss_kb'] / 1024:.1f} MiB" + ("*" if target == "direct" else "")
            ttfb = fmt(r["ttfb_p50_us"]) if mode == "stream" else ""
            print(f"{target:<9}{mode:<8}{r['requests_per_second']:>9.0f}{r['errors']:>5}{fmt(r['p50_us']):>11}"
                  f"{fmt(r['p99_us']):>11}{added('p50_us'):>11}{added('p99_us'):>11}{ttfb:>10}{rss:>10}{cpu:>10}")
            if r["errors"]:
                print(f"    first error: {r['first_error']}")
    for mode in ["plain", "stream"]:
        d, w, l = (by.get(f"{t} {mode} {loop}") for t in ["direct", "warden", "litellm"])
        if d and w and l:
            def ratio(k):
                wa, la = w[k] - d[k], l[k] - d[k]
                return f"{la / wa:.0f}x" if wa > 0 else "n/a (warden added nothing measurable)"
            print(f"  {mode}: LiteLLM-added / warden-added = {ratio('p50_us')} at p50, {ratio('p99_us')} at p99")
    late = [r["late_p99_us"] for r in rows if r["label"].split()[2] == loop and "late_p99_us" in r]
    if late:
        print(f"  sends behind schedule (the load generator's timer), p99: at most {fmt(max(late))}")
    print()
for when, f in zip(["before the loads", "after the loads"], floors):
    print(f"fsync floor ({when}): p50 {fmt(f['p50_us'])}   p99 {fmt(f['p99_us'])}   ({f['writes']} writes of 4 KiB + fdatasync)")
fp50, fp99 = max(f["p50_us"] for f in floors), max(f["p99_us"] for f in floors)
for mode in ["plain", "stream"]:
    for loop in loops:
        if loop == "closed":
            continue
        d, w = by.get(f"direct {mode} {loop}"), by.get(f"warden {mode} {loop}")
        if d and w:
            a50, a99 = w["p50_us"] - d["p50_us"], w["p99_us"] - d["p99_us"]
            print(f"added by warden, {mode} at {loop}/s: p50 {fmt(a50)} = floor {fmt(fp50)} + {fmt(a50 - fp50)}   "
                  f"p99 {fmt(a99)} = floor {fmt(fp99)} + {fmt(a99 - fp99)}")
print("* the mock's own RSS and CPU (no proxy in the path).")
print(f"warden ledger records after the run: {records}")
PY
cat "$tmp/extras.txt"
