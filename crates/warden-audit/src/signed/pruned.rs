//! The `pruned` row of a pruned ledger: what stands for the records `1..=through` once they
//! are deleted, and how the checker trusts it.
//!
//! `pruned(through, head_hash, checkpoint, proof, frontier)`: `through` (a multiple of 256)
//! is the last pruned record and `head_hash` its hash; `checkpoint` the signed note of a
//! checkpoint of size `p >= through`; `proof` the inclusion proof of leaf `through - 1` in the
//! tree of `p` leaves; `frontier` the subtree roots of the tree of `through` leaves (largest
//! first). `proof` and `frontier` are JSON arrays of base64 hashes.
//!
//! The frontier is not taken on trust: an inclusion proof of the last leaf of the first
//! `through` leaves holds, as its left-hand siblings, exactly the roots of that tree's perfect
//! subtrees (the lowest one being built from the leaf itself and the siblings below it), so
//! the checker derives the frontier from the verified proof and requires the stored one to
//! equal it.

#[cfg(test)]
mod tests;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rusqlite::{Connection, OptionalExtension};

use super::OpenNote;
use super::tree::Start;
use crate::chain::Head;
use crate::merkle::{self, Frontier, Hash, leaf_hash, node_hash};
use crate::store::{LedgerError, Resume};

/// The table, created by `warden audit prune` in the pruning transaction.
pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS pruned (
    through INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    checkpoint TEXT NOT NULL,
    proof TEXT NOT NULL,
    frontier TEXT NOT NULL
) STRICT";

/// Records are pruned in whole chunks of this many (the tree's stored level).
pub const PRUNE_ALIGN: u64 = 1 << merkle::STORED_LEVEL;

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
pub(crate) fn read(conn: &Connection) -> Result<Option<PrunedRow>, LedgerError> {
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

/// Checks `row` against `key` and returns where the checker resumes: after record
/// `through`, with the tree of the pruned records, and the row's checkpoint still to be met
/// by the remaining records if it covers more than were pruned.
pub(crate) fn check(row: &PrunedRow, key: &(dyn OpenNote + Sync)) -> Result<Resume, String> {
    let head = key
        .open_note(&row.checkpoint)
        .map_err(|e| format!("its checkpoint does not verify with the key: {e}"))?;
    let q = row.through;
    if q == 0 || !q.is_multiple_of(PRUNE_ALIGN) || q > head.size {
        return Err(format!(
            "it says records 1 to {q} were pruned, which is not a positive multiple of \
             {PRUNE_ALIGN} within its checkpoint of {} records",
            head.size
        ));
    }
    let leaf = leaf_hash(&row.head_hash);
    merkle::verify_inclusion(q - 1, head.size, &leaf, &row.proof, &head.root)
        .map_err(|e| format!("the last pruned record is not in its checkpoint's tree: {e}"))?;
    let frontier = frontier_from_proof(q, head.size, &leaf, &row.proof)
        .ok_or("its proof does not give the tree of the pruned records")?;
    if frontier.nodes() != row.frontier.as_slice() {
        return Err("its frontier is not the tree of the pruned records".to_owned());
    }
    let pending = (head.size > q).then(|| head.clone());
    Ok(Resume {
        head: Some(Head {
            seq: q,
            hash: row.head_hash,
        }),
        start: Start {
            frontier,
            signed: q,
            origin: Some(head.origin.clone()),
            pending,
            pruned_through: Some(q),
        },
    })
}

/// The tree of the first `q` leaves from a (verified) inclusion proof of leaf `q - 1` in the
/// tree of `size` leaves: the proof's left-hand siblings, bottom up, are first those inside
/// the lowest perfect subtree (`trailing_zeros(q)` of them), then the roots of the larger
/// subtrees, smallest first.
pub fn frontier_from_proof(q: u64, size: u64, leaf: &Hash, proof: &[Hash]) -> Option<Frontier> {
    if q == 0 || q > size {
        return None;
    }
    let (mut f, mut s) = (q - 1, size - 1);
    let mut lefts = Vec::new();
    for sibling in proof {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            lefts.push(*sibling);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        }
        f >>= 1;
        s >>= 1;
    }
    let inside = usize::try_from(q.trailing_zeros()).ok()?;
    let lowest = lefts
        .get(..inside)?
        .iter()
        .fold(*leaf, |right, left| node_hash(left, &right));
    let mut nodes: Vec<Hash> = lefts.get(inside..)?.iter().rev().copied().collect();
    nodes.push(lowest);
    Frontier::from_parts(q, nodes)
}
