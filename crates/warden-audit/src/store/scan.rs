//! The verify scan: every record in `seq` order, read on the calling (blocking) thread with
//! each column borrowed straight from SQLite, fed to the [`Verifier`].
//!
//! This path uses `rusqlite` (over the same bundled SQLite as `sqlx`) rather than `sqlx`:
//! `sqlx` copies every column of every row on its connection thread and hands the row to the
//! reading task through a channel, which cost about 4.7 µs of CPU per record, five times the
//! hashing itself. Here a record costs one `sqlite3_step` and its hash.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::LedgerError;
use super::reader::VerifyReport;
use super::schema::COLUMNS;
use crate::chain::{Problem, RecordRef, Verifier};

fn read_error(e: rusqlite::Error) -> LedgerError {
    LedgerError::Read(Arc::new(e))
}

/// Verifies the whole ledger in `path` (one read transaction: a consistent snapshot).
pub(super) fn verify(path: &Path) -> Result<VerifyReport, LedgerError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(read_error)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(read_error)?;
    let mut statement = conn
        .prepare(&format!("SELECT {COLUMNS} FROM records ORDER BY seq"))
        .map_err(read_error)?;
    let mut rows = statement.query([]).map_err(read_error)?;
    let mut verifier = Verifier::new();
    let mut first_problem = None;
    while let Some(row) = rows.next().map_err(read_error)? {
        let checked = record_ref(row).and_then(|r| verifier.push(&r));
        if let Err(problem) = checked {
            first_problem = Some(verifier.fail(problem));
            break;
        }
    }
    Ok(VerifyReport {
        records: verifier.records(),
        head: verifier.head(),
        first_problem,
    })
}

/// Borrows a row as a record; a row that is not a record at all is [`Problem::Malformed`].
fn record_ref<'r>(row: &'r rusqlite::Row<'_>) -> Result<RecordRef<'r>, Problem> {
    let raw_seq = match row.get_ref(0) {
        Ok(ValueRef::Integer(seq)) => seq,
        _ => {
            return Err(Problem::Malformed {
                seq: -1,
                detail: "its sequence number is not an integer".to_owned(),
            });
        }
    };
    let malformed = |detail: &str| Problem::Malformed {
        seq: raw_seq,
        detail: detail.to_owned(),
    };
    let seq = u64::try_from(raw_seq)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| malformed("sequence numbers start at 1"))?;
    let text = |i: usize, name: &str| match row.get_ref(i) {
        Ok(ValueRef::Text(bytes)) => {
            std::str::from_utf8(bytes).map_err(|_| malformed(&format!("its {name} is not UTF-8")))
        }
        _ => Err(malformed(&format!("its {name} is not text"))),
    };
    let blob = |i: usize, name: &str| match row.get_ref(i) {
        Ok(ValueRef::Blob(bytes)) => Ok(bytes),
        _ => Err(malformed(&format!("its {name} is not a blob"))),
    };
    let session = match row.get_ref(2) {
        Ok(ValueRef::Null) => None,
        _ => Some(text(2, "session")?),
    };
    Ok(RecordRef {
        seq,
        time: text(1, "time")?,
        session,
        kind: text(3, "kind")?,
        payload: text(4, "payload")?,
        prev_hash: blob(5, "prev_hash")?,
        hash: blob(6, "hash")?,
    })
}
