//! The reader of the shared store: one instance's chain (every query of the SQLite reader),
//! or every instance merged by (time, instance, seq) for the queries by session, kind and
//! time. Every query is one statement with parameters (no data is ever spliced into SQL) on
//! the shared pool, so each is bounded by the pool's acquire timeout and the server's
//! statement timeout.

use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgPool, Row as _};

/// A query with its parameters.
type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

use super::super::{LedgerError, PageBound};
use super::tree::{Asked, clamp};
use super::{InstanceInfo, pg_error};
use crate::chain::{Record, parse_time};
use crate::merkle;

/// The record columns, in the order [`record`] reads them.
pub(super) const COLUMNS: &str = "seq, time, session, kind, payload, prev_hash, hash";

/// The stored columns of a row, owned.
pub(super) struct Stored {
    pub(super) seq: i64,
    pub(super) time: String,
    pub(super) session: Option<String>,
    pub(super) kind: String,
    pub(super) payload: String,
    pub(super) prev_hash: Vec<u8>,
    pub(super) hash: Vec<u8>,
}

/// Reads the columns of a row (in [`COLUMNS`] order).
pub(super) fn stored(row: &PgRow) -> Result<Stored, sqlx::Error> {
    Ok(Stored {
        seq: row.try_get(0)?,
        time: row.try_get(1)?,
        session: row.try_get(2)?,
        kind: row.try_get(3)?,
        payload: row.try_get(4)?,
        prev_hash: row.try_get(5)?,
        hash: row.try_get(6)?,
    })
}

/// The most instances [`PgReader::instances`] lists.
const MAX_INSTANCES: i64 = 10_000;
/// The most kinds one query filters on.
const MAX_KINDS: usize = 16;

/// A reader of the shared store.
#[derive(Debug)]
pub(in crate::store) struct PgReader {
    pool: PgPool,
    /// One instance's chain; `None`: every instance merged.
    instance: Option<String>,
}

impl PgReader {
    pub(in crate::store) fn new(pool: PgPool, instance: Option<String>) -> PgReader {
        PgReader { pool, instance }
    }

    /// Checks that the instance (if one) has a chain.
    pub(in crate::store) async fn check(&self) -> Result<(), LedgerError> {
        let Some(instance) = &self.instance else {
            return Ok(());
        };
        let found: Option<String> =
            sqlx::query_scalar("SELECT instance FROM ledger_instances WHERE instance = $1")
                .bind(instance)
                .fetch_optional(&self.pool)
                .await
                .map_err(pg_error)?;
        match found {
            Some(_) => Ok(()),
            None => Err(LedgerError::UnknownInstance {
                instance: instance.clone(),
            }),
        }
    }

    /// The shared pool.
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(in crate::store) fn is_merged(&self) -> bool {
        self.instance.is_none()
    }

    /// The one instance, or [`LedgerError::Unsupported`] on the merged reader.
    pub(super) fn one(&self, what: &'static str) -> Result<&str, LedgerError> {
        self.instance
            .as_deref()
            .ok_or(LedgerError::Unsupported(what))
    }

    /// `SELECT` of the record columns, `filter` (parameters from `$1`, the instance being the
    /// first when there is one) and `order` (fixed text).
    fn select(&self, filter: &str, order: &str) -> String {
        let scope = if self.instance.is_some() {
            "instance = $1"
        } else {
            "$1::text IS NULL"
        };
        let filter = if filter.is_empty() {
            String::new()
        } else {
            format!(" AND {filter}")
        };
        format!("SELECT {COLUMNS} FROM ledger_records WHERE {scope}{filter} {order}")
    }

    /// The order of the records: by `seq` in one chain, by (time, instance, seq) merged.
    fn order(&self, descending: bool) -> &'static str {
        match (self.instance.is_some(), descending) {
            (true, false) => "ORDER BY seq",
            (true, true) => "ORDER BY seq DESC",
            (false, false) => "ORDER BY time, instance, seq",
            (false, true) => "ORDER BY time DESC, instance DESC, seq DESC",
        }
    }

    /// Runs `sql` (built by [`PgReader::select`] from fixed text: only parameters carry
    /// data) with the instance as `$1` and `bind`'s parameters after it.
    async fn fetch<'q>(
        &'q self,
        sql: String,
        bind: impl FnOnce(Query<'q>) -> Query<'q>,
    ) -> Result<Vec<Record>, LedgerError> {
        let query = bind(sqlx::query(AssertSqlSafe(sql)).bind(self.instance.as_deref()));
        let rows = query.fetch_all(&self.pool).await.map_err(pg_error)?;
        rows.iter().map(record).collect()
    }

    pub(in crate::store) async fn tail(&self, n: u64) -> Result<Vec<Record>, LedgerError> {
        let sql = format!("{} LIMIT $2", self.select("", self.order(true)));
        let mut records = self.fetch(sql, |q| q.bind(clamp(n))).await?;
        records.reverse();
        Ok(records)
    }

    /// The last `n` records with the instance each belongs to, oldest first.
    pub(in crate::store) async fn tail_tagged(
        &self,
        n: u64,
    ) -> Result<Vec<(String, Record)>, LedgerError> {
        let sql = format!("{} LIMIT $2", self.select("", self.order(true))).replacen(
            COLUMNS,
            &format!("{COLUMNS}, instance"),
            1,
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(self.instance.as_deref())
            .bind(clamp(n))
            .fetch_all(&self.pool)
            .await
            .map_err(pg_error)?;
        let mut tagged = rows
            .iter()
            .map(|row| Ok((row.try_get(7).map_err(pg_error)?, record(row)?)))
            .collect::<Result<Vec<_>, LedgerError>>()?;
        tagged.reverse();
        Ok(tagged)
    }

    pub(in crate::store) async fn get(&self, seq: u64) -> Result<Option<Record>, LedgerError> {
        self.one("reading a record by sequence number across instances")?;
        let sql = self.select("seq = $2", "");
        let records = self.fetch(sql, |q| q.bind(clamp(seq))).await?;
        Ok(records.into_iter().next())
    }

    pub(in crate::store) async fn range(
        &self,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Record>, LedgerError> {
        self.one("reading records by sequence number across instances")?;
        let sql = format!("{} LIMIT $3", self.select("seq >= $2", "ORDER BY seq"));
        self.fetch(sql, |q| q.bind(clamp(from)).bind(clamp(limit)))
            .await
    }

    /// One chain only, as [`PgReader::range`]: the kind a filter on the chain's range.
    pub(in crate::store) async fn kinds_in_range(
        &self,
        kinds: &[&str],
        from: u64,
        through: u64,
        limit: u64,
    ) -> Result<Vec<Record>, LedgerError> {
        self.one("reading records by sequence number across instances")?;
        let kinds: Vec<String> = kinds
            .iter()
            .take(MAX_KINDS)
            .map(|k| (*k).to_owned())
            .collect();
        if kinds.is_empty() || from > through || limit == 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{} LIMIT $5",
            self.select("seq >= $2 AND seq <= $3 AND kind = ANY($4)", "ORDER BY seq")
        );
        self.fetch(sql, |q| {
            q.bind(clamp(from))
                .bind(clamp(through))
                .bind(kinds)
                .bind(clamp(limit))
        })
        .await
    }

    /// One chain: as the SQLite reader. Merged: only the first page (`After(0)`) and the
    /// last (`Before(u64::MAX)`), by time: a sequence number names no place across instances.
    pub(in crate::store) async fn session_page(
        &self,
        session: &str,
        bound: PageBound,
        limit: u64,
    ) -> Result<Vec<Record>, LedgerError> {
        let merged = self.instance.is_none();
        let (filter, descending, seq) = match bound {
            PageBound::After(after) if !merged => ("session = $2 AND seq > $3", false, after),
            PageBound::Before(before) if !merged => ("session = $2 AND seq < $3", true, before),
            PageBound::After(0) => ("session = $2 AND $3::bigint IS NOT NULL", false, 0),
            PageBound::Before(u64::MAX) => {
                ("session = $2 AND $3::bigint IS NOT NULL", true, u64::MAX)
            }
            _ => {
                return Err(LedgerError::Unsupported(
                    "a page of a session after or before a sequence number across instances",
                ));
            }
        };
        let sql = format!("{} LIMIT $4", self.select(filter, self.order(descending)));
        let mut records = self
            .fetch(sql, |q| {
                q.bind(session.to_owned())
                    .bind(clamp(seq))
                    .bind(clamp(limit))
            })
            .await?;
        if descending {
            records.reverse();
        }
        Ok(records)
    }

    pub(in crate::store) async fn session_count(&self, session: &str) -> Result<u64, LedgerError> {
        let scope = if self.instance.is_some() {
            "instance = $1"
        } else {
            "$1::text IS NULL"
        };
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM ledger_records WHERE {scope} AND session = $2"
        )))
        .bind(self.instance.as_deref())
        .bind(session)
        .fetch_one(&self.pool)
        .await
        .map_err(pg_error)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One chain: as the SQLite reader. Merged: `before` must be `None` (newest first by
    /// time).
    pub(in crate::store) async fn newest_of_kinds(
        &self,
        kinds: &[&str],
        before: Option<u64>,
        limit: u64,
    ) -> Result<Vec<Record>, LedgerError> {
        let kinds: Vec<String> = kinds
            .iter()
            .take(MAX_KINDS)
            .map(|k| (*k).to_owned())
            .collect();
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        if self.instance.is_none() && before.is_some() {
            return Err(LedgerError::Unsupported(
                "records before a sequence number across instances",
            ));
        }
        let before = clamp(before.unwrap_or(u64::MAX));
        let sql = format!(
            "{} LIMIT $4",
            self.select("kind = ANY($2) AND seq < $3", self.order(true))
        );
        self.fetch(sql, |q| q.bind(kinds).bind(before).bind(clamp(limit)))
            .await
    }

    /// One chain: as the SQLite reader. Merged: `before` must be `u64::MAX` (the session's
    /// last `within` records by time).
    pub(in crate::store) async fn session_kinds_before(
        &self,
        session: &str,
        kinds: &[&str],
        before: u64,
        within: u64,
        limit: u64,
    ) -> Result<Vec<Record>, LedgerError> {
        let kinds: Vec<String> = kinds
            .iter()
            .take(MAX_KINDS)
            .map(|k| (*k).to_owned())
            .collect();
        if kinds.is_empty() || within == 0 {
            return Ok(Vec::new());
        }
        if self.instance.is_none() && before != u64::MAX {
            return Err(LedgerError::Unsupported(
                "records before a sequence number across instances",
            ));
        }
        let scope = if self.instance.is_some() {
            "instance = $1"
        } else {
            "$1::text IS NULL"
        };
        let (inner, outer) = (self.order(true), self.order(true));
        let sql = format!(
            "SELECT {COLUMNS} FROM (SELECT * FROM ledger_records WHERE {scope} AND session = $2 \
             AND seq < $3 {inner} LIMIT $4) AS w WHERE kind = ANY($5) {outer} LIMIT $6"
        );
        self.fetch(sql, |q| {
            q.bind(session.to_owned())
                .bind(clamp(before))
                .bind(clamp(within))
                .bind(kinds)
                .bind(clamp(limit))
        })
        .await
    }

    pub(in crate::store) async fn id(&self) -> Result<String, LedgerError> {
        let instance = self.one("one ledger id for every instance")?;
        sqlx::query_scalar("SELECT ledger_id FROM ledger_instances WHERE instance = $1")
            .bind(instance)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_error)?
            .ok_or_else(|| LedgerError::UnknownInstance {
                instance: instance.to_owned(),
            })
    }

    /// The instance's mark: the last record its writer committed, as recorded in the same
    /// transaction.
    pub(in crate::store) async fn mark(&self) -> Result<u64, LedgerError> {
        let instance = self.one("one mark for every instance")?;
        let mark: Option<i64> =
            sqlx::query_scalar("SELECT mark FROM ledger_instances WHERE instance = $1")
                .bind(instance)
                .fetch_optional(&self.pool)
                .await
                .map_err(pg_error)?;
        mark.map(|m| u64::try_from(m).unwrap_or(0))
            .ok_or_else(|| LedgerError::UnknownInstance {
                instance: instance.to_owned(),
            })
    }

    /// The instances of the store, by name (at most 10,000).
    pub(in crate::store) async fn instances(&self) -> Result<Vec<InstanceInfo>, LedgerError> {
        let rows = sqlx::query(
            "SELECT instance, ledger_id, mark FROM ledger_instances ORDER BY instance LIMIT $1",
        )
        .bind(MAX_INSTANCES)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                Ok(InstanceInfo {
                    instance: row.try_get(0).map_err(pg_error)?,
                    ledger: row.try_get(1).map_err(pg_error)?,
                    head: u64::try_from(row.try_get::<i64, _>(2).map_err(pg_error)?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The instance's last `seq` (0 when empty).
    async fn head(&self, instance: &str) -> Result<u64, LedgerError> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT max(seq) FROM ledger_records WHERE instance = $1")
                .bind(instance)
                .fetch_one(&self.pool)
                .await
                .map_err(pg_error)?;
        Ok(last.and_then(|l| u64::try_from(l).ok()).unwrap_or(0))
    }

    async fn check_size(&self, instance: &str, size: u64) -> Result<(), LedgerError> {
        if size == 0 {
            return Err(LedgerError::EmptyTree);
        }
        let head = self.head(instance).await?;
        if size > head {
            return Err(LedgerError::BeyondHead { size, head });
        }
        Ok(())
    }

    pub(in crate::store) async fn tree_root(&self, size: u64) -> Result<merkle::Hash, LedgerError> {
        let instance = self.one("a Merkle tree of every instance")?;
        self.check_size(instance, size).await?;
        let asked = Asked::default();
        let _ = merkle::root_of(&asked, size);
        let mut conn = self.pool.acquire().await.map_err(pg_error)?;
        let fetched = asked.fetch(&mut conn, instance).await?;
        merkle::root_of(&fetched, size)
    }

    pub(in crate::store) async fn inclusion_proof(
        &self,
        seq: u64,
        size: u64,
    ) -> Result<Vec<merkle::Hash>, LedgerError> {
        let instance = self.one("a Merkle tree of every instance")?;
        self.check_size(instance, size).await?;
        if seq == 0 || seq > size {
            return Err(LedgerError::NotInTree { seq, size });
        }
        let asked = Asked::default();
        let _ = merkle::inclusion_proof(&asked, seq - 1, size);
        let mut conn = self.pool.acquire().await.map_err(pg_error)?;
        let fetched = asked.fetch(&mut conn, instance).await?;
        merkle::inclusion_proof(&fetched, seq - 1, size).map_err(super::super::tree::proof_error)
    }

    pub(in crate::store) async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Vec<merkle::Hash>, LedgerError> {
        let instance = self.one("a Merkle tree of every instance")?;
        if old == 0 {
            return Err(LedgerError::EmptyTree);
        }
        if old > new {
            return Err(LedgerError::Shrinks { old, new });
        }
        self.check_size(instance, new).await?;
        let asked = Asked::default();
        let _ = merkle::consistency_proof(&asked, old, new);
        let mut conn = self.pool.acquire().await.map_err(pg_error)?;
        let fetched = asked.fetch(&mut conn, instance).await?;
        merkle::consistency_proof(&fetched, old, new).map_err(super::super::tree::proof_error)
    }
}

/// Reads a row as a typed record; one that does not parse is [`LedgerError::Malformed`].
fn record(row: &PgRow) -> Result<Record, LedgerError> {
    let s = stored(row).map_err(pg_error)?;
    let seq = s.seq;
    let malformed = |reason: String| LedgerError::Malformed { seq, reason };
    let hash32 = |h: Vec<u8>, what: &str| {
        <[u8; 32]>::try_from(h).map_err(|_| malformed(format!("its {what} is not 32 bytes")))
    };
    Ok(Record {
        seq: u64::try_from(s.seq)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| malformed("sequence numbers start at 1".to_owned()))?,
        time: parse_time(&s.time).map_err(|e| malformed(e.to_string()))?,
        session: s.session,
        kind: s.kind.parse().map_err(|e| malformed(format!("{e}")))?,
        payload: serde_json::from_str(&s.payload)
            .map_err(|e| malformed(format!("its payload is not JSON: {e}")))?,
        prev_hash: hash32(s.prev_hash, "prev_hash")?,
        hash: hash32(s.hash, "hash")?,
    })
}
