//! Closed-loop append throughput of the ledger on PostgreSQL (group commit): `TASKS` tasks
//! each appending single records back to back into one instance's chain for `SECS` seconds,
//! then the appends per second, the mean group size and the latency percentiles. Beside it,
//! the same load on the SQLite ledger of a temporary directory, for comparison.
//!
//! Run: `cargo bench -p warden-gateway --bench ledger_pg`. PostgreSQL comes from
//! `WARDEN_TEST_PG_URL` (a cluster URL without a database, as `scripts/test.sh` exports it) or
//! a throwaway cluster of the bench's own (`warden_testkit::postgres`, `fsync` on).
//! `WARDEN_BENCH_TASKS` (default 64) and `WARDEN_BENCH_SECS` (default 10) set the load.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "bench code"
)]
#![allow(missing_docs, reason = "bench binary")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use warden_audit::{CommitObserver, Ledger, LedgerConfig, NewRecord, RecordKind};
use warden_core::store::StoreLocation;
use warden_core::{InstanceId, SystemClock};
use warden_session::state_db::postgres::{self, PoolBounds};
use warden_testkit::postgres::TestDb;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A typical action record: about 200 bytes of canonical payload (as in warden-audit's
/// benches).
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

#[derive(Default)]
struct Groups {
    commits: AtomicU64,
    records: AtomicU64,
}

impl CommitObserver for Groups {
    fn committed(&self, records: usize, _took: Duration, committed: bool) {
        if committed {
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.records.fetch_add(records as u64, Ordering::Relaxed);
        }
    }
}

async fn load(name: &str, ledger: Ledger, groups: Arc<Groups>, tasks: u64, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let ledger = ledger.clone();
        set.spawn(async move {
            let mut latencies = Vec::new();
            let mut i = t * 1_000_000;
            while Instant::now() < until {
                let started = Instant::now();
                ledger.append(record(i)).await.unwrap();
                latencies.push(started.elapsed());
                i += 1;
            }
            latencies
        });
    }
    let mut all: Vec<Duration> = set.join_all().await.into_iter().flatten().collect();
    all.sort_unstable();
    let n = all.len();
    let p = |q: f64| all[((n as f64 - 1.0) * q).round() as usize];
    let commits = groups.commits.load(Ordering::Relaxed).max(1);
    println!(
        "{name}: {tasks} tasks, {n} appends in {secs} s = {:.0} appends/s; {:.1} records per \
         commit; latency p50 {:?} p99 {:?} max {:?}",
        n as f64 / secs as f64,
        groups.records.load(Ordering::Relaxed) as f64 / commits as f64,
        p(0.5),
        p(0.99),
        p(1.0),
    );
    ledger.shutdown().await.unwrap();
}

fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"ledger_pg".contains(a.as_str()))
    {
        return;
    }
    let tasks = env_u64("WARDEN_BENCH_TASKS", 64);
    let secs = env_u64("WARDEN_BENCH_SECS", 10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = TestDb::new().await.unwrap();
        let StoreLocation::Postgres(url) = StoreLocation::parse(db.url()).unwrap() else {
            panic!("not a PostgreSQL URL");
        };
        let pool = postgres::connect(&url, PoolBounds::default())
            .await
            .unwrap();
        postgres::migrate(&pool).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let groups = Arc::new(Groups::default());
        let ledger = Ledger::open_postgres(
            pool.clone(),
            &InstanceId::parse("bench-1").unwrap(),
            dir.path(),
            Arc::new(SystemClock),
            LedgerConfig::default(),
            Some(groups.clone()),
        )
        .await
        .unwrap();
        load("postgresql", ledger, groups, tasks, secs).await;

        let groups = Arc::new(Groups::default());
        let ledger = Ledger::open_observed(
            dir.path(),
            Arc::new(SystemClock),
            LedgerConfig::default(),
            Some(groups.clone()),
        )
        .await
        .unwrap();
        load("sqlite", ledger, groups, tasks, secs).await;
    });
}
