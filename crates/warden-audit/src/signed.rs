//! Verification against signed checkpoints: the chain, the Merkle tree and every checkpoint,
//! over a ledger or an exported copy.
//!
//! The hash chain alone catches a record changed, removed or reordered, but not a ledger cut
//! short, emptied, recomputed from some record on, or extended with a forged record whose
//! hashes are right: anyone who can write the file can do those. A checkpoint signed with a
//! key the ledger never holds fixes the tree of its first `size` records (RFC 9162, see
//! [`crate::merkle`]); [`Checker`] reads the records once, in order, in constant memory, and
//! checks at once
//!
//! - the chain, as [`Verifier`](crate::Verifier) does;
//! - the tree: the leaf of record `seq` is leaf `seq - 1`, its hash `leaf_hash(record.hash)`;
//! - every `checkpoint_signed` record it meets: its note verifies with the key, its payload
//!   fields are the note's, its origin is the anchor's (or the first checkpoint's), its size
//!   is at most the records before it, and the tree of that size has the signed root;
//! - an optional anchor checkpoint (a file from outside the ledger, signed, possibly newer
//!   than anything the ledger holds): the ledger must hold at least its records, and the tree
//!   of its size must have its root.
//!
//! It names the first thing wrong ([`Finding`]), distinctly: a chain problem, a rewritten
//! range, a ledger truncated, rolled back or emptied below a signed checkpoint, an unsigned
//! tail, or a bad checkpoint. Every choice fails closed: a checkpoint that cannot be read is
//! a finding, not skipped; records no checkpoint covers are a finding (the caller may accept
//! them as a warning, for a gateway still running).
//!
//! [`export`] reads an exported copy (the `ledger-<seq>.jsonl` files the export sinks write),
//! skipping exact repeats within [`MAX_REPEAT`] records (an at-least-once sink may resend).

mod checker;
pub mod export;
mod finding;
mod history;
mod ledger;
pub mod pruned;
mod tree;

#[cfg(test)]
mod tests;

pub use checker::{Checker, Report};
pub use finding::Finding;
pub use ledger::verify_ledger;
pub(crate) use tree::{Start, TreeChecker};

use crate::merkle::Hash;

/// How far back an exact repeat of a record may come in an export (an at-least-once sink
/// resending what it is not sure was received): a record whose `seq` and hash are those of
/// one of the last `MAX_REPEAT` records read is skipped. Export sinks keep their batches at
/// most 1024 records so a resend stays within it.
pub const MAX_REPEAT: u64 = 4096;

/// What a signed checkpoint says, once its signature is checked: the tree of the first `size`
/// records of the ledger named `origin` has root `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHead {
    /// The log's name (`warden/ledger/<ledger id>` by default).
    pub origin: String,
    /// How many records the checkpoint covers.
    pub size: u64,
    /// The Merkle root of those records.
    pub root: Hash,
}

/// A key that opens signed checkpoint notes: checks the signature and reads the checkpoint
/// body. The checker needs nothing else of the key.
pub trait OpenNote {
    /// The checkpoint `note` carries, if its signature verifies with this key and its body is
    /// a well-formed checkpoint; else why not (one line, no secret).
    fn open_note(&self, note: &str) -> Result<SignedHead, String>;
}

impl OpenNote for crate::checkpoint::VerifierKey {
    fn open_note(&self, note: &str) -> Result<SignedHead, String> {
        crate::checkpoint::Checkpoint::open(note, self)
            .map(|c| SignedHead {
                origin: c.origin,
                size: c.size,
                root: c.root,
            })
            .map_err(|e| e.to_string())
    }
}

/// A hash in standard base64 (with padding), as C2SP and RFC 9162 tools write proof hashes
/// and roots.
pub fn hash_base64(hash: &Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// Reads a hash written by [`hash_base64`]; `None` unless it is the base64 of 32 bytes.
pub fn hash_from_base64(text: &str) -> Option<Hash> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    Hash::try_from(bytes.as_slice()).ok()
}
