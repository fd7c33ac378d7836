//! The tree half of the checker: the Merkle tree of the records' hashes, the
//! `checkpoint_signed` records and the anchor checkpoint, and what the end of the ledger
//! shows (truncated, rolled back, emptied, an unsigned tail).
//!
//! It trusts that the records come in order with their hashes checked: the [`Checker`]
//! checks the chain first, and the parallel scan of the store stops this half at the first
//! record out of step and lets the chain half name it.
//!
//! [`Checker`]: super::Checker

use std::collections::VecDeque;

use serde::Deserialize;

use super::history::{History, WINDOW};
use super::{Finding, OpenNote, SignedHead};
use crate::chain::hex;
use crate::merkle::{Frontier, Hash, leaf_hash};
use warden_core::RecordKind;

/// At most this many checkpoint records after the signed size are remembered.
const MAX_RECENT: usize = 1024;

/// The payload of a `checkpoint_signed` record: the signed note (the truth) and, for readers
/// that do not check signatures, its checkpoint's fields (which must equal the note's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointPayload {
    note: String,
    origin: String,
    size: u64,
    root: String,
}

/// The `through` of a `ledger_pruned` record's payload.
fn pruned_through(payload: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()?
        .get("through")?
        .as_u64()
}

/// Where the tree checker starts: the empty tree, or (a pruned ledger) a frontier already
/// checked against a signed checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    /// The tree of the records before the first one read.
    pub(crate) frontier: Frontier,
    /// The largest size a signed checkpoint already vouches for.
    pub(crate) signed: u64,
    /// The ledger's origin, if already known.
    pub(crate) origin: Option<String>,
    /// A checkpoint the records to come must reach and match (a pruned ledger's).
    pub(crate) pending: Option<SignedHead>,
    /// The last pruned record, for a pruned ledger: its `ledger_pruned` record saying so is
    /// not counted as an unsigned record (the prune command holds no signing key).
    pub(crate) pruned_through: Option<u64>,
}

impl Default for Start {
    fn default() -> Self {
        Start {
            frontier: Frontier::new(),
            signed: 0,
            origin: None,
            pending: None,
            pruned_through: None,
        }
    }
}

/// The tree, the checkpoints met and the anchor; constant memory (the history is bounded).
pub(crate) struct TreeChecker<'k> {
    key: &'k (dyn OpenNote + Sync),
    history: History,
    origin: Option<String>,
    /// The anchor checkpoint (and a pruned ledger's), until the tree reaches its size.
    pending: Vec<SignedHead>,
    /// The largest size whose root a signed checkpoint (or the anchor) vouched for.
    signed: u64,
    /// How many checkpoint records verified.
    checkpoints: u64,
    /// The last record that is not a verified checkpoint record (0: none).
    last_plain: u64,
    /// The size of the checkpoint the last record carries, if the last record is one.
    ends_on_checkpoint: Option<u64>,
    /// The checkpoint records after `signed` (at most [`MAX_RECENT`]), ascending: an unsigned
    /// tail is named from the first record after `signed` that is not one of them.
    recent_checkpoints: VecDeque<u64>,
    /// See [`Start::pruned_through`].
    pruned_through: Option<u64>,
    finding: Option<Finding>,
}

impl<'k> TreeChecker<'k> {
    /// A checker from `start`, opening checkpoints with `key`, with the anchor checkpoint
    /// `anchor` (its note text) if there is one.
    pub(crate) fn new(
        key: &'k (dyn OpenNote + Sync),
        anchor: Option<&str>,
        start: Start,
    ) -> TreeChecker<'k> {
        let mut checker = TreeChecker {
            key,
            history: History::new(start.frontier),
            origin: start.origin,
            pending: start.pending.into_iter().collect(),
            signed: start.signed,
            checkpoints: 0,
            last_plain: 0,
            ends_on_checkpoint: None,
            recent_checkpoints: VecDeque::new(),
            pruned_through: start.pruned_through,
            finding: None,
        };
        if let Some(note) = anchor {
            match checker.open_anchor(note) {
                Ok(head) => checker.pending.push(head),
                Err(reason) => {
                    checker.finding = Some(Finding::BadCheckpoint { seq: None, reason });
                }
            }
        }
        checker.check_anchor();
        checker
    }

    fn open_anchor(&mut self, note: &str) -> Result<SignedHead, String> {
        let head = self
            .key
            .open_note(note)
            .map_err(|e| format!("it does not verify with the key: {e}"))?;
        if let Some(origin) = &self.origin
            && *origin != head.origin
        {
            return Err(format!(
                "its origin `{}` is not the ledger's `{origin}`",
                head.origin
            ));
        }
        if head.size < self.history.frontier().size() {
            return Err(format!(
                "it covers {} records, fewer than the {} records the ledger starts after",
                head.size,
                self.history.frontier().size()
            ));
        }
        self.origin = Some(head.origin.clone());
        Ok(head)
    }

    /// The first finding, if any.
    pub(crate) fn finding(&self) -> Option<&Finding> {
        self.finding.as_ref()
    }

    /// How many records the tree holds.
    pub(crate) fn size(&self) -> u64 {
        self.history.frontier().size()
    }

    /// The largest size a signed checkpoint vouched for so far.
    pub(crate) fn signed(&self) -> u64 {
        self.signed
    }

    /// How many `checkpoint_signed` records verified.
    pub(crate) fn checkpoints(&self) -> u64 {
        self.checkpoints
    }

    /// The ledger's origin, as the anchor or the first checkpoint names it.
    pub(crate) fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// Adds record `seq` (which must be record `size() + 1`, its hash checked), whose hash is
    /// `hash`; checks it if it is a checkpoint record, and the anchor if the tree reached its
    /// size. After a finding, keeps returning it.
    pub(crate) fn push(
        &mut self,
        seq: u64,
        hash: &Hash,
        kind: &str,
        payload: &str,
    ) -> Result<(), Finding> {
        if let Some(finding) = &self.finding {
            return Err(finding.clone());
        }
        self.history.push(leaf_hash(hash));
        self.check_anchor();
        if self.finding.is_none() {
            if kind == RecordKind::CheckpointSigned.as_str() {
                self.checkpoint(seq, payload);
            } else if kind == RecordKind::LedgerPruned.as_str()
                && self.pruned_through.is_some()
                && pruned_through(payload) == self.pruned_through
            {
                self.pruned_through = None;
                self.recent_checkpoints.push_back(seq);
                self.ends_on_checkpoint = None;
            } else {
                self.last_plain = seq;
                self.ends_on_checkpoint = None;
            }
        }
        match &self.finding {
            Some(finding) => Err(finding.clone()),
            None => Ok(()),
        }
    }

    fn check_anchor(&mut self) {
        let size = self.history.frontier().size();
        if !self.pending.iter().any(|a| a.size == size) {
            return;
        }
        let root = self.history.frontier().root();
        if self
            .pending
            .iter()
            .any(|a| a.size == size && a.root != root)
        {
            self.finding = Some(self.rewritten(size, None));
            return;
        }
        self.signed = self.signed.max(size);
        self.pending.retain(|a| a.size != size);
    }

    fn rewritten(&self, size: u64, checkpoint_seq: Option<u64>) -> Finding {
        Finding::Rewritten {
            from: if self.signed < size {
                self.signed.saturating_add(1)
            } else {
                1
            },
            through: size,
            checkpoint_seq,
        }
    }

    fn checkpoint(&mut self, seq: u64, payload: &str) {
        match self.open_checkpoint(seq, payload) {
            Ok(head) => match self.history.root_at(head.size) {
                Some(root) if root == head.root => {
                    self.signed = self.signed.max(head.size);
                    self.recent_checkpoints.push_back(seq);
                    while self
                        .recent_checkpoints
                        .front()
                        .is_some_and(|c| *c <= self.signed)
                        || self.recent_checkpoints.len() > MAX_RECENT
                    {
                        self.recent_checkpoints.pop_front();
                    }
                    self.checkpoints = self.checkpoints.saturating_add(1);
                    self.ends_on_checkpoint = Some(head.size);
                }
                Some(_) => self.finding = Some(self.rewritten(head.size, Some(seq))),
                None => {
                    self.finding = Some(Finding::BadCheckpoint {
                        seq: Some(seq),
                        reason: format!(
                            "it signs the tree of {} records, more than {WINDOW} records before \
                             it (too far back to check)",
                            head.size
                        ),
                    });
                }
            },
            Err(reason) => {
                self.finding = Some(Finding::BadCheckpoint {
                    seq: Some(seq),
                    reason,
                });
            }
        }
    }

    /// Reads and opens the checkpoint in record `seq`: its note verifies, its fields are the
    /// note's, its origin is the ledger's, and it covers only records before it.
    fn open_checkpoint(&mut self, seq: u64, payload: &str) -> Result<SignedHead, String> {
        let p: CheckpointPayload = serde_json::from_str(payload)
            .map_err(|e| format!("its payload is not a checkpoint: {e}"))?;
        let head = self
            .key
            .open_note(&p.note)
            .map_err(|e| format!("its note does not verify with the key: {e}"))?;
        let disagree = |field: &str, payload: &str, note: &str| {
            format!("its payload's {field} `{payload}` is not its note's `{note}`")
        };
        if p.origin != head.origin {
            return Err(disagree("origin", &p.origin, &head.origin));
        }
        if p.size != head.size {
            return Err(disagree(
                "size",
                &p.size.to_string(),
                &head.size.to_string(),
            ));
        }
        if p.root != hex(&head.root) {
            return Err(disagree("root", &p.root, &hex(&head.root)));
        }
        match &self.origin {
            Some(origin) if *origin != head.origin => {
                return Err(format!(
                    "its origin `{}` is not the ledger's `{origin}`",
                    head.origin
                ));
            }
            Some(_) => {}
            None => self.origin = Some(head.origin.clone()),
        }
        if head.size >= seq {
            return Err(format!(
                "it covers {} records, but only {} come before it",
                head.size,
                seq.saturating_sub(1)
            ));
        }
        Ok(head)
    }

    /// What the end of the ledger shows, after the last record: the first finding if there
    /// was one; else the anchor not reached (truncated, rolled back or emptied); else records
    /// no checkpoint covers (checkpoint records themselves excepted: the last checkpoint
    /// record is always after the size it signs).
    pub(crate) fn finish(&self) -> Option<Finding> {
        if let Some(finding) = &self.finding {
            return Some(finding.clone());
        }
        let records = self.size();
        if let Some(anchor) = self.pending.iter().max_by_key(|a| a.size) {
            return Some(if records == 0 {
                Finding::Emptied {
                    checkpoint: anchor.size,
                }
            } else if let Some(older) = self.ends_on_checkpoint {
                Finding::RolledBack {
                    records,
                    older,
                    checkpoint: anchor.size,
                }
            } else {
                Finding::Truncated {
                    records,
                    checkpoint: anchor.size,
                }
            });
        }
        let mut from = self.signed.saturating_add(1);
        for c in &self.recent_checkpoints {
            if *c == from {
                from = from.saturating_add(1);
            } else if *c > from {
                break;
            }
        }
        (self.last_plain > self.signed).then_some(Finding::UnsignedTail {
            from,
            through: records,
        })
    }
}
