#!/usr/bin/env bash
# The SQLite ledger's WAL under an open loop of MCP `tools/call` through warden (the setup of
# bench/gateway.sh: warden-echo-server behind it, durable SQLite ledger): the latency, then
# the length of `ledger.db-wal` (the longest the WAL has been: SQLite writes over the file when
# the WAL starts again from its beginning, and never shortens it) and the gateway's checkpoint
# metrics. A WAL that never starts again grows to its bound (8,000 pages, about 33 MB), where
# the writer checkpoints on the commit path.
#
# Usage: bench/wal.sh [seconds, default 60] [calls/s, default 1000]
# Environment: BIN=directory of the binaries (default target/release, built first).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-60}
RATE=${2:-1000}
source bench/lib.sh
bench_start
echo_gateway "$BIN" "$tmp"

out=$("$BIN/warden-load" --url "http://127.0.0.1:$AGENT_PORT/mcp" --token "$TOKEN" \
  --tool echo.echo --concurrency 50 --rate "$RATE" --seconds "$SECONDS_PER_RUN" --warmup 1)
printf '%s calls at %s/s: p50 %s µs  p99 %s µs  max %s µs\n' "$(json_field calls <<<"$out")" \
  "$RATE" "$(json_field p50_us <<<"$out")" "$(json_field p99_us <<<"$out")" \
  "$(json_field max_us <<<"$out")"
echo "ledger.db-wal: $(stat -c %s "$tmp/data/ledger.db-wal") bytes"
curl -sf -H "Authorization: Bearer $(cat "$tmp/data/operator.token")" \
  "http://127.0.0.1:$OP_PORT/metrics" |
  grep -E '^warden_ledger_wal_checkpoint(s_on_commit_path_total|_seconds_count)'
