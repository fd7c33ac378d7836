//! Read-only access: queries for people and the observer, and chain verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::scan;
use super::schema::{self, COLUMNS};
use super::{DB_FILE, LedgerError};
use crate::chain::{Head, Problem, Record};

/// Rows buffered between the SQLite thread and the reading task.
const ROW_BUFFER: usize = 4096;

/// A read-only view of a ledger; cheap to clone. Opening it never creates or changes
/// anything, and it can run beside the writer (WAL readers see committed records only).
#[derive(Debug, Clone)]
pub struct LedgerReader {
    pool: SqlitePool,
    path: Arc<PathBuf>,
}

/// What [`LedgerReader::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// How many records were verified intact (all of them when there is no problem; those
    /// before the problem otherwise).
    pub records: u64,
    /// The last record verified intact.
    pub head: Option<Head>,
    /// The first problem, if the ledger is not intact.
    pub first_problem: Option<Problem>,
}

impl VerifyReport {
    /// Whether the ledger verified intact.
    pub fn is_intact(&self) -> bool {
        self.first_problem.is_none()
    }
}

fn read_error(e: sqlx::Error) -> LedgerError {
    LedgerError::Read(Arc::new(e))
}

impl LedgerReader {
    /// Opens `dir/ledger.db` read-only (`mode=ro`).
    pub async fn open(dir: &Path) -> Result<LedgerReader, LedgerError> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(LedgerError::NotFound { path });
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .create_if_missing(false)
            // Rows travel from SQLite's thread to the caller through a bounded channel; a
            // deep one lets the two run in parallel instead of waking each other per row.
            .row_buffer_size(ROW_BUFFER);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_with(options)
            .await
            .map_err(|e| schema::open_error(&path, e))?;
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| schema::open_error(&path, e))?;
        if schema::format_version(&mut conn, &path).await? == 0 {
            return Err(LedgerError::NotFound { path });
        }
        drop(conn);
        Ok(LedgerReader {
            pool,
            path: Arc::new(path),
        })
    }

    /// The last `n` records, oldest first.
    pub async fn tail(&self, n: u64) -> Result<Vec<Record>, LedgerError> {
        let rows = sqlx::query(AssertSql::select("ORDER BY seq DESC LIMIT ?"))
            .bind(clamp(n))
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)?;
        let mut records = rows
            .iter()
            .map(schema::record)
            .collect::<Result<Vec<_>, _>>()?;
        records.reverse();
        Ok(records)
    }

    /// The record `seq`, if there is one.
    pub async fn get(&self, seq: u64) -> Result<Option<Record>, LedgerError> {
        let row = sqlx::query(AssertSql::select("WHERE seq = ?"))
            .bind(clamp(seq))
            .fetch_optional(&self.pool)
            .await
            .map_err(read_error)?;
        row.as_ref().map(schema::record).transpose()
    }

    /// Up to `limit` records from `from` on, in order.
    pub async fn range(&self, from: u64, limit: u64) -> Result<Vec<Record>, LedgerError> {
        let rows = sqlx::query(AssertSql::select("WHERE seq >= ? ORDER BY seq LIMIT ?"))
            .bind(clamp(from))
            .bind(clamp(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)?;
        rows.iter().map(schema::record).collect()
    }

    /// Recomputes the whole chain, streaming through the records in sequence order (one
    /// read transaction, so a consistent snapshot even while the writer appends), and
    /// reports the first problem. Memory use does not grow with the ledger.
    ///
    /// `Err` means the ledger could not be read; a ledger that reads but does not verify is
    /// an `Ok` report with a `first_problem`.
    pub async fn verify(&self) -> Result<VerifyReport, LedgerError> {
        let path = Arc::clone(&self.path);
        tokio::task::spawn_blocking(move || scan::verify(&path))
            .await
            .map_err(|e| LedgerError::Read(Arc::new(e)))?
    }

    /// Closes the reader's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Sequence numbers and counts as SQLite integers (saturating).
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The reader's statements: fixed text, no data spliced in.
struct AssertSql;

impl AssertSql {
    fn select(tail: &'static str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM records {tail}"))
    }
}
