//! The ledger mark: the highest ledger sequence number the gateway knows was committed, kept
//! in `state.db` so that `warden audit verify` can tell a ledger whose last records were cut
//! off (the hash chain alone cannot: a ledger cut short still verifies).
//!
//! Guarantee: the mark never exceeds a sequence number the ledger acknowledged as durable, and
//! never decreases. The gateway writes it about once a second while it runs and once more after
//! the ledger is flushed at shutdown, so after a clean stop it is the ledger's head, and after a
//! crash it lags the head by at most the appends of the last second or so. Every record
//! committed before the last write of the mark is thus covered: removing it makes the ledger's
//! head fall below the mark.
//!
//! On PostgreSQL this is a no-op: the ledger's writer keeps each instance's mark itself
//! (`ledger_instances.mark`), in the transaction of each commit.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnectOptions;

use crate::state_db::{Backend, STATE_DB_FILE, StateDb, StoreError};

/// Writes the ledger mark (cheap: a write only when the head moved).
#[derive(Debug, Clone)]
pub struct LedgerMark {
    db: StateDb,
    written: Arc<AtomicU64>,
}

impl LedgerMark {
    /// The mark kept in `db`.
    pub fn new(db: &StateDb) -> LedgerMark {
        LedgerMark {
            db: db.clone(),
            written: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records that the ledger committed every record up to `seq` (a lower `seq` than the one
    /// stored leaves it as it is). Does nothing when `seq` was already written by this handle.
    pub async fn record(&self, seq: u64) -> Result<(), StoreError> {
        if seq == 0 || self.written.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let value = i64::try_from(seq).map_err(|_| StoreError::Corrupt("ledger_mark"))?;
        // On PostgreSQL the ledger's writer keeps each instance's mark itself
        // (`ledger_instances.mark`, in the transaction of each commit): nothing to do here.
        let Backend::Sqlite(pool) = self.db.backend() else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO ledger_mark (id, seq) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq)",
        )
        .bind(value)
        .execute(pool)
        .await?;
        self.written.fetch_max(seq, Ordering::AcqRel);
        Ok(())
    }

    /// The mark stored in `data_dir/state.db`, read without creating or changing anything:
    /// `None` when there is no `state.db`, or it predates the mark, or nothing was recorded yet.
    pub async fn read(data_dir: &Path) -> Result<Option<u64>, StoreError> {
        let path = data_dir.join(STATE_DB_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .create_if_missing(false);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let result = read_mark(&pool).await;
        pool.close().await;
        result
    }
}

async fn read_mark(pool: &SqlitePool) -> Result<Option<u64>, StoreError> {
    let table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'ledger_mark'",
    )
    .fetch_optional(pool)
    .await?;
    if table.is_none() {
        return Ok(None);
    }
    let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM ledger_mark WHERE id = 1")
        .fetch_optional(pool)
        .await?;
    seq.map(|s| u64::try_from(s).map_err(|_| StoreError::Corrupt("ledger_mark")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_mark_only_rises_and_reads_back_without_the_gateway() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LedgerMark::read(dir.path()).await.unwrap(), None);
        let db = StateDb::open(dir.path()).await.unwrap();
        assert_eq!(LedgerMark::read(dir.path()).await.unwrap(), None);
        let mark = LedgerMark::new(&db);
        mark.record(7).await.unwrap();
        assert_eq!(LedgerMark::read(dir.path()).await.unwrap(), Some(7));
        // Another handle (a restarted gateway) with a lower head does not lower it.
        LedgerMark::new(&db).record(3).await.unwrap();
        assert_eq!(LedgerMark::read(dir.path()).await.unwrap(), Some(7));
        mark.record(9).await.unwrap();
        assert_eq!(LedgerMark::read(dir.path()).await.unwrap(), Some(9));
        db.close().await;
    }
}
