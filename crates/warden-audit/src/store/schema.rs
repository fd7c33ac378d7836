//! The table, the connection settings, and rows <-> records.

use std::path::Path;
use std::sync::Arc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::error::Source;
use super::{LedgerConfig, LedgerError};
use crate::chain::{GENESIS_HASH, Problem, Record, RecordRef, parse_time};

/// `PRAGMA application_id` of a ledger: "WLDG".
const APPLICATION_ID: i64 = 0x574c_4447;
/// `PRAGMA user_version`: the ledger format this code writes and reads.
pub(super) const FORMAT_VERSION: i64 = 1;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    session TEXT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
) STRICT";

/// The group of a record's kind in the kind index, as SQL: the kinds every governed call
/// writes share one group (`action`), as do a model call's (`model`); any other kind is its
/// own group. A commit of a call's records then touches one leaf of the kind index, not one
/// per kind. [`kind_group`] is the same mapping in Rust (a test holds them equal).
pub(super) const KIND_GROUP: &str = "(CASE \
     WHEN kind IN ('action_attempted', 'action_decided', 'action_forwarded', 'action_result') \
     THEN 'action' \
     WHEN kind IN ('model_requested', 'model_completed', 'model_intent') THEN 'model' \
     ELSE kind END)";

/// The group of `kind` in the kind index (see [`KIND_GROUP`]).
pub(super) fn kind_group(kind: &str) -> &str {
    match kind {
        "action_attempted" | "action_decided" | "action_forwarded" | "action_result" => "action",
        "model_requested" | "model_completed" | "model_intent" => "model",
        other => other,
    }
}

/// The indexes the readers' queries by session and by kind use (the console's timelines and
/// lists), for the writer to create at every open: a ledger made before they existed gets
/// them then, and loses the kind index of earlier versions (`(kind, seq)`, one leaf per kind
/// in every commit), which the grouped one replaces.
fn indexes() -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS records_by_session ON records(session, seq) \
         WHERE session IS NOT NULL; \
         CREATE INDEX IF NOT EXISTS records_by_kind_group ON records({KIND_GROUP}, seq); \
         DROP INDEX IF EXISTS records_by_kind;"
    )
}

/// The columns of a record, in the order [`record`] and [`record_ref`] read them.
pub(super) const COLUMNS: &str = "seq, time, session, kind, payload, prev_hash, hash";

/// The last record's sequence number and hash (0 and genesis for an empty ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tail {
    pub(super) seq: u64,
    pub(super) hash: [u8; 32],
}

/// Opens the one write connection: WAL, `synchronous=FULL`, the writer's `busy_timeout` and
/// size limit; creates and stamps the table in a new, empty database.
pub(super) fn connect_writer(
    path: &Path,
    config: &LedgerConfig,
) -> Result<Connection, LedgerError> {
    let fail = |e: rusqlite::Error| open_error(path, e);
    let conn = open_read_write(path, config, OpenFlags::SQLITE_OPEN_CREATE).map_err(fail)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(open_error(
            path,
            std::io::Error::other(format!("SQLite kept journal mode {mode}, not WAL")),
        ));
    }
    // FULL: every commit fsyncs the WAL, so a committed record survives a power loss.
    // (NORMAL would only sync at checkpoints: a crash could lose the last commits.)
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(fail)?;
    if let Some(bytes) = config.max_size_bytes {
        // The default page size is 4096 bytes.
        let pages = bytes.div_ceil(4096).max(1);
        conn.execute_batch(&format!("PRAGMA max_page_count = {pages}"))
            .map_err(fail)?;
    }
    if format_version(&conn, path)? == 0 {
        // One transaction: a database is either empty or a complete, stamped ledger.
        conn.execute_batch(&format!(
            "BEGIN; {CREATE}; PRAGMA application_id = {APPLICATION_ID}; \
             PRAGMA user_version = {FORMAT_VERSION}; COMMIT"
        ))
        .map_err(fail)?;
    }
    // The reading indexes (a session's records, the records of some kinds), created on a
    // ledger of any age when the writer opens it: derived, never part of the chain.
    conn.execute_batch(&indexes()).map_err(fail)?;
    Ok(conn)
}

/// Opens the checkpointer's connection to the ledger `path` the writer opened (and made a
/// WAL database): read-write, never creating, `synchronous=FULL` (a checkpoint syncs the WAL
/// before copying and the database file after, as the writer's own would).
pub(super) fn connect_checkpointer(
    path: &Path,
    config: &LedgerConfig,
) -> Result<Connection, LedgerError> {
    let fail = |e: rusqlite::Error| open_error(path, e);
    let conn = open_read_write(path, config, OpenFlags::empty()).map_err(fail)?;
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(fail)?;
    Ok(conn)
}

/// A read-write connection to `path` (with `flags` added), used from one thread at a time,
/// with the writer's `busy_timeout`.
fn open_read_write(
    path: &Path,
    config: &LedgerConfig,
    flags: OpenFlags,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | flags,
    )?;
    conn.busy_timeout(config.busy_timeout)?;
    Ok(conn)
}

/// Opens the ledger `path` read-only with `rusqlite` (for readers that stream rows on a
/// blocking thread) and checks that it is a ledger this code reads; a missing file, or a new
/// and empty database, is [`LedgerError::NotFound`]. Every connection a reader queries the
/// ledger through is opened here.
pub(crate) fn connect_reader(path: &Path) -> Result<Connection, LedgerError> {
    if !path.is_file() {
        return Err(LedgerError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let conn = open_read_only(path).map_err(|e| open_error(path, e))?;
    if format_version(&conn, path)? == 0 {
        return Err(LedgerError::NotFound {
            path: path.to_path_buf(),
        });
    }
    Ok(conn)
}

/// Opens `path` read-only (`SQLITE_OPEN_READ_ONLY`: it never creates or changes the file),
/// waiting up to 5 s for a lock held by another connection. No format check: see
/// [`connect_reader`].
pub(super) fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// The ledger's one format check, for the writer and every reader: reads `application_id`,
/// `user_version` and the number of schema objects, and returns the ledger format version,
/// 0 for a database that is new and empty. Another SQLite database, or a ledger of another
/// format, is [`LedgerError::Format`]; a failed read is [`LedgerError::Open`].
fn format_version(conn: &Connection, path: &Path) -> Result<i64, LedgerError> {
    let scalar = |sql: &str| {
        conn.query_row(sql, [], |row| row.get::<_, i64>(0))
            .map_err(|e| open_error(path, e))
    };
    let app = scalar("PRAGMA application_id")?;
    let version = scalar("PRAGMA user_version")?;
    let tables = scalar("SELECT count(*) FROM sqlite_schema")?;
    let format_error = |reason: String| LedgerError::Format {
        path: path.to_path_buf(),
        reason,
    };
    match (app, version) {
        (0, 0) if tables == 0 => Ok(0),
        (APPLICATION_ID, FORMAT_VERSION) => Ok(FORMAT_VERSION),
        (APPLICATION_ID, v) => Err(format_error(format!(
            "it is ledger format {v}, this warden reads format {FORMAT_VERSION}"
        ))),
        _ => Err(format_error("it is another SQLite database".to_owned())),
    }
}

/// Reads the last record's sequence number and hash.
pub(super) fn read_tail(conn: &Connection) -> Result<Tail, Source> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1")
        .and_then(|mut last| {
            last.query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(|e| -> Source { Arc::new(e) })?;
    let Some((seq, hash)) = row else {
        return Ok(Tail {
            seq: 0,
            hash: GENESIS_HASH,
        });
    };
    let malformed = |what: &str| -> Source {
        Arc::new(std::io::Error::other(format!(
            "the last record ({seq}) {what}"
        )))
    };
    Ok(Tail {
        seq: u64::try_from(seq).map_err(|_| malformed("has a negative sequence number"))?,
        hash: hash
            .try_into()
            .map_err(|_| malformed("has a hash that is not 32 bytes"))?,
    })
}

pub(super) fn open_error<E>(path: &Path, e: E) -> LedgerError
where
    E: std::error::Error + Send + Sync + 'static,
{
    LedgerError::Open {
        path: path.to_path_buf(),
        source: Arc::new(e),
    }
}

/// Borrows a row (its columns in [`COLUMNS`] order) as a record, each column in place, for
/// the verifier and the reader's queries alike. A row that cannot be read as a record at all
/// (a column of the wrong type, text that is not UTF-8, a sequence number below 1) is a
/// [`Problem::Malformed`].
pub(super) fn record_ref<'r>(row: &'r rusqlite::Row<'_>) -> Result<RecordRef<'r>, Problem> {
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

/// Reads a row (its columns in [`COLUMNS`] order) as a typed record. A row that is not a
/// record, or whose time, kind, payload or hashes do not parse, is
/// [`LedgerError::Malformed`].
pub(super) fn record(row: &rusqlite::Row<'_>) -> Result<Record, LedgerError> {
    let r = record_ref(row).map_err(|p| LedgerError::Malformed {
        seq: p.seq(),
        reason: match p {
            Problem::Malformed { detail, .. } => detail,
            other => other.to_string(),
        },
    })?;
    let seq = i64::try_from(r.seq).unwrap_or(i64::MAX);
    let malformed = |reason: String| LedgerError::Malformed { seq, reason };
    let hash32 = |h: &[u8], what: &str| {
        <[u8; 32]>::try_from(h).map_err(|_| malformed(format!("its {what} is not 32 bytes")))
    };
    Ok(Record {
        seq: r.seq,
        time: parse_time(r.time).map_err(|e| malformed(e.to_string()))?,
        session: r.session.map(str::to_owned),
        kind: r.kind.parse().map_err(|e| malformed(format!("{e}")))?,
        payload: serde_json::from_str(r.payload)
            .map_err(|e| malformed(format!("its payload is not JSON: {e}")))?,
        prev_hash: hash32(r.prev_hash, "prev_hash")?,
        hash: hash32(r.hash, "hash")?,
    })
}
