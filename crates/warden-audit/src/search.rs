//! Full-text search over the text the ledger captured: prompts and completions of model calls,
//! approval requests, attempted actions.
//!
//! The index is `DIR/search.db`, an SQLite FTS5 table beside the ledger `DIR/ledger.db`. It is
//! derived data: nothing in it is authoritative, it can be deleted at any time, and it is
//! rebuilt from the ledger. The ledger's writer knows nothing of it: [`SearchIndex::update`]
//! reads the records appended since the last update from the ledger, read-only and in
//! batches, and indexes them. It remembers the last record it read (its `seq` and hash) and
//! the ledger's first record's hash; when the ledger no longer has that record with that hash
//! (a different ledger, or a shorter or rewritten one), the index is emptied and rebuilt.
//!
//! Indexed records: every kind whose name starts with `model_`, `approval_requested` and
//! `action_attempted` ([`is_indexed`]). A record's text is every string value in its payload
//! (at any depth, object keys excluded), joined with newlines ([`payload_text`]).
//!
//! Everything here is blocking (SQLite through `rusqlite`): async code calls it from
//! `spawn_blocking`.

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use serde_json::Value;

use crate::store::{DB_FILE, LedgerError, connect_reader};

/// The index file inside the data directory.
pub const INDEX_FILE: &str = "search.db";

/// `PRAGMA application_id` of a search index: "WSRC".
const APPLICATION_ID: i64 = 0x5753_5243;
/// `PRAGMA user_version`: the index format this code writes and reads.
const FORMAT_VERSION: i64 = 1;
/// Ledger records read, and indexed in one index transaction, at a time.
const BATCH: i64 = 1000;
/// Tokens in a snippet (FTS5 allows at most 64).
const SNIPPET_TOKENS: i64 = 16;

const CREATE: &str = "
CREATE TABLE state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    first_hash BLOB NOT NULL,
    last_seq INTEGER NOT NULL,
    last_hash BLOB NOT NULL
) STRICT;
CREATE VIRTUAL TABLE texts USING fts5(
    text,
    session UNINDEXED,
    kind UNINDEXED,
    time UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);";

const INSERT: &str =
    "INSERT INTO texts (rowid, text, session, kind, time) VALUES (?1, ?2, ?3, ?4, ?5)";

const SEARCH: &str = "
SELECT rowid, time, session, kind, snippet(texts, 0, '[', ']', '…', ?4)
FROM texts
WHERE texts MATCH ?1 AND (?2 IS NULL OR session = ?2)
ORDER BY rowid DESC
LIMIT ?3";

/// Whether records of `kind` are indexed: the model proxy's records (`model_*`), approval
/// requests and attempted actions.
pub fn is_indexed(kind: &str) -> bool {
    kind.starts_with("model_") || kind == "approval_requested" || kind == "action_attempted"
}

/// The text indexed for a stored payload: every string value in it, at any depth and in
/// document order (object keys are not included), joined with newlines. A payload that is not
/// JSON (only a tampered ledger holds one) is indexed as it is.
pub fn payload_text(payload: &str) -> String {
    fn collect(value: &Value, out: &mut String) {
        match value {
            Value::String(s) => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(s);
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            Value::Object(map) => map.values().for_each(|v| collect(v, out)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    // `serde_json` refuses nesting deeper than 128, which bounds the recursion.
    match serde_json::from_str::<Value>(payload) {
        Ok(value) => {
            let mut out = String::new();
            collect(&value, &mut out);
            out
        }
        Err(_) => payload.to_owned(),
    }
}

/// One record that matched a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// The record's sequence number (`warden audit show SEQ` prints it whole).
    pub seq: u64,
    /// The record's time, as stored in the ledger (`YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`).
    pub time: String,
    /// The record's session, if any.
    pub session: Option<String>,
    /// The record's kind.
    pub kind: String,
    /// The text around the match, the matched words in `[` `]`, `…` where text was left out.
    /// It may span several of the payload's strings (joined with newlines).
    pub snippet: String,
}

/// What [`SearchIndex::update`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateReport {
    /// Ledger records read.
    pub scanned: u64,
    /// Of those, records indexed (the kinds [`is_indexed`] accepts).
    pub indexed: u64,
    /// Whether the index did not match the ledger and was emptied first.
    pub rebuilt: bool,
}

/// The search index could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The ledger could not be opened or read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// SQLite cannot open or set up the index.
    #[error("cannot open the search index `{}`", path.display())]
    Open {
        /// The index file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The index file cannot be created with mode 0600 (or an existing one made so).
    #[error("cannot create the search index `{}` with mode 0600", path.display())]
    Create {
        /// The index file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a search index this version writes. The index is derived data: moving
    /// the file away is safe, the next search rebuilds it.
    #[error(
        "`{}` is not a search index this warden can use: {reason}; it holds only derived data, \
         so move it away and search again",
        path.display()
    )]
    Format {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or updating the index failed.
    #[error("the search index `{}` could not be read or updated", path.display())]
    Index {
        /// The index file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
}

/// The index's memory of the ledger it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    /// The hash of the ledger's first record.
    first_hash: Vec<u8>,
    /// The last record read (indexed or not).
    last_seq: i64,
    /// Its hash.
    last_hash: Vec<u8>,
}

/// The search index of one data directory, with a read-only connection to its ledger.
#[derive(Debug)]
pub struct SearchIndex {
    index: Connection,
    ledger: Connection,
    path: PathBuf,
}

impl SearchIndex {
    /// Opens the index of the ledger in `data_dir`, creating `data_dir/search.db` (mode 0600,
    /// its `-wal` and `-shm` too) if it is missing (empty: [`update`](Self::update) fills
    /// it). The ledger is opened read-only and must exist.
    pub fn open(data_dir: &Path) -> Result<SearchIndex, SearchError> {
        let ledger = connect_reader(&data_dir.join(DB_FILE))?;
        let path = data_dir.join(INDEX_FILE);
        // Created 0600 before SQLite opens it, so its companions get that mode too (see
        // `warden_core::private`): the index holds the text of every prompt and argument.
        warden_core::private::private_database(&path).map_err(|source| SearchError::Create {
            path: path.clone(),
            source,
        })?;
        let index = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| SearchError::Open {
            path: path.clone(),
            source,
        })?;
        set_up(&index, &path)?;
        Ok(SearchIndex {
            index,
            ledger,
            path,
        })
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Brings the index up to date with the ledger: reads the records after the last one it
    /// read, in batches of 1000, each batch indexed and remembered in one transaction (an
    /// interrupted update keeps what it committed). Empties the index first when it does not
    /// match the ledger (see the module documentation). Two processes may update at once;
    /// their batches take turns.
    pub fn update(&mut self) -> Result<UpdateReport, SearchError> {
        let path = self.path.clone();
        let index_error = |source| SearchError::Index {
            path: path.clone(),
            source,
        };
        let mut report = UpdateReport::default();
        loop {
            let tx = self
                .index
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(index_error)?;
            let mut state = read_state(&tx).map_err(index_error)?;
            if let Some(s) = &state
                && !index_matches_ledger(&self.ledger, s)?
            {
                tx.execute_batch("DROP TABLE state; DROP TABLE texts;")
                    .and_then(|()| tx.execute_batch(CREATE))
                    .map_err(index_error)?;
                state = None;
                report.rebuilt = true;
            }
            let after = state.as_ref().map_or(0, |s| s.last_seq);
            let mut first_hash = state.map(|s| s.first_hash);
            let mut last = None;
            {
                let mut insert = tx.prepare_cached(INSERT).map_err(index_error)?;
                let mut select = self
                    .ledger
                    .prepare_cached(
                        "SELECT seq, time, session, kind, payload, hash FROM records \
                         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    )
                    .map_err(read_error)?;
                let mut rows = select.query(params![after, BATCH]).map_err(read_error)?;
                while let Some(row) = rows.next().map_err(read_error)? {
                    let seq = match row.get_ref(0).map_err(read_error)? {
                        ValueRef::Integer(seq) => seq,
                        _ => return Err(malformed(-1, "its sequence number is not an integer")),
                    };
                    let text = |i: usize, name: &str| match row.get_ref(i) {
                        Ok(ValueRef::Text(bytes)) => std::str::from_utf8(bytes)
                            .map_err(|_| malformed(seq, &format!("its {name} is not UTF-8"))),
                        _ => Err(malformed(seq, &format!("its {name} is not text"))),
                    };
                    let hash = match row.get_ref(5).map_err(read_error)? {
                        ValueRef::Blob(bytes) => bytes.to_vec(),
                        _ => return Err(malformed(seq, "its hash is not a blob")),
                    };
                    let kind = text(3, "kind")?;
                    if is_indexed(kind) {
                        let session = match row.get_ref(2).map_err(read_error)? {
                            ValueRef::Null => None,
                            _ => Some(text(2, "session")?),
                        };
                        insert
                            .execute(params![
                                seq,
                                payload_text(text(4, "payload")?),
                                session,
                                kind,
                                text(1, "time")?
                            ])
                            .map_err(index_error)?;
                        report.indexed = report.indexed.saturating_add(1);
                    }
                    report.scanned = report.scanned.saturating_add(1);
                    if first_hash.is_none() {
                        first_hash = Some(hash.clone());
                    }
                    last = Some((seq, hash));
                }
            }
            let (Some(first_hash), Some((last_seq, last_hash))) = (first_hash, last) else {
                // Nothing new: the index is up to date.
                tx.commit().map_err(index_error)?;
                return Ok(report);
            };
            tx.execute(
                "INSERT OR REPLACE INTO state (id, first_hash, last_seq, last_hash) \
                 VALUES (1, ?1, ?2, ?3)",
                params![first_hash, last_seq, last_hash],
            )
            .map_err(index_error)?;
            tx.commit().map_err(index_error)?;
        }
    }

    /// The indexed records whose text contains `text` as a phrase, newest first, at most
    /// `limit`, only those of `session` when one is given. Does not update the index.
    ///
    /// `text` is taken literally: its words must appear in this order, consecutively
    /// (case, diacritics and punctuation between words do not matter). It is never read as
    /// FTS5 query syntax: quotes, `*`, `AND`, `NEAR`, parentheses... are plain text. A text
    /// without a word (only punctuation, say) matches nothing.
    pub fn search(
        &self,
        text: &str,
        session: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Hit>, SearchError> {
        let index_error = |source| SearchError::Index {
            path: self.path.clone(),
            source,
        };
        let mut select = self.index.prepare_cached(SEARCH).map_err(index_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = select
            .query_map(
                params![phrase(text), session, limit, SNIPPET_TOKENS],
                |row| {
                    Ok(Hit {
                        seq: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                        time: row.get(1)?,
                        session: row.get(2)?,
                        kind: row.get(3)?,
                        snippet: row.get(4)?,
                    })
                },
            )
            .map_err(index_error)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(index_error)
    }
}

/// `text` as one FTS5 phrase: in double quotes, with its double quotes doubled, so nothing in
/// it is query syntax. NUL ends an FTS5 query string early, so it becomes a space.
fn phrase(text: &str) -> String {
    let mut out = String::with_capacity(text.len().saturating_add(2));
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\"\""),
            '\0' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// WAL (a search reads while another process updates) with `synchronous=NORMAL` (the index is
/// derived: losing its last commit on a power loss only means indexing those records again),
/// then the tables in a new database, or the format check of an existing one.
fn set_up(index: &Connection, path: &Path) -> Result<(), SearchError> {
    let fail = |source| SearchError::Open {
        path: path.to_path_buf(),
        source,
    };
    index.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
    let _mode: String = index
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(fail)?;
    index
        .execute_batch("PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE")
        .map_err(fail)?;
    let checked = check_format(index, path);
    let end = if checked.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    index.execute_batch(end).map_err(fail)?;
    checked
}

/// Inside `set_up`'s transaction: creates and stamps the tables in a new database, checks an
/// existing one.
fn check_format(index: &Connection, path: &Path) -> Result<(), SearchError> {
    let fail = |source| SearchError::Open {
        path: path.to_path_buf(),
        source,
    };
    let scalar = |sql: &str| index.query_row(sql, [], |row| row.get::<_, i64>(0));
    let app = scalar("PRAGMA application_id").map_err(fail)?;
    let version = scalar("PRAGMA user_version").map_err(fail)?;
    let tables = scalar("SELECT count(*) FROM sqlite_schema").map_err(fail)?;
    let format_error = |reason: String| SearchError::Format {
        path: path.to_path_buf(),
        reason,
    };
    match (app, version) {
        (0, 0) if tables == 0 => index
            .execute_batch(&format!(
                "{CREATE} PRAGMA application_id = {APPLICATION_ID}; \
                 PRAGMA user_version = {FORMAT_VERSION};"
            ))
            .map_err(fail),
        (APPLICATION_ID, FORMAT_VERSION) => Ok(()),
        (APPLICATION_ID, v) => Err(format_error(format!(
            "it is index format {v}, this warden writes format {FORMAT_VERSION}"
        ))),
        _ => Err(format_error("it is another SQLite database".to_owned())),
    }
}

fn read_state(index: &Connection) -> rusqlite::Result<Option<State>> {
    index
        .query_row(
            "SELECT first_hash, last_seq, last_hash FROM state WHERE id = 1",
            [],
            |row| {
                Ok(State {
                    first_hash: row.get(0)?,
                    last_seq: row.get(1)?,
                    last_hash: row.get(2)?,
                })
            },
        )
        .optional()
}

/// Whether the ledger still starts with the record the index started from, and still holds
/// the last record the index read, with the same hashes.
fn index_matches_ledger(ledger: &Connection, state: &State) -> Result<bool, SearchError> {
    let hash = |sql: &str, seq: Option<i64>| -> Result<Option<Vec<u8>>, SearchError> {
        let mut statement = ledger.prepare_cached(sql).map_err(read_error)?;
        let row = match seq {
            Some(seq) => statement.query_row([seq], |row| row.get::<_, AnyBytes>(0)),
            None => statement.query_row([], |row| row.get::<_, AnyBytes>(0)),
        };
        Ok(row.optional().map_err(read_error)?.map(|v| v.0))
    };
    let first = hash("SELECT hash FROM records ORDER BY seq LIMIT 1", None)?;
    if first.as_deref() != Some(state.first_hash.as_slice()) {
        return Ok(false);
    }
    let last = hash(
        "SELECT hash FROM records WHERE seq = ?1",
        Some(state.last_seq),
    )?;
    Ok(last.as_deref() == Some(state.last_hash.as_slice()))
}

/// A column's bytes whatever its type (a tampered ledger may hold a hash that is not a
/// blob): it only has to compare unequal to the hash the index remembers.
struct AnyBytes(Vec<u8>);

impl rusqlite::types::FromSql for AnyBytes {
    fn column_result(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Ok(AnyBytes(match value {
            ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
            ValueRef::Null | ValueRef::Integer(_) | ValueRef::Real(_) => Vec::new(),
        }))
    }
}

fn read_error(e: rusqlite::Error) -> SearchError {
    SearchError::Ledger(LedgerError::Read(Arc::new(e)))
}

fn malformed(seq: i64, reason: &str) -> SearchError {
    SearchError::Ledger(LedgerError::Malformed {
        seq,
        reason: reason.to_owned(),
    })
}
