//! Criterion benchmarks of the Merkle tree's proofs over large ledgers: inclusion and
//! consistency proofs built by a [`LedgerReader`] (SQLite: the stored nodes of 256 leaves and
//! more, and at most 256 records' hashes per chunk below), and their verification (pure).
//!
//! Run: `cargo bench -p warden-audit --bench proofs`. `WARDEN_BENCH_PROOF_RECORDS` lists the
//! ledger sizes (default `1000000,10000000`).
//!
//! The ledgers are built once and kept under the target directory
//! (`target/tmp/warden-proofs/<records>/ledger.db`, about 370 bytes a record: 3.7 GB for 10
//! million; delete the directory to reclaim it): a ledger opened by [`Ledger::open`] for its
//! tables, then rows inserted directly in one transaction with synthetic hashes
//! (`BLAKE3(seq)`: the proofs read only the `hash` column, so the chain need not verify) and
//! a payload of the usual size, the `tree_nodes` computed with a [`merkle::Frontier`] as the
//! writer computes them. A file `complete` marks a finished build; a build that was
//! interrupted is started again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "bench code"
)]
#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use warden_audit::merkle::{self, Frontier, Hash};
use warden_audit::{Ledger, LedgerConfig, LedgerReader};
use warden_core::SystemClock;

/// A typical action record's canonical payload (about 200 bytes).
const PAYLOAD: &str = r#"{"args":{"path":"/workspace/project/src/module_1234567/file.rs"},"charter":"blake3:5d1c0e4b9a7f3c21","principal":"alice","rule":"read-workspace","tier":"autonomous","tool":"fs.read_text_file"}"#;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn sizes() -> Vec<u64> {
    std::env::var("WARDEN_BENCH_PROOF_RECORDS")
        .unwrap_or_else(|_| "1000000,10000000".to_owned())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn synthetic_hash(seq: u64) -> [u8; 32] {
    *blake3::hash(&seq.to_be_bytes()).as_bytes()
}

/// The directory of the cached ledger of `n` records, built if missing.
fn ledger_of(rt: &tokio::runtime::Runtime, n: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("warden-proofs")
        .join(n.to_string());
    if dir.join("complete").is_file() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let ledger = Ledger::open(&dir, Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap();
        ledger.shutdown().await.unwrap();
    });
    let mut conn = rusqlite::Connection::open(dir.join("ledger.db")).unwrap();
    conn.execute_batch("PRAGMA synchronous = OFF").unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO records (seq, time, session, kind, payload, prev_hash, hash) \
                 VALUES (?1, '2026-12-06T18:00:00.000000000Z', '01JD0000000000000000000000', \
                 'action_attempted', ?2, ?3, ?4)",
            )
            .unwrap();
        let mut node = tx
            .prepare("INSERT INTO tree_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
            .unwrap();
        let mut frontier = Frontier::new();
        let mut prev = [0u8; 32];
        for seq in 1..=n {
            let hash = synthetic_hash(seq);
            insert
                .execute(rusqlite::params![
                    seq as i64,
                    PAYLOAD,
                    prev.as_slice(),
                    hash.as_slice()
                ])
                .unwrap();
            let mut completed = Vec::new();
            frontier.push(merkle::leaf_hash(&hash), |level, index, h| {
                if level >= merkle::STORED_LEVEL {
                    completed.push((level, index, *h));
                }
            });
            for (level, index, h) in completed {
                node.execute(rusqlite::params![level, index as i64, h.as_slice()])
                    .unwrap();
            }
            prev = hash;
        }
    }
    tx.commit().unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    std::fs::write(dir.join("complete"), b"").unwrap();
    eprintln!(
        "built the ledger of {n} records in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    dir
}

fn bench_proofs(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("proofs");
    for n in sizes() {
        let dir = ledger_of(&rt, n);
        let reader = rt.block_on(LedgerReader::open(&dir)).unwrap();
        let root = rt.block_on(reader.tree_root(n)).unwrap();
        // The reader's root is the tree's; checked once per run with the last leaf's proof.
        let last = rt.block_on(reader.inclusion_proof(n, n)).unwrap();
        let leaf = merkle::leaf_hash(&synthetic_hash(n));
        merkle::verify_inclusion(n - 1, n, &leaf, &last, &root).unwrap();

        // Random records and sizes in the second half of the ledger (so trees of every shape,
        // rarely a multiple of 256): a proof from the reader, as `warden audit prove` asks it.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n);
        group.bench_function(BenchmarkId::new("inclusion/sqlite", n), |b| {
            b.iter_custom(|iters| {
                let asks: Vec<(u64, u64)> = (0..iters)
                    .map(|_| {
                        let size = n / 2 + 1 + rng.below(n - n / 2);
                        (1 + rng.below(size), size)
                    })
                    .collect();
                let start = Instant::now();
                for (seq, size) in asks {
                    black_box(rt.block_on(reader.inclusion_proof(seq, size)).unwrap());
                }
                start.elapsed()
            });
        });
        group.bench_function(BenchmarkId::new("consistency/sqlite", n), |b| {
            b.iter_custom(|iters| {
                let asks: Vec<(u64, u64)> = (0..iters)
                    .map(|_| {
                        let new = n / 2 + 1 + rng.below(n - n / 2);
                        (1 + rng.below(new), new)
                    })
                    .collect();
                let start = Instant::now();
                for (old, new) in asks {
                    black_box(rt.block_on(reader.consistency_proof(old, new)).unwrap());
                }
                start.elapsed()
            });
        });

        // Verification: a set of proofs against the whole ledger's root, made beforehand.
        let cases: Vec<(u64, Hash, Vec<Hash>)> = (0..64)
            .map(|_| {
                let seq = 1 + rng.below(n);
                let proof = rt.block_on(reader.inclusion_proof(seq, n)).unwrap();
                (seq, merkle::leaf_hash(&synthetic_hash(seq)), proof)
            })
            .collect();
        group.bench_function(BenchmarkId::new("verify_inclusion", n), |b| {
            let mut i = 0;
            b.iter(|| {
                let (seq, leaf, proof) = &cases[i % cases.len()];
                i += 1;
                merkle::verify_inclusion(seq - 1, n, leaf, proof, &root).unwrap();
            });
        });
        let cases: Vec<(u64, Hash, Vec<Hash>)> = (0..64)
            .map(|_| {
                let old = 1 + rng.below(n - 1);
                let old_root = rt.block_on(reader.tree_root(old)).unwrap();
                let proof = rt.block_on(reader.consistency_proof(old, n)).unwrap();
                (old, old_root, proof)
            })
            .collect();
        group.bench_function(BenchmarkId::new("verify_consistency", n), |b| {
            let mut i = 0;
            b.iter(|| {
                let (old, old_root, proof) = &cases[i % cases.len()];
                i += 1;
                merkle::verify_consistency(*old, n, old_root, &root, proof).unwrap();
            });
        });
        rt.block_on(reader.close());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench_proofs
}
criterion_main!(benches);
