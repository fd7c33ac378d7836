//! Criterion benchmark of verification against signed checkpoints: a full ledger (a
//! `checkpoint_signed` record after every 1,000 records, as the gateway's default signs) read
//! through SQLite by `signed::verify_ledger` with an anchor checkpoint of its whole tree: the
//! chain, the Merkle tree and every checkpoint. Compare with `ledger_verify` (the chain only).
//!
//! Run: `cargo bench -p warden-audit --bench signed_verify`. `WARDEN_BENCH_VERIFY_RECORDS`
//! sets the ledger's size (default 200,000). With `WARDEN_BENCH_KEEP=DIR` the ledger is built
//! in `DIR` (which must not hold one) and kept, with the anchor note in `DIR/anchor.note` and
//! the verifier key in `DIR/key.pub`, for timing `warden audit prove` and `consistency` on it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "bench code"
)]
#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use warden_audit::checkpoint::{Checkpoint, SigningKey};
use warden_audit::signed;
use warden_audit::{Ledger, LedgerConfig, NewRecord, RecordKind};
use warden_core::SystemClock;

/// A typical action record: about 200 bytes of canonical payload.
fn record(i: u64) -> NewRecord {
    NewRecord {
        session: Some(format!("01JD00000000000000000000{:02}", i % 100)),
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

fn sign(ledger: &Ledger, key: &SigningKey) -> (Checkpoint, String) {
    let head = *ledger.watch_tree().borrow();
    let cp = Checkpoint {
        origin: format!("warden/ledger/{}", ledger.id()),
        size: head.size,
        root: head.root,
        time: None,
    };
    let note = key.sign(&cp);
    (cp, note)
}

fn bench_signed_verify(c: &mut Criterion) {
    let n: u64 = std::env::var("WARDEN_BENCH_VERIFY_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let temp = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("WARDEN_BENCH_KEEP").map(std::path::PathBuf::from);
    let dir = kept.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let key = SigningKey::generate("bench").unwrap();
    let anchor = rt.block_on(async {
        let ledger = Ledger::open(&dir, Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap();
        let mut seq = 0;
        while seq < n {
            // 999 records and their checkpoint record, in one commit.
            let take = 999.min(n - seq);
            let batch = (seq..seq + take).map(record).collect();
            ledger.append_batch(batch).await.unwrap();
            seq += take;
            if seq < n {
                let (cp, note) = sign(&ledger, &key);
                ledger
                    .append(NewRecord {
                        session: None,
                        kind: RecordKind::CheckpointSigned,
                        payload: cp.record_payload(&note),
                    })
                    .await
                    .unwrap();
                seq += 1;
            }
        }
        let (_, anchor) = sign(&ledger, &key);
        ledger.shutdown().await.unwrap();
        anchor
    });
    let verifier = key.verifier();
    if kept.is_some() {
        std::fs::write(dir.join("anchor.note"), &anchor).unwrap();
        std::fs::write(dir.join("key.pub"), verifier.to_string()).unwrap();
    }
    let mut group = c.benchmark_group("signed_verify");
    group.throughput(Throughput::Elements(n));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("sqlite", n), |b| {
        b.iter(|| {
            let report = signed::verify_ledger(&dir, &verifier, Some(&anchor)).unwrap();
            assert!(report.is_intact() && report.records == n, "{report:?}");
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(10));
    targets = bench_signed_verify
}
criterion_main!(benches);
