//! Criterion benchmarks of the ledger: durable append throughput with group commit, verify
//! throughput through SQLite, and the pure chain and Merkle tree work per record.
//!
//! Run: `cargo bench -p warden-audit --bench ledger`. The ledgers live in a temporary
//! directory on the same disk as `TMPDIR` (every append is fsynced: the figure is the disk's).
//! `WARDEN_BENCH_VERIFY_RECORDS` sets the size of the ledger `verify` reads (default 200,000).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "bench code"
)]
#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use warden_audit::chain::{
    GENESIS_HASH, RecordRef, Verifier, canonical_json, format_time, record_hash,
};
use warden_audit::merkle;
use warden_audit::{Ledger, LedgerConfig, LedgerReader, NewRecord, RecordKind};
use warden_core::{Clock, SystemClock};

/// A typical action record: about 200 bytes of canonical payload.
fn payload(i: u64) -> Value {
    json!({
        "tool": "fs.read_text_file",
        "args": {"path": format!("/workspace/project/src/module_{i}/file.rs")},
        "principal": "alice",
        "rule": "read-workspace",
        "tier": "autonomous",
        "charter": "blake3:5d1c0e4b9a7f3c21",
    })
}

fn record(i: u64) -> NewRecord {
    NewRecord {
        session: Some("01JD0000000000000000000000".to_owned()),
        kind: RecordKind::ActionAttempted,
        payload: payload(i),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `appenders` tasks make `total` appends between them, each waiting for its commit; an
/// append is one record, or a batch of `per_append` records.
#[expect(
    clippy::disallowed_methods,
    reason = "the appenders are awaited before this returns"
)]
async fn append_concurrently(ledger: &Ledger, appenders: u64, per_append: u64, total: u64) {
    let tasks: Vec<_> = (0..appenders)
        .map(|t| {
            let ledger = ledger.clone();
            let n = total / appenders + u64::from(t < total % appenders);
            tokio::spawn(async move {
                for i in 0..n {
                    if per_append == 1 {
                        ledger.append(record(i)).await.unwrap();
                    } else {
                        let batch = (0..per_append).map(|j| record(i * per_append + j));
                        ledger.append_batch(batch.collect()).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn bench_append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let ledger = rt.block_on(async {
        Ledger::open(dir.path(), Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap()
    });
    let mut group = c.benchmark_group("ledger_append");
    // (appenders, records per append): one at a time (the fsync latency), 64 and 256 tasks
    // appending single records, and 64 tasks appending attempted + decided pairs as the
    // gateway does.
    for (appenders, per_append) in [(1u64, 1u64), (64, 1), (256, 1), (64, 2)] {
        group.throughput(Throughput::Elements(per_append));
        group.bench_with_input(
            BenchmarkId::new("durable", format!("{appenders}_appenders_x{per_append}")),
            &(appenders, per_append),
            |b, &(appenders, per_append)| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    rt.block_on(append_concurrently(&ledger, appenders, per_append, iters));
                    start.elapsed()
                });
            },
        );
    }
    group.finish();
    rt.block_on(ledger.shutdown()).unwrap();
}

fn bench_verify(c: &mut Criterion) {
    let n: u64 = std::env::var("WARDEN_BENCH_VERIFY_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let ledger = Ledger::open(dir.path(), Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap();
        // Batches of 1,000 so that building the ledger takes a few seconds, not minutes.
        for chunk in 0..n.div_ceil(1000) {
            let batch = (chunk * 1000..((chunk + 1) * 1000).min(n))
                .map(record)
                .collect();
            ledger.append_batch(batch).await.unwrap();
        }
        ledger.shutdown().await.unwrap();
    });
    let reader = rt.block_on(LedgerReader::open(dir.path())).unwrap();
    let mut group = c.benchmark_group("ledger_verify");
    group.throughput(Throughput::Elements(n));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("sqlite", n), |b| {
        b.iter(|| {
            let report = rt.block_on(reader.verify()).unwrap();
            assert!(report.is_intact() && report.records == n);
        });
    });
    group.finish();
}

fn bench_chain(c: &mut Criterion) {
    let p = payload(42);
    let canonical = canonical_json(&p);
    let time = format_time(SystemClock.now()).unwrap();
    let session = "01JD0000000000000000000000";
    let hash = record_hash(
        &GENESIS_HASH,
        1,
        &time,
        Some(session),
        "action_attempted",
        &canonical,
    );

    let mut group = c.benchmark_group("chain");
    group.throughput(Throughput::Elements(1));
    group.bench_function("canonical_json", |b| {
        b.iter(|| canonical_json(black_box(&p)))
    });
    group.bench_function("format_time", |b| {
        let now = SystemClock.now();
        b.iter(|| format_time(black_box(now)))
    });
    group.bench_function("record_hash", |b| {
        b.iter(|| {
            record_hash(
                black_box(&GENESIS_HASH),
                black_box(1),
                black_box(&time),
                Some(session),
                "action_attempted",
                black_box(&canonical),
            )
        })
    });
    group.bench_function("verifier_push", |b| {
        b.iter_custom(|iters| {
            // A fresh verifier per record keeps every push on the success path.
            let r = RecordRef {
                seq: 1,
                time: &time,
                session: Some(session),
                kind: "action_attempted",
                payload: &canonical,
                prev_hash: &GENESIS_HASH,
                hash: &hash,
            };
            let start = Instant::now();
            for _ in 0..iters {
                let mut v = Verifier::new();
                v.push(black_box(&r)).unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();

    // The Merkle tree's share of the writer's work per record: the leaf hash and the frontier
    // push (one node hash per record, amortised), and the root it publishes once per commit.
    let mut group = c.benchmark_group("tree");
    group.throughput(Throughput::Elements(1));
    group.bench_function("push_record", |b| {
        let mut frontier = merkle::Frontier::new();
        let mut stored = 0u64;
        b.iter(|| {
            frontier.push(merkle::leaf_hash(black_box(&hash)), |level, _, _| {
                if level >= merkle::STORED_LEVEL {
                    stored += 1;
                }
            })
        });
        black_box(stored);
    });
    group.bench_function("root_per_commit", |b| {
        let mut frontier = merkle::Frontier::new();
        // A size with many set bits: the most hashes a root takes below 2^20.
        for _ in 0..(1u64 << 20) - 1 {
            frontier.push(hash, |_, _, _| {});
        }
        b.iter(|| black_box(&frontier).root())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench_chain, bench_append, bench_verify
}
criterion_main!(benches);
