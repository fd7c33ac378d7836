//! Pruning: deleting records `1..=through` once they are archived, with the `pruned` row
//! standing for them (see `signed/pruned.rs` for the row and how verifiers trust it).
//!
//! Runs with the ledger's lock held (the gateway stopped), in one transaction: the `pruned`
//! row replaced, the records deleted, and a `ledger_pruned` record appended to the chain (with
//! the tree nodes it completes, as the writer would store them); then `VACUUM` gives the space
//! back. The tree's stored nodes are kept: they are what proofs of the remaining records, and
//! the writer's frontier, are built from.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;
use warden_core::RecordKind;

use super::schema::{self, read_tail};
use super::{DB_FILE, LOCK_FILE, LedgerConfig, LedgerError, tree};
use crate::chain::{canonical_json, format_time, record_hash};
use crate::signed::pruned::{CREATE, PRUNE_ALIGN, PrunedRow, encode_hashes};

/// What a prune did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// The last record deleted.
    pub through: u64,
    /// The `ledger_pruned` record appended.
    pub record: u64,
}

/// Takes the ledger's lock as its writer does: fails with [`LedgerError::Locked`] while a
/// gateway (or any writer) has the ledger open.
fn lock(dir: &Path) -> Result<File, LedgerError> {
    let path = dir.join(LOCK_FILE);
    let io = |e: std::io::Error| LedgerError::Lock {
        path: path.clone(),
        source: Arc::new(e),
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LedgerError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Deletes records `1..=row.through` of the ledger in `dir`, writes `row` as its `pruned`
/// row and appends a `ledger_pruned` record naming `checkpoint_size` (the size of the
/// checkpoint `row` carries) and `archive` (where the records went); then vacuums. Blocking.
///
/// The caller has checked `row` (its checkpoint, proof and frontier, and that the archive
/// holds the records); this checks again that `through` is a positive multiple of 256, not
/// beyond the ledger, beyond what was pruned before, and that `head_hash` is the stored hash of
/// record `through`. [`LedgerError::Locked`] if the ledger is open elsewhere.
pub fn prune_ledger(
    dir: &Path,
    row: &PrunedRow,
    checkpoint_size: u64,
    archive: &str,
) -> Result<Pruned, LedgerError> {
    let _lock = lock(dir)?;
    let path = dir.join(DB_FILE);
    schema::connect_reader(&path)?;
    let conn = schema::connect_writer(&path, &LedgerConfig::default())?;
    let write = |e: rusqlite::Error| LedgerError::Write(Arc::new(e));
    let refuse = |reason: String| LedgerError::Format {
        path: path.clone(),
        reason,
    };
    let q = row.through;
    if q == 0 || !q.is_multiple_of(PRUNE_ALIGN) {
        return Err(refuse(format!(
            "records are pruned in whole chunks of {PRUNE_ALIGN}, not through {q}"
        )));
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(write)?;
    let done = (|| {
        let tail = read_tail(&conn).map_err(LedgerError::Write)?;
        if q > tail.seq {
            return Err(refuse(format!(
                "the ledger ends at record {}, before record {q}",
                tail.seq
            )));
        }
        let stored: Option<Vec<u8>> = conn
            .query_row(
                "SELECT hash FROM records WHERE seq = ?1",
                [i64::try_from(q).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .map_err(write)
            .ok();
        if stored.as_deref() != Some(row.head_hash.as_slice()) {
            return Err(refuse(format!(
                "record {q} is not the one the archive and the checkpoint hold"
            )));
        }
        let mut frontier = tree::read_frontier(&conn, tail.seq).map_err(LedgerError::Write)?;
        conn.execute_batch(&format!("{CREATE}; DELETE FROM pruned;"))
            .map_err(write)?;
        conn.execute(
            "INSERT INTO pruned (through, head_hash, checkpoint, proof, frontier) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                i64::try_from(q).unwrap_or(i64::MAX),
                row.head_hash.as_slice(),
                row.checkpoint,
                encode_hashes(&row.proof),
                encode_hashes(&row.frontier),
            ],
        )
        .map_err(write)?;
        conn.execute(
            "DELETE FROM records WHERE seq <= ?1",
            [i64::try_from(q).unwrap_or(i64::MAX)],
        )
        .map_err(write)?;
        let seq = tail.seq.saturating_add(1);
        let time = format_time(OffsetDateTime::now_utc()).map_err(LedgerError::Time)?;
        let kind = RecordKind::LedgerPruned.as_str();
        let payload = canonical_json(&json!({
            "through": q,
            "checkpoint_size": checkpoint_size,
            "archive": archive,
        }));
        let hash = record_hash(&tail.hash, seq, &time, None, kind, &payload);
        conn.execute(
            "INSERT INTO records (seq, time, session, kind, payload, prev_hash, hash) \
             VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                i64::try_from(seq).unwrap_or(i64::MAX),
                time,
                kind,
                payload,
                tail.hash.as_slice(),
                hash.as_slice()
            ],
        )
        .map_err(write)?;
        let mut nodes = Vec::new();
        tree::push_record(&mut frontier, &hash, &mut nodes);
        tree::insert_nodes(&conn, &nodes).map_err(write)?;
        Ok(Pruned {
            through: q,
            record: seq,
        })
    })();
    match done {
        Ok(pruned) => {
            conn.execute_batch("COMMIT").map_err(write)?;
            conn.execute_batch("VACUUM").map_err(write)?;
            conn.close().map_err(|(_, e)| write(e))?;
            Ok(pruned)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
