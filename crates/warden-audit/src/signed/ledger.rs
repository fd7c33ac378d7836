//! Verifying a ledger database (`DIR/ledger.db`) against signed checkpoints, pruned or not.

use std::path::Path;

use super::pruned::{self, PrunedRow};
use super::{Finding, OpenNote, Report};
use crate::store::error::LedgerError;
use crate::store::resume::{Resume, read_pruned};
use crate::store::{DB_FILE, connect_reader, verify_signed};

/// Verifies the ledger in `dir` against signed checkpoints opened with `key`, and the anchor
/// checkpoint `anchor` (the text of a signed note) if there is one. Blocking: run it on a
/// thread that may block.
///
/// A pruned ledger is verified from its `pruned` row: the row's checkpoint must verify with
/// `key`, its inclusion proof must put the last pruned record's hash at its place in the
/// signed tree, and its frontier must be the one that proof implies; then the remaining
/// records are checked as if the pruned ones had been read. A row that fails any of that is a
/// [`Finding::BadCheckpoint`].
///
/// `Err` means the ledger could not be read; a ledger that reads but does not verify is an
/// `Ok` report with a `finding`.
pub fn verify_ledger(
    dir: &Path,
    key: &(dyn OpenNote + Sync),
    anchor: Option<&str>,
) -> Result<Report, LedgerError> {
    let path = dir.join(DB_FILE);
    let conn = connect_reader(&path)?;
    let row = read_pruned(&conn)?;
    drop(conn);
    let resume = match row {
        None => Resume::default(),
        Some(row) => match resume_from(&row, key) {
            Ok(resume) => resume,
            Err(reason) => {
                return Ok(Report {
                    records: 0,
                    head: None,
                    signed: 0,
                    checkpoints: 0,
                    origin: None,
                    finding: Some(Finding::BadCheckpoint { seq: None, reason }),
                });
            }
        },
    };
    verify_signed(&path, key, anchor, resume)
}

/// Checks a `pruned` row and makes the point the checker resumes from.
fn resume_from(row: &PrunedRow, key: &(dyn OpenNote + Sync)) -> Result<Resume, String> {
    pruned::check(row, key).map_err(|e| format!("the `pruned` row does not hold: {e}"))
}
