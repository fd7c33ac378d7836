//! What the signed checker finds: each kind of tampering named distinctly.

use serde::Serialize;

use crate::chain::Problem;

/// The first thing wrong with a ledger (or an export) verified against signed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// The record's content (or its stored hash) no longer matches its hash.
    #[error("{}", Problem::Changed { seq: *.seq })]
    Changed {
        /// The changed record.
        seq: u64,
    },
    /// Records are missing in the middle of the chain.
    #[error("{}", Problem::Removed { seq: *.seq, next: *.next })]
    Removed {
        /// The first missing record.
        seq: u64,
        /// The record that comes where `seq` was expected.
        next: u64,
    },
    /// A record's sequence number goes backwards or repeats.
    #[error("{}", Problem::Reordered { seq: *.seq, after: *.after })]
    Reordered {
        /// The out-of-order record.
        seq: u64,
        /// The record it follows.
        after: u64,
    },
    /// A record does not link to the one before it.
    #[error("{}", Problem::ChainBroken { seq: *.seq })]
    ChainBroken {
        /// The first record that does not link.
        seq: u64,
    },
    /// A stored row (or an exported line) cannot be read as a record at all.
    #[error("record {seq} is malformed: {detail}")]
    Malformed {
        /// The stored sequence number (-1 when there is none).
        seq: i64,
        /// What is wrong with it.
        detail: String,
    },
    /// The chain is intact, but the ledger's tree of `through` records is not the one a signed
    /// checkpoint of that size signed: records between the last checkpoint that matched and
    /// `through` were replaced (a recomputed chain, a record inserted or changed with its
    /// hashes recomputed).
    #[error(
        "records {from} to {through} were rewritten: the tree of the first {through} records is \
         not the one {} signed (a recomputed chain, or records inserted or replaced with their \
         hashes recomputed)", signer(*.checkpoint_seq)
    )]
    Rewritten {
        /// The first record that may have been rewritten: one after the last signed size that
        /// matched.
        from: u64,
        /// The size of the checkpoint that does not match.
        through: u64,
        /// The `checkpoint_signed` record that does not match (`None`: the anchor checkpoint).
        checkpoint_seq: Option<u64>,
    },
    /// The ledger holds fewer records than a signed checkpoint covers, and does not end on a
    /// checkpoint record: its tail was cut off.
    #[error(
        "truncated: the ledger ends at record {records}, but a signed checkpoint covers {checkpoint} \
         records; records {} to {checkpoint} were removed", records.saturating_add(1)
    )]
    Truncated {
        /// How many records the ledger holds.
        records: u64,
        /// How many records the checkpoint covers.
        checkpoint: u64,
    },
    /// The ledger holds fewer records than a signed checkpoint covers and ends cleanly on an
    /// older checkpoint record: an older copy of the ledger was put back.
    #[error(
        "rolled back: the ledger ends at record {records}, an older checkpoint (of {older} \
         records), but a signed checkpoint covers {checkpoint} records (an older copy of the \
         ledger was put back?)"
    )]
    RolledBack {
        /// How many records the ledger holds.
        records: u64,
        /// How many records the older checkpoint it ends on covers.
        older: u64,
        /// How many records the newer checkpoint covers.
        checkpoint: u64,
    },
    /// The ledger holds no records, but a signed checkpoint covers some.
    #[error("emptied: the ledger holds no records, but a signed checkpoint covers {checkpoint}")]
    Emptied {
        /// How many records the checkpoint covers.
        checkpoint: u64,
    },
    /// Records after the last signed checkpoint that covers them: a forged append looks like
    /// this, and so do the records of a running gateway not signed yet.
    #[error(
        "unsigned tail: records {from} to {through} are not covered by a signed checkpoint (a \
         forged append, or records a running gateway has not signed yet)"
    )]
    UnsignedTail {
        /// The first record no checkpoint covers.
        from: u64,
        /// The last record.
        through: u64,
    },
    /// A `checkpoint_signed` record (or the anchor checkpoint) that does not verify with the
    /// key, whose payload disagrees with its note, or whose origin is not the anchor's.
    #[error("{}: {reason}", bad_where(*.seq))]
    BadCheckpoint {
        /// The checkpoint record (`None`: the anchor checkpoint).
        seq: Option<u64>,
        /// What is wrong with it.
        reason: String,
    },
}

fn signer(seq: Option<u64>) -> String {
    match seq {
        Some(seq) => format!("the checkpoint in record {seq}"),
        None => "the anchor checkpoint".to_owned(),
    }
}

fn bad_where(seq: Option<u64>) -> String {
    match seq {
        Some(seq) => format!("record {seq} is a bad checkpoint"),
        None => "the anchor checkpoint is bad".to_owned(),
    }
}

impl From<Problem> for Finding {
    fn from(p: Problem) -> Finding {
        match p {
            Problem::Changed { seq } => Finding::Changed { seq },
            Problem::Removed { seq, next } => Finding::Removed { seq, next },
            Problem::Reordered { seq, after } => Finding::Reordered { seq, after },
            Problem::ChainBroken { seq } => Finding::ChainBroken { seq },
            Problem::Malformed { seq, detail } => Finding::Malformed { seq, detail },
        }
    }
}

impl Finding {
    /// The finding's name, as in its JSON `finding` field (`changed`, `rewritten`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Finding::Changed { .. } => "changed",
            Finding::Removed { .. } => "removed",
            Finding::Reordered { .. } => "reordered",
            Finding::ChainBroken { .. } => "chain_broken",
            Finding::Malformed { .. } => "malformed",
            Finding::Rewritten { .. } => "rewritten",
            Finding::Truncated { .. } => "truncated",
            Finding::RolledBack { .. } => "rolled_back",
            Finding::Emptied { .. } => "emptied",
            Finding::UnsignedTail { .. } => "unsigned_tail",
            Finding::BadCheckpoint { .. } => "bad_checkpoint",
        }
    }

    /// The first record the finding is about: the first bad, missing, rewritten or unsigned
    /// record (`None` for the anchor checkpoint itself, or a malformed row without a number).
    pub fn first_record(&self) -> Option<u64> {
        match self {
            Finding::Changed { seq }
            | Finding::Removed { seq, .. }
            | Finding::ChainBroken { seq } => Some(*seq),
            Finding::Reordered { seq, .. } => Some(*seq),
            Finding::Malformed { seq, .. } => u64::try_from(*seq).ok(),
            Finding::Rewritten { from, .. } | Finding::UnsignedTail { from, .. } => Some(*from),
            Finding::Truncated { records, .. } | Finding::RolledBack { records, .. } => {
                Some(records.saturating_add(1))
            }
            Finding::Emptied { .. } => Some(1),
            Finding::BadCheckpoint { seq, .. } => *seq,
        }
    }

    /// The record at which a single pass in `seq` order finds it (for ordering findings from
    /// passes run in parallel); `u64::MAX` for what only the end of the ledger shows.
    pub(crate) fn found_at(&self) -> u64 {
        match self {
            Finding::Rewritten {
                checkpoint_seq,
                through,
                ..
            } => checkpoint_seq.unwrap_or(*through),
            Finding::Truncated { .. }
            | Finding::RolledBack { .. }
            | Finding::Emptied { .. }
            | Finding::UnsignedTail { .. } => u64::MAX,
            Finding::BadCheckpoint { seq, .. } => seq.unwrap_or(0),
            Finding::Malformed { seq, .. } => u64::try_from(*seq).unwrap_or(0),
            other => other.first_record().unwrap_or(0),
        }
    }
}
