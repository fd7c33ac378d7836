//! An instance's Merkle tree in PostgreSQL: the perfect subtrees of 256 leaves and more in
//! `ledger_tree_nodes` (as `store/tree.rs` keeps them in SQLite), the smaller ones computed
//! from the records' `hash` column.
//!
//! The tree algorithms of [`crate::merkle`] ask for subtrees synchronously, and which ones they
//! ask for depends only on the sizes, never on the hashes. So a question is answered in two
//! passes: the first runs the algorithm against [`Asked`], which notes every subtree asked
//! for and answers zeros; the nodes and 256-leaf chunks it noted are then read in a few
//! queries; the second pass runs against [`Fetched`], which answers from what was read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use sqlx::{PgConnection, Row as _};

use super::super::LedgerError;
use super::super::tree::{CHUNK, perfect_root, stored_count};
use super::pg_error;
use crate::merkle::{self, Frontier, Hash, Nodes, STORED_LEVEL};

/// Notes the subtrees asked for; answers zeros.
#[derive(Default)]
pub(super) struct Asked(RefCell<Vec<(u32, u64)>>);

impl Nodes for Asked {
    type Error = Infallible;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Infallible> {
        self.0.borrow_mut().push((level, index));
        Ok([0; 32])
    }
}

/// The subtrees a first pass asked for, read from the store.
pub(super) struct Fetched {
    nodes: HashMap<(u32, u64), Hash>,
    chunks: HashMap<u64, Vec<Hash>>,
}

impl Nodes for Fetched {
    type Error = LedgerError;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        if level >= STORED_LEVEL {
            return self
                .nodes
                .get(&(level, index))
                .copied()
                .ok_or(LedgerError::TreeNode { level, index });
        }
        let first = index << level;
        let (chunk, offset) = (first / CHUNK, first % CHUNK);
        let leaves = self.chunks.get(&chunk).map_or(&[][..], Vec::as_slice);
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let width = 1usize << level;
        match leaves.get(start..start.saturating_add(width)) {
            Some(part) => Ok(perfect_root(part)),
            None => {
                let seq = chunk
                    .saturating_mul(CHUNK)
                    .saturating_add(leaves.len() as u64)
                    .saturating_add(1);
                Err(LedgerError::Malformed {
                    seq: clamp(seq),
                    reason: "it is missing (a later record is stored)".to_owned(),
                })
            }
        }
    }
}

impl Asked {
    /// Reads every subtree noted from `instance`'s tree.
    pub(super) async fn fetch(
        self,
        conn: &mut PgConnection,
        instance: &str,
    ) -> Result<Fetched, LedgerError> {
        let asked = self.0.into_inner();
        let (mut levels, mut indexes) = (Vec::new(), Vec::new());
        let mut chunks: Vec<u64> = Vec::new();
        for (level, index) in asked {
            if level >= STORED_LEVEL {
                levels.push(i64::from(level));
                indexes.push(clamp(index));
            } else {
                let chunk = (index << level) / CHUNK;
                if !chunks.contains(&chunk) {
                    chunks.push(chunk);
                }
            }
        }
        let mut fetched = Fetched {
            nodes: HashMap::new(),
            chunks: HashMap::new(),
        };
        if !levels.is_empty() {
            let rows = sqlx::query(
                "SELECT n.level, n.idx, n.hash FROM ledger_tree_nodes n \
                 JOIN UNNEST($2::bigint[], $3::bigint[]) AS a(level, idx) \
                 ON n.level = a.level AND n.idx = a.idx WHERE n.instance = $1",
            )
            .bind(instance)
            .bind(&levels)
            .bind(&indexes)
            .fetch_all(&mut *conn)
            .await
            .map_err(pg_error)?;
            for row in rows {
                let level: i64 = row.try_get(0).map_err(pg_error)?;
                let index: i64 = row.try_get(1).map_err(pg_error)?;
                let hash: Vec<u8> = row.try_get(2).map_err(pg_error)?;
                if let (Ok(level), Ok(index), Ok(hash)) = (
                    u32::try_from(level),
                    u64::try_from(index),
                    <[u8; 32]>::try_from(hash),
                ) {
                    fetched.nodes.insert((level, index), hash);
                }
            }
        }
        for chunk in chunks {
            let leaves = read_chunk(conn, instance, chunk).await?;
            fetched.chunks.insert(chunk, leaves);
        }
        Ok(fetched)
    }
}

/// The leaf hashes of chunk `chunk` of `instance`'s records, in order, up to the first gap.
async fn read_chunk(
    conn: &mut PgConnection,
    instance: &str,
    chunk: u64,
) -> Result<Vec<Hash>, LedgerError> {
    let first = chunk.saturating_mul(CHUNK).saturating_add(1);
    let rows = sqlx::query(
        "SELECT seq, hash FROM ledger_records WHERE instance = $1 AND seq >= $2 AND seq < $3 \
         ORDER BY seq",
    )
    .bind(instance)
    .bind(clamp(first))
    .bind(clamp(first.saturating_add(CHUNK)))
    .fetch_all(&mut *conn)
    .await
    .map_err(pg_error)?;
    let mut leaves = Vec::with_capacity(rows.len());
    for row in rows {
        let expected = first.saturating_add(leaves.len() as u64);
        let seq: i64 = row.try_get(0).map_err(pg_error)?;
        if u64::try_from(seq).ok() != Some(expected) {
            break;
        }
        let hash: Vec<u8> = row.try_get(1).map_err(pg_error)?;
        let hash = <[u8; 32]>::try_from(hash).map_err(|_| LedgerError::Malformed {
            seq,
            reason: "its hash is not 32 bytes".to_owned(),
        })?;
        leaves.push(merkle::leaf_hash(&hash));
    }
    Ok(leaves)
}

/// The frontier of `instance`'s first `size` records, from its stored nodes and last chunk.
pub(super) async fn read_frontier(
    conn: &mut PgConnection,
    instance: &str,
    size: u64,
) -> Result<Frontier, LedgerError> {
    let asked = Asked::default();
    let _ = Frontier::from_nodes(size, &asked);
    let fetched = asked.fetch(conn, instance).await?;
    Frontier::from_nodes(size, &fetched)
}

/// At the writer's open: the frontier of `size` records, after rebuilding `instance`'s stored
/// nodes from its records when they are not exactly the subtrees those complete (or the
/// frontier cannot be read from them). The rebuild is one transaction.
pub(super) async fn open_frontier(
    conn: &mut PgConnection,
    instance: &str,
    size: u64,
) -> Result<Frontier, LedgerError> {
    let (all, valid): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(CASE WHEN level >= 8 AND level < 64 AND idx >= 0 \
         AND idx < ($2 >> level::int) AND length(hash) = 32 THEN 1 ELSE 0 END), 0)::bigint \
         FROM ledger_tree_nodes WHERE instance = $1",
    )
    .bind(instance)
    .bind(clamp(size))
    .fetch_one(&mut *conn)
    .await
    .map_err(pg_error)?;
    let expected = clamp(stored_count(size));
    if all == expected
        && valid == expected
        && let Ok(frontier) = read_frontier(conn, instance, size).await
    {
        return Ok(frontier);
    }
    backfill(conn, instance, size).await?;
    read_frontier(conn, instance, size).await
}

/// Records read per query while the nodes are rebuilt.
const BACKFILL_BATCH: i64 = 65_536;

/// Rebuilds `instance`'s stored nodes from its records `1..=size`, in one transaction.
async fn backfill(conn: &mut PgConnection, instance: &str, size: u64) -> Result<(), LedgerError> {
    sqlx::raw_sql("BEGIN")
        .execute(&mut *conn)
        .await
        .map_err(pg_error)?;
    let built = backfill_in(conn, instance, size).await;
    let ended = match built {
        Ok(()) => sqlx::raw_sql("COMMIT")
            .execute(&mut *conn)
            .await
            .map(drop)
            .map_err(pg_error),
        Err(e) => Err(e),
    };
    if ended.is_err() {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    ended
}

async fn backfill_in(
    conn: &mut PgConnection,
    instance: &str,
    size: u64,
) -> Result<(), LedgerError> {
    sqlx::query("DELETE FROM ledger_tree_nodes WHERE instance = $1")
        .bind(instance)
        .execute(&mut *conn)
        .await
        .map_err(pg_error)?;
    let mut frontier = Frontier::new();
    let mut nodes = Vec::new();
    while frontier.size() < size {
        let rows = sqlx::query(
            "SELECT seq, hash FROM ledger_records WHERE instance = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(instance)
        .bind(clamp(frontier.size()))
        .bind(BACKFILL_BATCH)
        .fetch_all(&mut *conn)
        .await
        .map_err(pg_error)?;
        let before = frontier.size();
        for row in rows {
            let expected = frontier.size().saturating_add(1);
            let seq: i64 = row.try_get(0).map_err(pg_error)?;
            let hash: Vec<u8> = row.try_get(1).map_err(pg_error)?;
            let hash = <[u8; 32]>::try_from(hash)
                .ok()
                .filter(|_| u64::try_from(seq).ok() == Some(expected));
            let Some(hash) = hash else {
                return Err(unbuildable(expected));
            };
            super::super::tree::push_record(&mut frontier, &hash, &mut nodes);
            if frontier.size() == size {
                break;
            }
        }
        if frontier.size() == before {
            return Err(unbuildable(before.saturating_add(1)));
        }
        insert_nodes(conn, instance, &nodes)
            .await
            .map_err(pg_error)?;
        nodes.clear();
    }
    Ok(())
}

fn unbuildable(seq: u64) -> LedgerError {
    LedgerError::Postgres(Arc::new(std::io::Error::other(format!(
        "the Merkle tree cannot be built: record {seq} is missing or its hash is not 32 bytes \
         (run `warden audit verify`)"
    ))))
}

/// Inserts completed subtrees of `instance` (inside the caller's transaction).
pub(super) async fn insert_nodes(
    conn: &mut PgConnection,
    instance: &str,
    nodes: &[super::super::tree::Node],
) -> Result<(), sqlx::Error> {
    if nodes.is_empty() {
        return Ok(());
    }
    let levels: Vec<i64> = nodes.iter().map(|(l, _, _)| i64::from(*l)).collect();
    let indexes: Vec<i64> = nodes.iter().map(|(_, i, _)| clamp(*i)).collect();
    let hashes: Vec<Vec<u8>> = nodes.iter().map(|(_, _, h)| h.to_vec()).collect();
    sqlx::query(
        "INSERT INTO ledger_tree_nodes (instance, level, idx, hash) \
         SELECT $1, * FROM UNNEST($2::bigint[], $3::bigint[], $4::bytea[])",
    )
    .bind(instance)
    .bind(&levels)
    .bind(&indexes)
    .bind(&hashes)
    .execute(&mut *conn)
    .await
    .map(drop)
}

/// Sequence numbers and indexes as PostgreSQL `BIGINT`s (saturating).
pub(super) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
