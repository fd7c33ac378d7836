//! The streaming checker: the chain and the tree in one pass, records in order.

use serde::Serialize;

use super::tree::{Start, TreeChecker};
use super::{Finding, OpenNote};
use crate::chain::{Head, RecordRef, Verifier};

/// What a verification against signed checkpoints found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// How many records were read intact (those before the finding, if there is one).
    pub records: u64,
    /// The last record read intact.
    pub head: Option<Head>,
    /// The largest number of records a verified signed checkpoint (or the anchor) covers.
    pub signed: u64,
    /// How many `checkpoint_signed` records verified.
    pub checkpoints: u64,
    /// The ledger's origin, as the anchor or the first checkpoint names it.
    pub origin: Option<String>,
    /// The first thing wrong, if anything is.
    pub finding: Option<Finding>,
}

impl Report {
    /// Whether nothing is wrong.
    pub fn is_intact(&self) -> bool {
        self.finding.is_none()
    }
}

/// Checks records one at a time, in order, against the chain, the tree, the signed
/// checkpoints among them and the anchor checkpoint; stops at the first finding. Memory use
/// does not grow with the ledger (a bounded window of the tree's recent past is kept, see
/// `history.rs`).
pub struct Checker<'k> {
    chain: Verifier,
    tree: TreeChecker<'k>,
    finding: Option<Finding>,
}

impl<'k> Checker<'k> {
    /// A checker expecting record 1, opening checkpoints with `key`; `anchor` is the text of
    /// a signed checkpoint note from outside the ledger, if there is one (one that does not
    /// verify is a [`Finding::BadCheckpoint`] without a record).
    pub fn new(key: &'k (dyn OpenNote + Sync), anchor: Option<&str>) -> Checker<'k> {
        Checker::resume(key, anchor, None, Start::default())
    }

    /// A checker that continues after `head` (a record already trusted), with the tree
    /// `start`: used for a pruned ledger.
    pub(crate) fn resume(
        key: &'k (dyn OpenNote + Sync),
        anchor: Option<&str>,
        head: Option<Head>,
        start: Start,
    ) -> Checker<'k> {
        let tree = TreeChecker::new(key, anchor, start);
        Checker {
            chain: head.map_or_else(Verifier::new, Verifier::resume),
            finding: tree.finding().cloned(),
            tree,
        }
    }

    /// Checks the next record. After a finding, keeps returning it.
    pub fn push(&mut self, record: &RecordRef<'_>) -> Result<(), Finding> {
        if let Some(finding) = &self.finding {
            return Err(finding.clone());
        }
        let checked = match self.chain.push(record) {
            Err(problem) => Err(Finding::from(problem)),
            Ok(()) => match <&[u8; 32]>::try_from(record.hash) {
                Ok(hash) => self
                    .tree
                    .push(record.seq, hash, record.kind, record.payload),
                Err(_) => Err(Finding::Changed { seq: record.seq }),
            },
        };
        checked.inspect_err(|finding| self.finding = Some(finding.clone()))
    }

    /// Records a finding made outside the checker (a line that is not a record); returns it,
    /// or the earlier finding if there already was one.
    pub fn fail(&mut self, finding: Finding) -> Finding {
        self.finding.get_or_insert(finding).clone()
    }

    /// The first finding so far, if any.
    pub fn finding(&self) -> Option<&Finding> {
        self.finding.as_ref()
    }

    /// The last record read intact.
    pub fn head(&self) -> Option<Head> {
        self.chain.head()
    }

    /// Ends the stream: the report, with what only the end shows (a truncated, rolled back
    /// or emptied ledger; an unsigned tail) if nothing was found before.
    pub fn finish(self) -> Report {
        let finding = self.finding.clone().or_else(|| self.tree.finish());
        Report {
            records: self.chain.records(),
            head: self.chain.head(),
            signed: self.tree.signed(),
            checkpoints: self.tree.checkpoints(),
            origin: self.tree.origin().map(str::to_owned),
            finding,
        }
    }
}
