#!/usr/bin/env bash
# Benchmarks the gateway on PostgreSQL (`STORE=postgres bench/gateway.sh` runs this): an MCP
# `tools/call` through one instance, then through three instances of a fleet on one database
# (the load spread evenly over them), against the same upstream called directly; and a
# preapproved rule whose per-day scope every call counts (one shared counter row: contention)
# through one and three instances. Prints calls/s, latency percentiles, the latency warden
# adds, the ledger records appended per second and the transactions per second PostgreSQL
# committed during each run, and the connections the fleet held.
#
# PostgreSQL: the cluster at WARDEN_TEST_PG_URL (`postgres://user@host:port`), or, when it is
# unset, a throwaway cluster started here like scripts/test.sh does (fsync and synchronous
# commit on: as durable as the SQLite ledger's synchronous=FULL), removed at exit. Each part
# runs on a fresh database.
#
# Usage: STORE=postgres bench/gateway.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}

cargo build --release -q -p warden -p warden-testkit
BIN=${CARGO_TARGET_DIR:-target}/release
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[[ -x $PG_BIN/psql ]] || { echo "PostgreSQL is needed (Debian's postgresql package)" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
PG_DIR=
run_pg=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $PG_DIR ]]; then
    "${run_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

source bench/lib.sh

if [[ -z ${WARDEN_TEST_PG_URL:-} ]]; then
  PG_DIR=$(mktemp -d /tmp/warden-bench-pg.XXXXXX)
  if [[ $(id -u) == 0 ]]; then
    chown postgres:postgres "$PG_DIR"
    run_pg=(runuser -u postgres --)
  fi
  port=$(free_port)
  "${run_pg[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U warden >/dev/null
  "${run_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
  PG_URL="postgres://warden@127.0.0.1:$port"
else
  PG_URL=${WARDEN_TEST_PG_URL%/}
fi
sql() { "$PG_BIN/psql" "$1" -qAt -v ON_ERROR_STOP=1 -c "$2"; }

start_echo "$BIN" "$tmp/echo.log"

echo_charter '{ id: counted, tool: echo.echo, tier: preapproved, args: { text: { regex: "counted [0-9]+ [0-9]+" } }, scope: { per_day: 1000000000 } }' \
  > "$tmp/charter.yaml"

# start_fleet DB N: N instances (gw-a, gw-b, …) on a fresh database DB; sets AGENTS (their MCP
# URLs), INSTANCE_PIDS and TOKEN (a session opened through the first).
start_fleet() {
  local db=$1 n=$2 i name agent op
  sql "$PG_URL/postgres" "CREATE DATABASE $db"
  AGENTS=(); INSTANCE_PIDS=()
  for ((i = 0; i < n; i++)); do
    name="gw-$(printf "\\x$(printf %x $((97 + i)))")"
    agent=$(free_port); op=$(free_port)
    # Every instance holds the first one's approval key (an instance with another refuses).
    if ((i > 0)); then
      install -d -m 700 "$tmp/$db-$name"
      install -m 600 "$tmp/$db-gw-a/approval.key" "$tmp/$db-$name/approval.key"
    fi
    WARDEN_LOG=warn "$BIN/warden" serve --charter "$tmp/charter.yaml" --data "$tmp/$db-$name" \
      --store "$PG_URL/$db" --instance "$name" \
      --agent-listen "127.0.0.1:$agent" --operator-listen "127.0.0.1:$op" > "$tmp/$db-$name.log" 2>&1 &
    pids+=($!); INSTANCE_PIDS+=($!)
    for _ in $(seq 1 300); do
      curl -sf "http://127.0.0.1:$agent/readyz" >/dev/null 2>&1 && break
      sleep 0.1
    done
    curl -sf "http://127.0.0.1:$agent/readyz" >/dev/null || { cat "$tmp/$db-$name.log" >&2; exit 1; }
    AGENTS+=("http://127.0.0.1:$agent/mcp")
    [[ $i == 0 ]] && FIRST_OP=$op
  done
  TOKEN=$("$BIN/warden" session open --agent bench-agent --user bench --ttl 2h \
    --operator-url "http://127.0.0.1:$FIRST_OP" --data "$tmp/$db-gw-a")
}
stop_fleet() { for p in "${INSTANCE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

results="$tmp/results.jsonl"
# run LABEL DB PREFIX CONCURRENCY URL...: one warden-load run, with the ledger records the
# store gained and the transactions it committed during it (warm-up included in neither
# figure's time: both are counted over the whole run, warm-up included, and divided by it).
run() {
  local label=$1 db=$2 prefix=$3 c=$4; shift 4
  local args=(--tool "${TOOL:-echo.echo}" --concurrency "$c" --seconds "$SECONDS_PER_RUN" --label "$label" --prefix "$prefix")
  for u in "$@"; do args+=(--url "$u"); done
  [[ -n ${TOKEN:-} ]] && args+=(--token "$TOKEN")
  local rec0 tx0 t0 out rec1 tx1 t1 conns
  rec0=$( [[ -n $db ]] && sql "$PG_URL/$db" "SELECT count(*) FROM ledger_records" || echo 0)
  tx0=$( [[ -n $db ]] && sql "$PG_URL/$db" "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()" || echo 0)
  t0=$(date +%s.%N)
  out=$("$BIN/warden-load" "${args[@]}")
  t1=$(date +%s.%N)
  rec1=$( [[ -n $db ]] && sql "$PG_URL/$db" "SELECT count(*) FROM ledger_records" || echo 0)
  tx1=$( [[ -n $db ]] && sql "$PG_URL/$db" "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()" || echo 0)
  conns=$( [[ -n $db ]] && sql "$PG_URL/postgres" "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'" || echo 0)
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); s=float(sys.argv[5])-float(sys.argv[4]); r["records_per_second"]=round((int(sys.argv[3])-int(sys.argv[2]))/s); r["commits_per_second"]=round((int(sys.argv[7])-int(sys.argv[6]))/s); r["connections"]=int(sys.argv[8]); print(json.dumps(r))' \
    "$out" "$rec0" "$rec1" "$t0" "$t1" "$tx0" "$tx1" "$conns" >> "$results"
}

TOKEN= TOOL=echo
run "direct c=1" "" hello 1 "http://127.0.0.1:$ECHO_PORT/mcp"
run "direct c=50" "" hello 50 "http://127.0.0.1:$ECHO_PORT/mcp"

start_fleet bench_one 1
TOOL=echo.echo
run "1 inst c=1" bench_one hello 1 "${AGENTS[@]}"
run "1 inst c=50" bench_one hello 50 "${AGENTS[@]}"
run "1 inst scope c=50" bench_one counted 50 "${AGENTS[@]}"
stop_fleet

start_fleet bench_three 3
run "3 inst c=3" bench_three hello 3 "${AGENTS[@]}"
run "3 inst c=50" bench_three hello 50 "${AGENTS[@]}"
run "3 inst scope c=50" bench_three counted 50 "${AGENTS[@]}"
stop_fleet

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {r["label"]: r for r in rows}
print(f"{'run':<20}{'calls/s':>9}{'errors':>8}{'p50 µs':>9}{'p99 µs':>9}{'records/s':>11}{'commits/s':>11}{'conns':>7}")
for r in rows:
    print(f"{r['label']:<20}{r['calls_per_second']:>9.0f}{r['errors']:>8}{r['p50_us']:>9}{r['p99_us']:>9}"
          f"{r['records_per_second']:>11}{r['commits_per_second']:>11}{r['connections']:>7}")
print()
for label, direct in [("1 inst c=1", "direct c=1"), ("1 inst c=50", "direct c=50"),
                      ("3 inst c=3", "direct c=1"), ("3 inst c=50", "direct c=50")]:
    d, w = by[direct], by[label]
    print(f"added by warden, {label:<12}: p50 {w['p50_us']-d['p50_us']:>6} µs   p99 {w['p99_us']-d['p99_us']:>6} µs")
PY
