//! The ledger on PostgreSQL, against a real server (`warden_testkit::postgres`): one chain per
//! instance, its writer (group commit, restarts, the instance lock, an outage), its readers
//! (one instance, every instance merged), verification of a tampered store, each chain
//! against its own signed checkpoints, the ledger's stream and instance list on the operator
//! plane, and start-up reconciliation (with its SQLite counterpart).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

#[path = "ledger_pg/chain.rs"]
mod chain;
#[path = "ledger_pg/directory.rs"]
mod directory;
#[path = "ledger_pg/outage.rs"]
mod outage;
#[path = "ledger_pg/readers.rs"]
mod readers;
#[path = "ledger_pg/reconcile.rs"]
mod reconcile;
#[path = "ledger_pg/signed.rs"]
mod signed;
#[path = "ledger_pg/tamper.rs"]
mod tamper;

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use sqlx::PgPool;
use warden_audit::{Ledger, LedgerConfig, NewRecord};
use warden_core::store::StoreLocation;
use warden_core::{Clock, InstanceId, RecordKind, SystemClock};
use warden_session::state_db::postgres::{self, PoolBounds};
use warden_testkit::postgres::TestDb;

/// A fresh database, migrated, and a pool on it.
pub(super) async fn store() -> (TestDb, PgPool) {
    let db = TestDb::new().await.unwrap();
    let pool = pool(db.url()).await;
    (db, pool)
}

/// A pool on `url`, migrated.
pub(super) async fn pool(url: &str) -> PgPool {
    let StoreLocation::Postgres(url) = StoreLocation::parse(url).unwrap() else {
        panic!("not a PostgreSQL URL");
    };
    let pool = postgres::connect(&url, PoolBounds::default())
        .await
        .unwrap();
    postgres::migrate(&pool).await.unwrap();
    pool
}

/// The instance named `name`.
pub(super) fn instance(name: &str) -> InstanceId {
    InstanceId::parse(name).unwrap()
}

/// Opens `name`'s writer with the system clock.
pub(super) async fn open(pool: &PgPool, name: &str, dir: &Path) -> Ledger {
    open_with(
        pool,
        name,
        dir,
        Arc::new(SystemClock),
        LedgerConfig::default(),
    )
    .await
    .unwrap()
}

/// Opens `name`'s writer with `clock` and `config`.
pub(super) async fn open_with(
    pool: &PgPool,
    name: &str,
    dir: &Path,
    clock: Arc<dyn Clock>,
    config: LedgerConfig,
) -> Result<Ledger, warden_audit::LedgerError> {
    Ledger::open_postgres(pool.clone(), &instance(name), dir, clock, config, None).await
}

/// A record of session `session` numbered `n`.
pub(super) fn record(session: &str, n: u64) -> NewRecord {
    NewRecord::new(
        Some(session),
        RecordKind::ActionAttempted,
        json!({ "n": n, "text": format!("call {n}") }),
    )
}
