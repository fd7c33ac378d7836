//! The streaming verifier: records in, the first problem out, in constant memory.

use serde::Serialize;

use super::hash::{GENESIS_HASH, record_hash};
use super::record::RecordRef;
use warden_core::canonical::hex;

/// The first thing wrong with a ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The record's content (or its stored hash) no longer matches its hash.
    #[error("record {seq} was changed: its content no longer matches its hash")]
    Changed {
        /// The changed record.
        seq: u64,
    },
    /// Records are missing: `seq` (and any after it up to `next - 1`) is not there.
    #[error("{}", removed_message(*.seq, *.next))]
    Removed {
        /// The first missing record.
        seq: u64,
        /// The record that comes where `seq` was expected.
        next: u64,
    },
    /// A record's sequence number goes backwards or repeats.
    #[error("record {seq} is out of order: it comes after record {after}")]
    Reordered {
        /// The out-of-order record.
        seq: u64,
        /// The record it follows.
        after: u64,
    },
    /// The record's `prev_hash` is not the previous record's hash (or, for the first record,
    /// not 32 zero bytes): the record does not belong where it is, or the record before it was
    /// rewritten.
    #[error("{}", broken_message(*.seq))]
    ChainBroken {
        /// The first record that does not link to the one before it.
        seq: u64,
    },
    /// A stored row cannot be read as a record at all (a negative sequence number, a column of
    /// the wrong type): the store was edited outside warden.
    #[error("record {seq} is malformed: {detail}")]
    Malformed {
        /// The stored sequence number.
        seq: i64,
        /// What is wrong with it.
        detail: String,
    },
}

fn removed_message(seq: u64, next: u64) -> String {
    let missing = if next > seq.saturating_add(1) {
        format!("records {seq} to {} were removed", next.saturating_sub(1))
    } else {
        format!("record {seq} was removed")
    };
    match seq.checked_sub(1).filter(|p| *p > 0) {
        Some(prev) => format!("{missing}: record {next} follows record {prev}"),
        None => format!("{missing}: the ledger starts at record {next}"),
    }
}

fn broken_message(seq: u64) -> String {
    match seq.checked_sub(1).filter(|p| *p > 0) {
        Some(prev) => format!(
            "chain broken at record {seq}: its prev_hash is not the hash of record {prev} \
             (record {prev} was rewritten, or record {seq} does not belong here)"
        ),
        None => format!("chain broken at record {seq}: its prev_hash is not the genesis hash"),
    }
}

impl Problem {
    /// The sequence number the problem is reported at.
    pub fn seq(&self) -> i64 {
        let seq = match self {
            Problem::Changed { seq }
            | Problem::Removed { seq, .. }
            | Problem::Reordered { seq, .. }
            | Problem::ChainBroken { seq } => *seq,
            Problem::Malformed { seq, .. } => return *seq,
        };
        i64::try_from(seq).unwrap_or(i64::MAX)
    }
}

/// The last record verified: its sequence number and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The last record's sequence number.
    pub seq: u64,
    /// The last record's hash.
    pub hash: [u8; 32],
}

impl Serialize for Head {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Head", 2)?;
        st.serialize_field("seq", &self.seq)?;
        st.serialize_field("hash", &hex(&self.hash))?;
        st.end()
    }
}

/// Checks records one at a time, in the order they are stored, and stops at the first
/// problem. Memory use does not grow with the ledger.
///
/// For each record, in this order: its `seq` is the one expected (1, then one more each
/// time; larger means records were removed, smaller means reordered), its `prev_hash` is the
/// previous record's hash (genesis for the first), and its hash is the hash of its content.
/// Checking the link before the content means a record moved to another position is named
/// as a broken chain where it lands, and a record rewritten *with* a recomputed hash is found
/// at the record after it.
///
/// After a problem, [`Verifier::push`] keeps returning that problem.
#[derive(Debug, Clone)]
pub struct Verifier {
    next_seq: u64,
    prev_hash: [u8; 32],
    records: u64,
    problem: Option<Problem>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// A verifier expecting the first record.
    pub fn new() -> Self {
        Self {
            next_seq: 1,
            prev_hash: GENESIS_HASH,
            records: 0,
            problem: None,
        }
    }

    /// A verifier that continues after `head`, a record verified (or trusted) before: it
    /// expects record `head.seq + 1` linking to `head.hash`. Used to verify a ledger in parts,
    /// and from a checkpoint.
    pub fn resume(head: Head) -> Self {
        Self {
            next_seq: head.seq.saturating_add(1),
            prev_hash: head.hash,
            records: 0,
            problem: None,
        }
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &RecordRef<'_>) -> Result<(), Problem> {
        if let Some(problem) = &self.problem {
            return Err(problem.clone());
        }
        match self.check(record) {
            Ok(hash) => {
                self.prev_hash = hash;
                self.next_seq = self.next_seq.saturating_add(1);
                self.records = self.records.saturating_add(1);
                Ok(())
            }
            Err(problem) => {
                self.problem = Some(problem.clone());
                Err(problem)
            }
        }
    }

    /// Records a problem found outside the verifier (a row that cannot be read as a record);
    /// returns it, or the earlier problem if there already was one.
    pub fn fail(&mut self, problem: Problem) -> Problem {
        self.problem.get_or_insert(problem).clone()
    }

    fn check(&self, r: &RecordRef<'_>) -> Result<[u8; 32], Problem> {
        if r.seq > self.next_seq {
            return Err(Problem::Removed {
                seq: self.next_seq,
                next: r.seq,
            });
        }
        if r.seq < self.next_seq {
            return Err(Problem::Reordered {
                seq: r.seq,
                after: self.next_seq.saturating_sub(1),
            });
        }
        if r.prev_hash != self.prev_hash.as_slice() {
            return Err(Problem::ChainBroken { seq: r.seq });
        }
        let hash = record_hash(&self.prev_hash, r.seq, r.time, r.session, r.kind, r.payload);
        if r.hash != hash.as_slice() {
            return Err(Problem::Changed { seq: r.seq });
        }
        Ok(hash)
    }

    /// How many records this verifier found intact.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The last record verified intact (or the head it resumed after), if any.
    pub fn head(&self) -> Option<Head> {
        (self.next_seq > 1).then_some(Head {
            seq: self.next_seq.saturating_sub(1),
            hash: self.prev_hash,
        })
    }

    /// The sequence number this verifier expects next.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The first problem found, if any.
    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }
}
