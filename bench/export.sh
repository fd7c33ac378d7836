#!/usr/bin/env bash
# Benchmarks the export sinks (crates/warden-export): the records per second a file sink and
# an HTTP sink (a receiver in the same process, on loopback, parsing every batch) take from a
# real ledger — catching up on a backlog, and following 64 appenders writing as fast as the
# ledger takes them — and the process's peak RSS meanwhile. Prints one line per run.
#
# Usage: bench/export.sh            (WARDEN_BENCH_EXPORT_RECORDS=200000 by default)
# The figures and the machine are in docs/benchmarks.md ("Export").
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p warden-export --example export_bench
exec "${CARGO_TARGET_DIR:-target}/release/examples/export_bench"
