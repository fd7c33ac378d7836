//! Open-loop append latency: single-record appends issued on a fixed schedule (each awaited on
//! its own task, so the rate holds whatever one append costs) into a fresh ledger, then the
//! latency percentiles. Shows the tail a commit path stall (a WAL checkpoint, say) adds.
//!
//! Run: `cargo bench -p warden-audit --bench append_latency`. `WARDEN_BENCH_RATE` sets the
//! appends per second (default 2,000), `WARDEN_BENCH_SECS` the duration (default 15). The
//! ledger lives in a temporary directory on the disk of `TMPDIR`; every append is fsynced.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "bench code"
)]
#![allow(missing_docs, reason = "bench binary")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_audit::{Ledger, LedgerConfig, NewRecord, RecordKind};
use warden_core::SystemClock;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A typical action record: about 200 bytes of canonical payload (as in the `ledger` bench).
fn record(i: u64) -> NewRecord {
    NewRecord {
        session: Some("01JD0000000000000000000000".to_owned()),
        kind: RecordKind::ActionAttempted,
        payload: json!({
            "tool": "fs.read_text_file",
            "args": {"path": format!("/workspace/project/src/module_{i}/file.rs")},
            "principal": "alice",
            "rule": "read-workspace",
            "tier": "autonomous",
            "charter": "blake3:5d1c0e4b9a7f3c21",
        }),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that is not ours skips the run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"append_latency".contains(a.as_str()))
    {
        return;
    }
    let rate = env_u64("WARDEN_BENCH_RATE", 2_000).max(1);
    let secs = env_u64("WARDEN_BENCH_SECS", 15).max(1);
    let total = rate * secs;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (latencies, elapsed, records) = rt.block_on(async {
        let ledger = Ledger::open(dir.path(), Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap();
        let period = Duration::from_secs_f64(1.0 / rate as f64);
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
            let ledger = ledger.clone();
            #[expect(
                clippy::disallowed_methods,
                reason = "each append is awaited below, before the ledger shuts down"
            )]
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                ledger.append(record(i)).await.unwrap();
                t.elapsed()
            }));
        }
        let mut latencies = Vec::with_capacity(tasks.len());
        for t in tasks {
            latencies.push(t.await.unwrap());
        }
        let elapsed = start.elapsed();
        ledger.shutdown().await.unwrap();
        (latencies, elapsed, total)
    });
    let mut sorted = latencies;
    sorted.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let wal = std::fs::metadata(dir.path().join("ledger.db-wal")).map_or(0, |m| m.len());
    let db = std::fs::metadata(dir.path().join("ledger.db")).map_or(0, |m| m.len());
    println!(
        "append_latency: {records} appends at {rate}/s in {:.2} s ({:.0}/s); \
         p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs; \
         over 1 ms: {}, over 5 ms: {}; ledger.db {} KiB, WAL after close {} KiB",
        elapsed.as_secs_f64(),
        records as f64 / elapsed.as_secs_f64(),
        us(percentile(&sorted, 0.50)),
        us(percentile(&sorted, 0.90)),
        us(percentile(&sorted, 0.99)),
        us(percentile(&sorted, 0.999)),
        us(percentile(&sorted, 1.0)),
        sorted
            .iter()
            .filter(|d| **d > Duration::from_millis(1))
            .count(),
        sorted
            .iter()
            .filter(|d| **d > Duration::from_millis(5))
            .count(),
        db / 1024,
        wal / 1024,
    );
}
