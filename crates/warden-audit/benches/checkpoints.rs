//! Criterion benchmarks of signed checkpoints: what signing and opening one note costs, and
//! durable appends at 64 appenders while a signer follows the tree and appends a
//! `checkpoint_signed` record every 1000 records (as the gateway's signer does), beside the
//! same appends without it.
//!
//! Run: `cargo bench -p warden-audit --bench checkpoints`. The ledgers live in a temporary
//! directory on the same disk as `TMPDIR` (every append is fsynced: the figure is the disk's).

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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use warden_audit::checkpoint::{Checkpoint, SigningKey};
use warden_audit::{Ledger, LedgerConfig, NewRecord, RecordKind, merkle};
use warden_core::SystemClock;

/// The number of records between two checkpoints.
const EVERY_RECORDS: u64 = 1000;

fn checkpoint(size: u64) -> Checkpoint {
    Checkpoint {
        origin: "warden/ledger/0193f3a2-5c1e-7d44-9a0b-2f6d1c8e4b71".to_owned(),
        size,
        root: merkle::leaf_hash(&size.to_be_bytes()),
        time: Some(time::macros::datetime!(2026-12-06 18:30:00 UTC)),
    }
}

fn bench_note(c: &mut Criterion) {
    let key = SigningKey::generate("ops.example/warden").unwrap();
    let vkey = key.verifier();
    let cp = checkpoint(1_000_000);
    let note = key.sign(&cp);
    let mut group = c.benchmark_group("checkpoint");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| b.iter(|| black_box(key.sign(black_box(&cp)))));
    group.bench_function("open", |b| {
        b.iter(|| Checkpoint::open(black_box(&note), &vkey).unwrap())
    });
    group.finish();
}

/// A typical action record: about 200 bytes of canonical payload.
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The gateway's signer, reduced to its work: follows the tree, and once `EVERY_RECORDS`
/// records were added since the last checkpoint signs the head and appends it. Counts the
/// checkpoints it signed.
async fn sign_every(
    ledger: Ledger,
    key: Arc<SigningKey>,
    signed: Arc<AtomicU64>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut tree = ledger.watch_tree();
    let mut baseline = tree.borrow().size;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            changed = tree.changed() => {
                if changed.is_err() {
                    break;
                }
                let head = *tree.borrow_and_update();
                if head.size < baseline + EVERY_RECORDS {
                    continue;
                }
                let cp = Checkpoint {
                    origin: "warden/ledger/bench".to_owned(),
                    size: head.size,
                    root: head.root,
                    time: None,
                };
                let note = key.sign(&cp);
                let appended = ledger
                    .append(NewRecord {
                        session: None,
                        kind: RecordKind::CheckpointSigned,
                        payload: cp.record_payload(&note),
                    })
                    .await
                    .unwrap();
                baseline = appended.seq.max(head.size);
                signed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `appenders` tasks make `total` single-record appends between them, each waiting for its
/// commit.
#[expect(
    clippy::disallowed_methods,
    reason = "the appenders are awaited before this returns"
)]
async fn append_concurrently(ledger: &Ledger, appenders: u64, total: u64) {
    let tasks: Vec<_> = (0..appenders)
        .map(|t| {
            let ledger = ledger.clone();
            let n = total / appenders + u64::from(t < total % appenders);
            tokio::spawn(async move {
                for i in 0..n {
                    ledger.append(record(i)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn bench_append_with_signer(c: &mut Criterion) {
    let rt = runtime();
    let key = Arc::new(SigningKey::generate("ops.example/warden").unwrap());
    let mut group = c.benchmark_group("ledger_append_signed");
    group.throughput(Throughput::Elements(1));
    for signing in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let ledger = rt.block_on(async {
            Ledger::open(dir.path(), Arc::new(SystemClock), LedgerConfig::default())
                .await
                .unwrap()
        });
        let signed = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let signer = signing.then(|| {
            rt.spawn(sign_every(
                ledger.clone(),
                key.clone(),
                signed.clone(),
                stopped,
            ))
        });
        let name = if signing {
            "64_appenders_signer_every_1000"
        } else {
            "64_appenders_no_signer"
        };
        group.bench_function(BenchmarkId::new("durable", name), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                rt.block_on(append_concurrently(&ledger, 64, iters));
                start.elapsed()
            });
        });
        let _ = stop.send(());
        if let Some(signer) = signer {
            rt.block_on(signer).unwrap();
            eprintln!(
                "checkpoints signed while appending: {}",
                signed.load(Ordering::Relaxed)
            );
        }
        rt.block_on(ledger.shutdown()).unwrap();
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench_note, bench_append_with_signer
}
criterion_main!(benches);
