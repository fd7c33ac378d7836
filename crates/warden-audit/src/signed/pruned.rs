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

use super::OpenNote;
use super::tree::Start;
use crate::chain::Head;
use crate::merkle::{self, Frontier, Hash, leaf_hash, node_hash};
use crate::store::resume::Resume;
pub use crate::store::resume::{CREATE, PrunedRow, decode_hashes, encode_hashes};

/// Records are pruned in whole chunks of this many (the tree's stored level).
pub const PRUNE_ALIGN: u64 = 1 << merkle::STORED_LEVEL;

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
