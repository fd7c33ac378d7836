#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark program"
)]
//! How many records per second each sink takes from a real ledger, and the process's peak
//! RSS while it does (`bench/export.sh` runs it in release; docs/benchmarks.md has figures).
//!
//! 1. `backlog`: a ledger of N records is written first; then an exporter starts at its first
//!    record and the time until the sink acknowledged the last one is measured: the rate a
//!    sink catches up at (file sink on this machine's disk; HTTP sink to a receiver in the
//!    same process on loopback that parses every batch's JSON).
//! 2. `live`: the exporter follows while 64 appenders write N records as fast as the ledger
//!    takes them (the ledger's peak append rate, ~136k records/s on an idle machine): the
//!    append rate, the export's rate, and the lag left when the appends end; first without an
//!    exporter (`none`), for the append rate the machine gives now.
//!
//! Peak RSS is the process's `VmHWM`, reset (`/proc/self/clear_refs`) before each run: the
//! ledger writer, the receiver and the exporter together, so an upper bound of the exporter's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_audit::{Ledger, LedgerConfig, LedgerReader, NewRecord, RecordKind};
use warden_core::SystemClock;
use warden_export::{Exporter, SinkConfig, Target};
use warden_telemetry::{Bounds, Telemetry};

fn status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn record(i: usize) -> NewRecord {
    // As the ledger bench writes: an attempt with a session and a 200-byte payload.
    NewRecord::new(
        Some("s-bench-000000000000"),
        RecordKind::ActionAttempted,
        json!({ "tool": "fs.read_file", "i": i, "pad": "x".repeat(160) }),
    )
}

async fn receiver(records: Arc<AtomicU64>) -> String {
    async fn ingest(State(n): State<Arc<AtomicU64>>, body: Bytes) -> &'static str {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let got = v
            .get("records")
            .and_then(|r| r.as_array())
            .map_or(0, Vec::len);
        n.fetch_add(got as u64, Ordering::Relaxed);
        "ok"
    }
    let app = Router::new()
        .route("/ingest", post(ingest))
        .with_state(records);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    TaskTracker::new().spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

struct Run {
    stats: Arc<warden_export::Stats>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

async fn start(sink: SinkConfig, data: &std::path::Path, ledger: &Ledger) -> Run {
    let reader = LedgerReader::open(data).await.unwrap();
    let exporter = Exporter::open(sink, data, &reader, "bench").await.unwrap();
    let stats = exporter.stats();
    let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
    tasks.spawn(exporter.run(
        reader,
        ledger.watch_head(),
        ledger.clone(),
        Arc::new(Telemetry::new(Bounds::default())),
        stop.clone(),
    ));
    Run { stats, stop, tasks }
}

async fn until_acked(stats: &warden_export::Stats, seq: u64) {
    while stats.acked.load(Ordering::Acquire) < seq {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn sinks(kind: &str, out: &std::path::Path, url: &str) -> SinkConfig {
    match kind {
        "file" => SinkConfig::new(
            "file",
            Target::File {
                dir: out.join("files"),
            },
        ),
        _ => SinkConfig::new(
            "http",
            Target::Http {
                url: url.to_owned(),
                headers: vec![],
            },
        ),
    }
}

async fn backlog(kind: &str, n: usize, url: &str) {
    let data = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(data.path(), Arc::new(SystemClock), LedgerConfig::default())
        .await
        .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(512) {
        ledger
            .append_batch(chunk.iter().map(|i| record(*i)).collect())
            .await
            .unwrap();
    }
    let head = *ledger.watch_head().borrow();
    let base = status("VmRSS:");
    reset_peak();
    let started = Instant::now();
    let run = start(sinks(kind, data.path(), url), data.path(), &ledger).await;
    until_acked(&run.stats, head).await;
    let took = started.elapsed();
    let peak = status("VmHWM:");
    run.stop.cancel();
    run.tasks.close();
    run.tasks.wait().await;
    ledger.shutdown().await.unwrap();
    println!(
        "backlog {kind:<4} {head:>7} records in {:>6.2} s: {:>9.0} records/s; batches {:>4}, largest {} records / {} KiB; RSS before {} MiB, peak {} MiB",
        took.as_secs_f64(),
        head as f64 / took.as_secs_f64(),
        run.stats.batches.load(Ordering::Relaxed),
        run.stats.max_batch_records.load(Ordering::Relaxed),
        run.stats.max_batch_bytes.load(Ordering::Relaxed) / 1024,
        base / 1024,
        peak / 1024,
    );
}

async fn live(kind: &str, n: usize, url: &str) {
    let data = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(data.path(), Arc::new(SystemClock), LedgerConfig::default())
        .await
        .unwrap();
    let base = status("VmRSS:");
    reset_peak();
    let run = match kind {
        "none" => None,
        _ => Some(start(sinks(kind, data.path(), url), data.path(), &ledger).await),
    };
    let started = Instant::now();
    let appenders = TaskTracker::new();
    let per = n / 64;
    for a in 0..64 {
        let ledger = ledger.clone();
        appenders.spawn(async move {
            for i in 0..per {
                ledger.append(record(a * per + i)).await.unwrap();
            }
        });
    }
    appenders.close();
    appenders.wait().await;
    let appended = started.elapsed();
    let head = *ledger.watch_head().borrow();
    let Some(run) = run else {
        ledger.shutdown().await.unwrap();
        println!(
            "live    none {head:>7} records: appended at {:>7.0} records/s (64 appenders), no exporter",
            head as f64 / appended.as_secs_f64(),
        );
        return;
    };
    let lag = head.saturating_sub(run.stats.acked.load(Ordering::Acquire));
    until_acked(&run.stats, head).await;
    let exported = started.elapsed();
    let peak = status("VmHWM:");
    run.stop.cancel();
    run.tasks.close();
    run.tasks.wait().await;
    ledger.shutdown().await.unwrap();
    println!(
        "live    {kind:<4} {head:>7} records: appended at {:>7.0} records/s (64 appenders); exported all {:>5.2} s after the start ({:>7.0} records/s), lag {lag} when the appends ended; RSS before {} MiB, peak {} MiB",
        head as f64 / appended.as_secs_f64(),
        exported.as_secs_f64(),
        head as f64 / exported.as_secs_f64(),
        base / 1024,
        peak / 1024,
    );
}

fn main() {
    let n: usize = std::env::var("WARDEN_BENCH_EXPORT_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let received = Arc::new(AtomicU64::new(0));
        let url = receiver(received.clone()).await;
        for kind in ["file", "http"] {
            backlog(kind, n, &url).await;
        }
        for kind in ["none", "file", "http"] {
            live(kind, n, &url).await;
        }
        eprintln!(
            "the HTTP receiver parsed {} records",
            received.load(Ordering::Relaxed)
        );
    });
}
