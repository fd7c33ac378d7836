//! The Merkle tree's storage (see [`crate::merkle`]): the perfect subtrees of 256 leaves and
//! more in `tree_nodes`, the leaves below that computed from the records' `hash` column, and
//! the ledger's identity in `meta`.
//!
//! - The writer creates both tables (`IF NOT EXISTS`) and the ledger id at open, keeps a
//!   [`Frontier`] beside its chain tail and inserts the subtrees each commit completes in the
//!   commit's own transaction, so the table never disagrees with the records on disk.
//! - A ledger whose `tree_nodes` does not hold exactly the subtrees its records complete (one
//!   made before the tree, or written meanwhile by a warden without it) gets the table rebuilt
//!   from its records at the writer's open: one pass over `hash`, in batches, in one
//!   transaction.
//! - [`StoredNodes`] serves proofs (the reader's) and the frontier (the writer's) from a
//!   connection: at most one query of at most 256 `hash` values per 256-leaf chunk, and one
//!   point lookup per stored node.
//!
//! Nothing here verifies anything: a proof built from tampered nodes simply does not verify
//! against a signed root.

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};

use super::LedgerError;
use super::error::Source;
use crate::merkle::{self, Frontier, Hash, Nodes, STORED_LEVEL};

/// The two tables of the tree, created by the writer on a ledger of any age.
pub(super) const CREATE: &str = "CREATE TABLE IF NOT EXISTS tree_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;";

/// The key of the ledger's identity in `meta`.
const LEDGER_ID: &str = "ledger_id";

/// The leaves of one stored-level chunk: `2^STORED_LEVEL` = 256.
pub(super) const CHUNK: u64 = 1 << STORED_LEVEL;

/// Records read per query while the table is rebuilt.
const BACKFILL_BATCH: i64 = 65_536;

/// Inserts one completed subtree.
pub(super) const INSERT_NODE: &str =
    "INSERT INTO tree_nodes (level, idx, hash) VALUES (?1, ?2, ?3)";

/// A completed perfect subtree at [`STORED_LEVEL`] or above: its level, its index at that
/// level, its root.
pub(super) type Node = (u32, u64, Hash);

/// Pushes the leaf of the record whose chain hash is `record_hash` onto `frontier`,
/// collecting into `nodes` the subtrees it completes that the ledger stores.
pub(super) fn push_record(frontier: &mut Frontier, record_hash: &[u8; 32], nodes: &mut Vec<Node>) {
    frontier.push(merkle::leaf_hash(record_hash), |level, index, hash| {
        if level >= STORED_LEVEL {
            nodes.push((level, index, *hash));
        }
    });
}

/// Inserts `nodes` on `conn` (inside the caller's transaction).
pub(super) fn insert_nodes(conn: &Connection, nodes: &[Node]) -> rusqlite::Result<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(INSERT_NODE)?;
    for (level, index, hash) in nodes {
        insert.execute(rusqlite::params![
            i64::from(*level),
            i64::try_from(*index).unwrap_or(i64::MAX),
            hash.as_slice()
        ])?;
    }
    Ok(())
}

/// At the writer's open: creates the tables if missing, makes the ledger id if there is none
/// (a UUID), and returns it.
pub(super) fn prepare(conn: &Connection, path: &Path) -> Result<String, LedgerError> {
    let fail = |e: rusqlite::Error| super::schema::open_error(path, e);
    let id = uuid::Uuid::now_v7().to_string();
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {CREATE} COMMIT"))
        .map_err(fail)?;
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
        [LEDGER_ID, id.as_str()],
    )
    .map_err(fail)?;
    conn.query_row(
        "SELECT value FROM meta WHERE key = ?1",
        [LEDGER_ID],
        |row| row.get(0),
    )
    .map_err(fail)
}

/// How many subtrees at [`STORED_LEVEL`] and above a tree of `size` leaves completes.
pub(super) fn stored_count(size: u64) -> u64 {
    (STORED_LEVEL..64).map(|level| size >> level).sum()
}

/// At the writer's open, for a ledger whose last record is `size`: rebuilds `tree_nodes` from
/// the records if it does not hold exactly the subtrees they complete (a node missing, extra,
/// or not 32 bytes), or if the frontier cannot be read from it, then reads the frontier. (A
/// node changed to another 32-byte value is not noticed: proofs built from it do not verify.)
pub(super) fn open_frontier(
    conn: &Connection,
    size: u64,
    path: &Path,
) -> Result<Frontier, LedgerError> {
    let fail = |e: rusqlite::Error| super::schema::open_error(path, e);
    let opening = |source: Source| LedgerError::Open {
        path: path.to_path_buf(),
        source,
    };
    // Every row, and the rows that are a node of this tree: with the primary key, both equal
    // to the expected count means exactly the expected nodes, each 32 bytes.
    let (all, valid): (i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(level >= 8 AND level < 64 AND idx >= 0 \
             AND idx < (?1 >> level) AND typeof(hash) = 'blob' AND length(hash) = 32), 0) \
             FROM tree_nodes",
            [clamp(size)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(fail)?;
    let expected = i64::try_from(stored_count(size)).unwrap_or(i64::MAX);
    let mut rebuilt = false;
    if all != expected || valid != expected {
        backfill(conn, size).map_err(opening)?;
        rebuilt = true;
    }
    match read_frontier(conn, size) {
        Ok(frontier) => Ok(frontier),
        Err(e) if rebuilt => Err(opening(e)),
        Err(_) => {
            backfill(conn, size).map_err(opening)?;
            read_frontier(conn, size).map_err(opening)
        }
    }
}

/// The frontier of the first `size` leaves: the stored subtrees for the set bits of `size`
/// at [`STORED_LEVEL`] and above, the last `size % 256` records' hashes for the others.
pub(super) fn read_frontier(conn: &Connection, size: u64) -> Result<Frontier, Source> {
    Frontier::from_nodes(size, &StoredNodes::new(conn)).map_err(|e| -> Source { Arc::new(e) })
}

/// Rebuilds `tree_nodes` from the records `1..=size`, in one transaction (a crash midway
/// leaves the old table, and the next open starts again). Memory is bounded by one batch.
fn backfill(conn: &Connection, size: u64) -> Result<(), Source> {
    let source = |e: rusqlite::Error| -> Source { Arc::new(e) };
    conn.execute_batch("BEGIN IMMEDIATE; DELETE FROM tree_nodes;")
        .map_err(source)?;
    let built = (|| {
        let mut frontier = Frontier::new();
        let mut read = conn
            .prepare("SELECT seq, hash FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(source)?;
        let mut nodes = Vec::new();
        while frontier.size() < size {
            let after = i64::try_from(frontier.size()).unwrap_or(i64::MAX);
            let mut rows = read.query([after, BACKFILL_BATCH]).map_err(source)?;
            let before = frontier.size();
            while let Some(row) = rows.next().map_err(source)? {
                let expected = frontier.size().saturating_add(1);
                let seq: i64 = row.get(0).map_err(source)?;
                if u64::try_from(seq).ok() != Some(expected) {
                    return Err(unbuildable(expected, "is missing"));
                }
                let hash: [u8; 32] = row
                    .get::<_, Vec<u8>>(1)
                    .ok()
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| unbuildable(expected, "has a hash that is not 32 bytes"))?;
                push_record(&mut frontier, &hash, &mut nodes);
                if frontier.size() == size {
                    break;
                }
            }
            drop(rows);
            if frontier.size() == before {
                return Err(unbuildable(before.saturating_add(1), "is missing"));
            }
            insert_nodes(conn, &nodes).map_err(source)?;
            nodes.clear();
        }
        Ok(())
    })();
    let ended = match built {
        Ok(()) => conn.execute_batch("COMMIT").map_err(source),
        Err(e) => Err(e),
    };
    if ended.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    ended
}

fn unbuildable(seq: u64, what: &str) -> Source {
    Arc::new(std::io::Error::other(format!(
        "the Merkle tree cannot be built: record {seq} {what} (run `warden audit verify`)"
    )))
}

/// The tree's nodes as a connection holds them: subtrees at [`STORED_LEVEL`] and above from
/// `tree_nodes`, smaller ones computed from the records' hashes (the 256-leaf chunk they lie
/// in, read once and kept while the next asks fall in the same chunk).
pub(super) struct StoredNodes<'c> {
    conn: &'c Connection,
    /// The last chunk read: its index and its leaf hashes (fewer than 256 at the ledger's end).
    chunk: RefCell<Option<(u64, Vec<Hash>)>>,
}

impl<'c> StoredNodes<'c> {
    pub(super) fn new(conn: &'c Connection) -> StoredNodes<'c> {
        StoredNodes {
            conn,
            chunk: RefCell::new(None),
        }
    }

    /// The leaf hashes of chunk `chunk`, in order, as many as are stored after its start up
    /// to 256; a gap or a pruned record before the end is an error.
    fn read_chunk(&self, chunk: u64) -> Result<Vec<Hash>, LedgerError> {
        let first = chunk.saturating_mul(CHUNK).saturating_add(1);
        let read = |e: rusqlite::Error| LedgerError::Read(Arc::new(e));
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT seq, hash FROM records WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
            )
            .map_err(read)?;
        let bounds = [clamp(first), clamp(first.saturating_add(CHUNK))];
        let mut rows = statement.query(bounds).map_err(read)?;
        let mut leaves = Vec::with_capacity(CHUNK as usize);
        while let Some(row) = rows.next().map_err(read)? {
            let expected = first.saturating_add(leaves.len() as u64);
            let seq: i64 = row.get(0).map_err(read)?;
            if u64::try_from(seq).ok() != Some(expected) {
                return Err(self.missing(expected));
            }
            let hash: [u8; 32] = row
                .get::<_, Vec<u8>>(1)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| LedgerError::Malformed {
                    seq,
                    reason: "its hash is not 32 bytes".to_owned(),
                })?;
            leaves.push(merkle::leaf_hash(&hash));
        }
        Ok(leaves)
    }

    /// The error for record `seq`, needed but not stored: pruned if it lies before the
    /// ledger's first record, a gap otherwise.
    fn missing(&self, seq: u64) -> LedgerError {
        let first: Option<i64> = self
            .conn
            .query_row("SELECT min(seq) FROM records", [], |row| row.get(0))
            .ok()
            .flatten();
        match first.and_then(|f| u64::try_from(f).ok()) {
            Some(first) if seq < first => LedgerError::Pruned { seq },
            _ => LedgerError::Malformed {
                seq: clamp(seq),
                reason: "it is missing (a later record is stored)".to_owned(),
            },
        }
    }
}

impl Nodes for StoredNodes<'_> {
    type Error = LedgerError;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        if level >= STORED_LEVEL {
            return stored_node(self.conn, level, index);
        }
        let first = index << level;
        let (chunk, offset) = (first / CHUNK, first % CHUNK);
        let mut cached = self.chunk.borrow_mut();
        let leaves = match &mut *cached {
            Some((at, leaves)) if *at == chunk => leaves,
            slot => &mut slot.insert((chunk, self.read_chunk(chunk)?)).1,
        };
        let width = 1usize << level;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(part) = leaves.get(start..start.saturating_add(width)) else {
            // Asked only inside the tree: the records are gone (pruned) or not there.
            let seq = (chunk.saturating_mul(CHUNK))
                .saturating_add(leaves.len() as u64)
                .saturating_add(1);
            drop(cached);
            return Err(self.missing(seq));
        };
        Ok(perfect_root(part))
    }
}

/// Reads the stored subtree (`level` ≥ [`STORED_LEVEL`]); missing is
/// [`LedgerError::TreeNode`].
fn stored_node(conn: &Connection, level: u32, index: u64) -> Result<Hash, LedgerError> {
    let read = |e: rusqlite::Error| LedgerError::Read(Arc::new(e));
    let mut statement = conn
        .prepare_cached("SELECT hash FROM tree_nodes WHERE level = ?1 AND idx = ?2")
        .map_err(read)?;
    let hash: Option<Vec<u8>> = statement
        .query_row([i64::from(level), clamp(index)], |row| row.get(0))
        .optional()
        .map_err(read)?;
    hash.and_then(|h| h.try_into().ok())
        .ok_or(LedgerError::TreeNode { level, index })
}

/// The root of a perfect subtree given its leaf hashes (a power of two of them).
pub(super) fn perfect_root(leaves: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| match pair {
                [left, right] => merkle::node_hash(left, right),
                _ => merkle::empty_root(),
            })
            .collect();
    }
    level.first().copied().unwrap_or_else(merkle::empty_root)
}

/// Sequence numbers and indexes as SQLite integers (saturating).
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Whether the ledger has the tree's tables (a writer of this version has opened it).
pub(super) fn has_tree(conn: &Connection) -> Result<bool, LedgerError> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('tree_nodes', 'meta')",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n == 2)
    .map_err(|e| LedgerError::Read(Arc::new(e)))
}

/// The ledger id, as a reader reads it.
pub(super) fn read_id(conn: &Connection) -> Result<String, LedgerError> {
    if !has_tree(conn)? {
        return Err(LedgerError::NoTree);
    }
    conn.query_row(
        "SELECT value FROM meta WHERE key = ?1",
        [LEDGER_ID],
        |row| row.get(0),
    )
    .optional()
    .map_err(|e| LedgerError::Read(Arc::new(e)))?
    .ok_or(LedgerError::NoTree)
}

/// The ledger's last `seq` (0 when empty), for the reader's range checks; fails with
/// [`LedgerError::NoTree`] when the tree's tables are missing.
fn head(conn: &Connection) -> Result<u64, LedgerError> {
    if !has_tree(conn)? {
        return Err(LedgerError::NoTree);
    }
    let last: Option<i64> = conn
        .query_row("SELECT max(seq) FROM records", [], |row| row.get(0))
        .map_err(|e| LedgerError::Read(Arc::new(e)))?;
    Ok(last.and_then(|l| u64::try_from(l).ok()).unwrap_or(0))
}

/// Checks that `size` is a tree the ledger can prove: 1 or more, at most its head.
fn check_size(conn: &Connection, size: u64) -> Result<(), LedgerError> {
    if size == 0 {
        return Err(LedgerError::EmptyTree);
    }
    let head = head(conn)?;
    if size > head {
        return Err(LedgerError::BeyondHead { size, head });
    }
    Ok(())
}

pub(super) fn proof_error(e: merkle::ProofError<LedgerError>) -> LedgerError {
    match e {
        merkle::ProofError::Nodes(e) => e,
        // The ranges are checked before a proof is asked for.
        merkle::ProofError::OutOfRange(reason) => {
            LedgerError::Read(Arc::new(std::io::Error::other(reason)))
        }
    }
}

/// The root of the first `size` records.
pub(super) fn root(conn: &Connection, size: u64) -> Result<Hash, LedgerError> {
    check_size(conn, size)?;
    merkle::root_of(&StoredNodes::new(conn), size)
}

/// The inclusion proof of record `seq` in the tree of `size` records.
pub(super) fn inclusion(conn: &Connection, seq: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
    check_size(conn, size)?;
    if seq == 0 || seq > size {
        return Err(LedgerError::NotInTree { seq, size });
    }
    merkle::inclusion_proof(&StoredNodes::new(conn), seq - 1, size).map_err(proof_error)
}

/// The consistency proof from the tree of `old` records to the tree of `new` records.
pub(super) fn consistency(conn: &Connection, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
    if old == 0 {
        return Err(LedgerError::EmptyTree);
    }
    if old > new {
        return Err(LedgerError::Shrinks { old, new });
    }
    check_size(conn, new)?;
    merkle::consistency_proof(&StoredNodes::new(conn), old, new).map_err(proof_error)
}
