//! The ledger on PostgreSQL, shared by a fleet: one hash chain per instance in
//! `ledger_records` (its `instance` column names the chain; `seq` counts from 1 per
//! instance), each instance's Merkle subtrees in `ledger_tree_nodes`, and the instances with
//! their ledger identities in `ledger_instances`. The tables are created by the state store's
//! migrations (`warden_session::state_db::postgres`).

use std::path::Path;
use std::sync::Arc;

use sqlx::PgPool;
use warden_core::{Clock, InstanceId};

use super::{CommitObserver, Ledger, LedgerConfig, LedgerError, LedgerReader};

impl Ledger {
    /// Opens `instance`'s chain in the shared store and starts its writer: one group commit
    /// per transaction, the chain's tail and Merkle frontier read at open, the instance held
    /// by a session-level advisory lock for as long as the writer runs (a second writer of the
    /// same instance is refused with [`LedgerError::InstanceLocked`]). `dir` is the local data
    /// directory (what [`Ledger::dir`] answers).
    pub async fn open_postgres(
        pool: PgPool,
        instance: &InstanceId,
        dir: &Path,
        clock: Arc<dyn Clock>,
        config: LedgerConfig,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> Result<Ledger, LedgerError> {
        let _ = (pool, instance, dir, clock, config, observer);
        Err(LedgerError::Unsupported("the PostgreSQL ledger writer"))
    }
}

impl LedgerReader {
    /// A reader of `instance`'s chain in the shared store, or, with `None`, of every
    /// instance's records merged by time (for the queries by session, kind and time; the
    /// queries by sequence number, the tree and `verify` need one instance).
    pub async fn open_postgres(
        pool: PgPool,
        instance: Option<InstanceId>,
    ) -> Result<LedgerReader, LedgerError> {
        let _ = (pool, instance);
        Err(LedgerError::Unsupported("the PostgreSQL ledger reader"))
    }
}
