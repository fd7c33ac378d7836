//! Where a verification of a pruned ledger resumes: the `pruned` row as stored (read here),
//! and the point a checked row gives the checker ([`Resume`]). Both the verify scan
//! (`scan.rs`) and the row's check (`crate::signed::pruned`) use this module; it uses neither
//! of them, nor `store.rs`, so the scan and the check do not import each other through the
//! store.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rusqlite::{Connection, OptionalExtension};

use super::error::LedgerError;
use crate::chain::Head;
use crate::merkle::Hash;
use crate::signed::Start;

/// The table, created by `warden audit prune` in the pruning transaction.
pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS pruned (
    through INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    checkpoint TEXT NOT NULL,
    proof TEXT NOT NULL,
    frontier TEXT NOT NULL
) STRICT";

/// The `pruned` row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedRow {
    /// The last pruned record.
    pub through: u64,
    /// Its hash.
    pub head_hash: Hash,
    /// The signed note of a checkpoint covering at least `through` records.
    pub checkpoint: String,
    /// The inclusion proof of leaf `through - 1` in that checkpoint's tree.
    pub proof: Vec<Hash>,
    /// The tree of the first `through` leaves: its subtree roots, largest first.
    pub frontier: Vec<Hash>,
}

/// Hashes as the `proof` and `frontier` columns hold them: a JSON array of base64 strings.
pub fn encode_hashes(hashes: &[Hash]) -> String {
    serde_json::Value::from(
        hashes
            .iter()
            .map(|h| STANDARD.encode(h))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

/// Reads what [`encode_hashes`] wrote (at most 64 hashes).
pub fn decode_hashes(text: &str) -> Option<Vec<Hash>> {
    let list: Vec<String> = serde_json::from_str(text).ok()?;
    if list.len() > 64 {
        return None;
    }
    list.iter()
        .map(|b| {
            let bytes = STANDARD.decode(b).ok()?;
            Hash::try_from(bytes.as_slice()).ok()
        })
        .collect()
}

/// The `pruned` row, if the ledger was pruned (no table, or no row: not pruned). More than
/// one row, or a row that cannot be read, is [`LedgerError::Malformed`].
pub(crate) fn read_pruned(conn: &Connection) -> Result<Option<PrunedRow>, LedgerError> {
    let read_error = |e: rusqlite::Error| LedgerError::Read(std::sync::Arc::new(e));
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'pruned'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(read_error)?;
    if exists.is_none() {
        return Ok(None);
    }
    let malformed = |reason: &str| LedgerError::Malformed {
        seq: 0,
        reason: format!("the `pruned` row {reason}"),
    };
    let mut statement = conn
        .prepare("SELECT through, head_hash, checkpoint, proof, frontier FROM pruned LIMIT 2")
        .map_err(read_error)?;
    let mut rows = statement.query([]).map_err(read_error)?;
    let Some(row) = rows.next().map_err(read_error)? else {
        return Ok(None);
    };
    let through: i64 = row
        .get(0)
        .map_err(|_| malformed("has no integer `through`"))?;
    let head_hash: Vec<u8> = row
        .get(1)
        .map_err(|_| malformed("has no `head_hash` blob"))?;
    let checkpoint: String = row.get(2).map_err(|_| malformed("has no `checkpoint`"))?;
    let proof: String = row.get(3).map_err(|_| malformed("has no `proof`"))?;
    let frontier: String = row.get(4).map_err(|_| malformed("has no `frontier`"))?;
    let parsed = PrunedRow {
        through: u64::try_from(through).map_err(|_| malformed("has a negative `through`"))?,
        head_hash: Hash::try_from(head_hash.as_slice())
            .map_err(|_| malformed("has a `head_hash` that is not 32 bytes"))?,
        checkpoint,
        proof: decode_hashes(&proof).ok_or_else(|| malformed("has an unreadable `proof`"))?,
        frontier: decode_hashes(&frontier)
            .ok_or_else(|| malformed("has an unreadable `frontier`"))?,
    };
    if rows.next().map_err(read_error)?.is_some() {
        return Err(malformed("is not alone in its table"));
    }
    Ok(Some(parsed))
}

/// Where a signed verification of the store starts: record 1, or (a pruned ledger) after the
/// last pruned record, with the tree of the pruned records.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resume {
    /// The last pruned record (`None`: the ledger starts at record 1).
    pub(crate) head: Option<Head>,
    /// The tree of the pruned records, as their checkpoint vouches for it.
    pub(crate) start: Start,
}
