//! Read-only access: queries for people and the observer, and chain verification.
//!
//! Every query runs on a blocking thread over a read-only `rusqlite` connection from a bounded
//! pool (see `pool.rs`), so none blocks the async runtime.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, Params};

use super::error::LedgerError;
use super::pool::ReadPool;
use super::postgres::PgReader;
use super::scan::{self, VerifyReport};
use super::schema::{self, COLUMNS};
use super::{DB_FILE, LedgerSource, tree};
use crate::chain::Record;
use crate::merkle;
use crate::signed::{OpenNote, Report, verify_ledger};

/// A read-only view of a ledger; cheap to clone (clones share their connections). Opening it
/// never creates or changes anything, and it can run beside the writer (WAL readers see
/// committed records only).
#[derive(Debug, Clone)]
pub struct LedgerReader {
    backend: Backend,
}

/// Where a reader reads.
#[derive(Debug, Clone)]
enum Backend {
    /// `DIR/ledger.db`.
    Sqlite(Arc<ReadPool>),
    /// The shared PostgreSQL store (one instance, or all merged).
    Postgres(Arc<PgReader>),
}

fn read_error(e: rusqlite::Error) -> LedgerError {
    LedgerError::Read(Arc::new(e))
}

impl LedgerReader {
    /// Opens a reader of `source` (see [`LedgerReader::open`] and
    /// [`LedgerReader::open_postgres`]).
    pub async fn open_source(source: &LedgerSource) -> Result<LedgerReader, LedgerError> {
        match source {
            LedgerSource::Dir(dir) => LedgerReader::open(dir).await,
            LedgerSource::Postgres { pool, instance } => {
                LedgerReader::open_postgres(pool.clone(), instance.clone()).await
            }
        }
    }

    /// Opens `dir/ledger.db` read-only (`mode=ro`) and checks that it is a ledger this code
    /// reads: a missing file, or a new and empty database, is [`LedgerError::NotFound`];
    /// another database or another format is [`LedgerError::Format`]; a file SQLite cannot
    /// open is [`LedgerError::Open`].
    pub async fn open(dir: &Path) -> Result<LedgerReader, LedgerError> {
        let path = dir.join(DB_FILE);
        let opening = path.clone();
        // Blocking: opening waits for a lock held by another connection (up to 5 s).
        let first = tokio::task::spawn_blocking(move || schema::connect_reader(&opening))
            .await
            .map_err(|e| schema::open_error(&path, e))??;
        Ok(LedgerReader {
            backend: Backend::Sqlite(Arc::new(ReadPool::new(path, first))),
        })
    }

    /// A reader of the shared store.
    pub(super) fn postgres(reader: PgReader) -> LedgerReader {
        LedgerReader {
            backend: Backend::Postgres(Arc::new(reader)),
        }
    }

    /// The last `n` records, oldest first.
    pub async fn tail(&self, n: u64) -> Result<Vec<Record>, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.tail(n).await,
        };
        let n = clamp(n);
        let mut records = pool
            .run(move |conn| select(conn, "ORDER BY seq DESC LIMIT ?1", [n]))
            .await?;
        records.reverse();
        Ok(records)
    }

    /// The last `n` records, oldest first, each with the instance whose chain holds it (on
    /// SQLite: the ledger id), for a reader of every instance merged, whose records alone do
    /// not say which chain they are from.
    pub async fn tail_tagged(&self, n: u64) -> Result<Vec<(String, Record)>, LedgerError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.tail_tagged(n).await;
        }
        let id = self.id().await?;
        Ok(self
            .tail(n)
            .await?
            .into_iter()
            .map(|r| (id.clone(), r))
            .collect())
    }

    /// The record `seq`, if there is one.
    pub async fn get(&self, seq: u64) -> Result<Option<Record>, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.get(seq).await,
        };
        let seq = clamp(seq);
        let records = pool
            .run(move |conn| select(conn, "WHERE seq = ?1", [seq]))
            .await?;
        Ok(records.into_iter().next())
    }

    /// Up to `limit` records from `from` on, in order.
    pub async fn range(&self, from: u64, limit: u64) -> Result<Vec<Record>, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.range(from, limit).await,
        };
        let (from, limit) = (clamp(from), clamp(limit));
        pool.run(move |conn| select(conn, "WHERE seq >= ?1 ORDER BY seq LIMIT ?2", [from, limit]))
            .await
    }

    /// The records of the given kinds (stored names, at most 16) with `from <= seq <=
    /// through`, in order, at most `limit`. The range is read by sequence number (the table's
    /// own order; the kind is a filter, never an index choice) and only the matching rows are
    /// decoded, so following the ledger for a few kinds costs a scan of the new rows, not the
    /// decoding of every record. One chain only on PostgreSQL, as [`LedgerReader::range`].
    pub async fn kinds_in_range(
        &self,
        kinds: &[&str],
        from: u64,
        through: u64,
        limit: u64,
    ) -> Result<Vec<Record>, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.kinds_in_range(kinds, from, through, limit).await,
        };
        let kinds: Vec<String> = kinds.iter().take(16).map(|k| (*k).to_owned()).collect();
        if kinds.is_empty() || from > through || limit == 0 {
            return Ok(Vec::new());
        }
        let (from, through, limit) = (clamp(from), clamp(through), clamp(limit));
        pool.run(move |conn| {
            let sql = kinds_in_range_sql(kinds.len());
            let mut params: Vec<rusqlite::types::Value> = vec![
                rusqlite::types::Value::Integer(from),
                rusqlite::types::Value::Integer(through),
                rusqlite::types::Value::Integer(limit),
            ];
            params.extend(kinds.into_iter().map(rusqlite::types::Value::Text));
            select_sql(conn, &sql, rusqlite::params_from_iter(params))
        })
        .await
    }

    /// A page of one session's records, in sequence order: up to `limit` records of
    /// `session` after `after` (exclusive; 0 for the first), or, with `before`, the `limit`
    /// records just before it (exclusive), still oldest first. Served by the ledger's session
    /// index, so a page costs the same on a session of ten records or of a million.
    pub async fn session_page(
        &self,
        session: &str,
        bound: PageBound,
        limit: u64,
    ) -> Result<Vec<Record>, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.session_page(session, bound, limit).await,
        };
        let session = session.to_owned();
        let limit = clamp(limit);
        let (tail, seq) = match bound {
            PageBound::After(after) => (
                "WHERE session = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                clamp(after),
            ),
            PageBound::Before(before) => (
                "WHERE session = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
                clamp(before),
            ),
        };
        let mut records = pool
            .run(move |conn| select(conn, tail, rusqlite::params![session, seq, limit]))
            .await?;
        if matches!(bound, PageBound::Before(_)) {
            records.reverse();
        }
        Ok(records)
    }

    /// How many records `session` has.
    pub async fn session_count(&self, session: &str) -> Result<u64, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.session_count(session).await,
        };
        let session = session.to_owned();
        pool.run(move |conn| {
            conn.query_row(
                "SELECT count(*) FROM records WHERE session = ?1",
                [session],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(read_error)
        })
        .await
    }

    /// The newest records of the given kinds (stored names, at most 16), newest first: up to
    /// `limit` records with `seq < before` (all when `None`). Served by the ledger's kind
    /// index: one ordered range of it per group of kinds asked for, each read until `limit`
    /// records of the kinds are found (see [`newest_of_kinds_sql`]).
    pub async fn newest_of_kinds(
        &self,
        kinds: &[&str],
        before: Option<u64>,
        limit: u64,
    ) -> Result<Vec<Record>, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.newest_of_kinds(kinds, before, limit).await,
        };
        let kinds: Vec<&str> = kinds.iter().take(16).copied().collect();
        let Some((sql, params)) =
            newest_of_kinds_sql(&kinds, clamp(before.unwrap_or(u64::MAX)), clamp(limit))
        else {
            return Ok(Vec::new());
        };
        pool.run(move |conn| select_sql(conn, &sql, rusqlite::params_from_iter(params)))
            .await
    }

    /// The records of the given kinds (stored names, at most 16) among the last `within`
    /// records of `session` before `before` (exclusive), newest first, at most `limit`. The
    /// cost is bounded by `within` entries of the ledger's session index, whatever the
    /// session's length and whatever the kinds.
    pub async fn session_kinds_before(
        &self,
        session: &str,
        kinds: &[&str],
        before: u64,
        within: u64,
        limit: u64,
    ) -> Result<Vec<Record>, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => {
                return pg
                    .session_kinds_before(session, kinds, before, within, limit)
                    .await;
            }
        };
        let kinds: Vec<String> = kinds.iter().take(16).map(|k| (*k).to_owned()).collect();
        if kinds.is_empty() || within == 0 {
            return Ok(Vec::new());
        }
        let session = session.to_owned();
        let (before, offset, limit) = (clamp(before), clamp(within - 1), clamp(limit));
        pool.run(move |conn| {
            // Numbered after the four fixed parameters.
            let marks = (0..kinds.len())
                .map(|i| format!("?{}", i.saturating_add(5)))
                .collect::<Vec<_>>()
                .join(", ");
            // The lowest seq of the window: the `within`-th record of the session before
            // `before` (read from the index alone), or 0 when the session has fewer.
            let tail = format!(
                "WHERE session = ?1 AND seq < ?2 AND seq >= COALESCE((SELECT seq FROM \
                     records WHERE session = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT 1 \
                     OFFSET ?3), 0) AND kind IN ({marks}) ORDER BY seq DESC LIMIT ?4"
            );
            let mut params = vec![
                rusqlite::types::Value::Text(session),
                rusqlite::types::Value::Integer(before),
                rusqlite::types::Value::Integer(offset),
                rusqlite::types::Value::Integer(limit),
            ];
            params.extend(kinds.into_iter().map(rusqlite::types::Value::Text));
            select(conn, &tail, rusqlite::params_from_iter(params))
        })
        .await
    }

    /// The ledger's identity (see [`Ledger::id`](super::Ledger::id)); [`LedgerError::NoTree`]
    /// if no writer of this version has opened the ledger yet.
    pub async fn id(&self) -> Result<String, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.id().await,
        };
        pool.run(tree::read_id).await
    }

    /// The Merkle root of the first `size` records, built from the stored nodes (and the
    /// records' hashes below 256 leaves); equal to the root the writer published for that
    /// size. [`LedgerError::EmptyTree`] for 0, [`LedgerError::BeyondHead`] past the last
    /// record, [`LedgerError::Pruned`] when it needs pruned records.
    ///
    /// Nothing here is verified: a root read from a tampered database is whatever it holds.
    /// Checkers compare it with a signed checkpoint, or recompute it from the records.
    pub async fn tree_root(&self, size: u64) -> Result<merkle::Hash, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.tree_root(size).await,
        };
        pool.run(move |conn| tree::root(conn, size)).await
    }

    /// The inclusion proof of record `seq` (leaf `seq - 1`) in the tree of the first `size`
    /// records: O(log size) hashes, for [`merkle::verify_inclusion`]. Errors as
    /// [`LedgerReader::tree_root`], and [`LedgerError::NotInTree`] for `seq` 0 or past `size`.
    pub async fn inclusion_proof(
        &self,
        seq: u64,
        size: u64,
    ) -> Result<Vec<merkle::Hash>, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.inclusion_proof(seq, size).await,
        };
        pool.run(move |conn| tree::inclusion(conn, seq, size)).await
    }

    /// The consistency proof from the tree of the first `old` records to the tree of the
    /// first `new` (empty when they are equal), for [`merkle::verify_consistency`].
    /// [`LedgerError::EmptyTree`] for `old` 0, [`LedgerError::Shrinks`] for `old > new`,
    /// otherwise errors as [`LedgerReader::tree_root`] of `new`.
    pub async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Vec<merkle::Hash>, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.consistency_proof(old, new).await,
        };
        pool.run(move |conn| tree::consistency(conn, old, new))
            .await
    }

    /// Recomputes the whole chain, streaming through the records in sequence order (one
    /// read transaction, so a consistent snapshot even while the writer appends), and
    /// reports the first problem. Memory use does not grow with the ledger.
    ///
    /// `Err` means the ledger could not be read; a ledger that reads but does not verify is
    /// an `Ok` report with a `first_problem`.
    pub async fn verify(&self) -> Result<VerifyReport, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.verify().await,
        };
        let path = pool.path().to_path_buf();
        tokio::task::spawn_blocking(move || scan::verify(&path))
            .await
            .map_err(|e| LedgerError::Read(Arc::new(e)))?
    }

    /// Checks the chain, its Merkle tree and every signed checkpoint among its records
    /// against `key`, and the anchor checkpoint `anchor` (the text of a signed note from
    /// outside the ledger) if there is one: [`crate::signed::verify_ledger`] on SQLite (a
    /// pruned ledger from its `pruned` row), the same [`crate::signed::Checker`] over one
    /// instance's chain on PostgreSQL (read from record 1 in one snapshot). The merged reader
    /// answers [`LedgerError::Unsupported`]: each instance's chain is signed on its own.
    ///
    /// `Err` means the ledger could not be read; one that reads but does not verify is an
    /// `Ok` report with a `finding`.
    pub async fn verify_signed(
        &self,
        key: Arc<dyn OpenNote + Send + Sync>,
        anchor: Option<String>,
    ) -> Result<Report, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.verify_signed(&*key, anchor.as_deref()).await,
        };
        let dir = pool
            .path()
            .parent()
            .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
        tokio::task::spawn_blocking(move || verify_ledger(&dir, &*key, anchor.as_deref()))
            .await
            .map_err(|e| LedgerError::Read(Arc::new(e)))?
    }

    /// The instances whose chains the store holds, by name, each with its ledger id and
    /// head (its mark: the last record its writer committed). On SQLite, the one ledger,
    /// named by its ledger id.
    pub async fn instances(&self) -> Result<Vec<super::InstanceInfo>, LedgerError> {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(pg) => return pg.instances().await,
        };
        let id = pool.run(tree::read_id).await?;
        let head = self.tail(1).await?.first().map_or(0, |r| r.seq);
        Ok(vec![super::InstanceInfo {
            instance: id.clone(),
            ledger: id,
            head,
        }])
    }

    /// On PostgreSQL, the instance's mark: the last record its writer committed, recorded in
    /// the same transaction as the records (a chain that ends before it was truncated).
    /// `None` on SQLite, whose mark lives in the state store (`warden_session::LedgerMark`).
    /// [`LedgerError::Unsupported`] on the merged reader.
    pub async fn mark(&self) -> Result<Option<u64>, LedgerError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(pg) => pg.mark().await.map(Some),
        }
    }

    /// Whether this reader reads every instance of the shared store merged (the queries by
    /// sequence number answer [`LedgerError::Unsupported`]).
    pub fn is_merged(&self) -> bool {
        matches!(&self.backend, Backend::Postgres(pg) if pg.is_merged())
    }

    /// Closes the reader's connections, once the queries running on them have ended; later
    /// `tail`, `get` and `range` calls, on this reader or any clone, fail with
    /// [`LedgerError::Read`]. (`verify` opens connections of its own and still works.)
    pub async fn close(&self) {
        let pool = match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(_) => return,
        };
        pool.close().await;
    }
}

/// Which side of a sequence number a [`LedgerReader::session_page`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageBound {
    /// The records after this sequence number (exclusive; 0 for the first).
    After(u64),
    /// The records just before this sequence number (exclusive).
    Before(u64),
}

/// Sequence numbers and counts as SQLite integers (saturating).
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Runs `SELECT` of the record columns `FROM records` and `tail` (fixed text: only
/// parameters carry data) and reads every row as a record; the first row that is not one is
/// [`LedgerError::Malformed`].
fn select<P: Params>(conn: &Connection, tail: &str, params: P) -> Result<Vec<Record>, LedgerError> {
    select_sql(
        conn,
        &format!("SELECT {COLUMNS} FROM records {tail}"),
        params,
    )
}

/// The records `sql` selects (its columns [`COLUMNS`], in order).
fn select_sql<P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> Result<Vec<Record>, LedgerError> {
    let mut statement = conn.prepare_cached(sql).map_err(read_error)?;
    let mut rows = statement.query(params).map_err(read_error)?;
    let mut records = Vec::new();
    while let Some(row) = rows.next().map_err(read_error)? {
        records.push(schema::record(row)?);
    }
    Ok(records)
}

/// The query of [`LedgerReader::kinds_in_range`] for `kinds` kinds: `?1` the first sequence
/// number, `?2` the last, `?3` the limit, the kinds from `?4`. A search of the table's own
/// sequence range (`+kind`: a filter, never an index choice).
pub(super) fn kinds_in_range_sql(kinds: usize) -> String {
    let marks = (0..kinds)
        .map(|i| format!("?{}", i.saturating_add(4)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {COLUMNS} FROM records WHERE seq >= ?1 AND seq <= ?2 AND +kind IN ({marks}) \
         ORDER BY seq LIMIT ?3"
    )
}

/// The query of [`LedgerReader::newest_of_kinds`] and its parameters (`None` when no kind is
/// asked for): for each group of the kinds ([`schema::KIND_GROUP`]), the group's range of the
/// kind index below `before`, newest first, its rows kept when their kind is asked for
/// (`+kind`: a filter, never an index choice) and read until `limit` are kept; the groups'
/// records then merged newest first. A range stops at `limit` kept records, so a page costs
/// about `limit` records per group (more when the group's other kinds come between), never
/// the ledger's size.
pub(super) fn newest_of_kinds_sql(
    kinds: &[&str],
    before: i64,
    limit: i64,
) -> Option<(String, Vec<rusqlite::types::Value>)> {
    use rusqlite::types::Value;
    let mut groups: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for kind in kinds {
        groups
            .entry(schema::kind_group(kind))
            .or_default()
            .push(kind);
    }
    let mut params = Vec::new();
    let arms: Vec<String> = groups
        .into_iter()
        .map(|(group, kinds)| {
            let marks = vec!["?"; kinds.len()].join(", ");
            params.push(Value::Text(group.to_owned()));
            params.extend(kinds.into_iter().map(|k| Value::Text(k.to_owned())));
            params.push(Value::Integer(before));
            params.push(Value::Integer(limit));
            format!(
                "SELECT * FROM (SELECT {COLUMNS} FROM records WHERE {group_expr} = ? \
                 AND +kind IN ({marks}) AND seq < ? ORDER BY seq DESC LIMIT ?)",
                group_expr = schema::KIND_GROUP
            )
        })
        .collect();
    let sql = match arms.as_slice() {
        [] => return None,
        [one] => one.clone(),
        _ => {
            params.push(Value::Integer(limit));
            format!(
                "SELECT * FROM ({}) ORDER BY seq DESC LIMIT ?",
                arms.join(" UNION ALL ")
            )
        }
    };
    Some((sql, params))
}
