//! The observer's own store: `observer.db` (SQLite) in its data directory, which is the
//! owner's only (0700, the database and its companions 0600 from their first instant).
//!
//! It keeps the checkpoint — the last record read (its sequence number and hash, so the chain
//! check resumes across restarts) with the engine's state as of that record, and, for a fleet,
//! the last record read of every other instance's chain, all saved together so they always
//! agree — and the responses sent (each alert and intervention, its control id,
//! whether the gateway took it), which makes sending idempotent: a response already sent is
//! not sent again when records are read a second time after a restart. Bounded: the newest
//! [`MAX_RESPONSES`] responses are kept.

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;
use warden_audit::Head;
use warden_core::private::{self, Tightened};

/// The database's file name in the data directory.
pub const DB_FILE: &str = "observer.db";
/// How many sent responses are kept (the oldest are removed beyond).
pub const MAX_RESPONSES: i64 = 10_000;
/// The schema version (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    engine TEXT,
    saved_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS peer_heads (
    instance TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    action TEXT NOT NULL,
    detector TEXT NOT NULL,
    body TEXT NOT NULL,
    control TEXT,
    outcome TEXT NOT NULL
);
";

/// Why the store cannot be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory or the database file cannot be made private.
    #[error("cannot prepare `{path}` (owner-only): {source}")]
    Private {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("the observer's store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A newer warden wrote this store.
    #[error(
        "the observer's store `{path}` has schema version {found}, newer than this warden's {SCHEMA_VERSION}"
    )]
    Newer {
        /// The database.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
    /// A stored value cannot be read back (the store was edited outside warden).
    #[error("the observer's store holds an unreadable {what}")]
    Corrupt {
        /// Which value.
        what: &'static str,
    },
    /// The connection's lock is poisoned (a thread panicked holding it).
    #[error("the observer's store is unusable after an earlier failure")]
    Poisoned,
}

/// The last record read and the engine's state as of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The last record read (sequence number and hash).
    pub head: Head,
    /// The engine's state after that record (JSON), if it was saved.
    pub engine: Option<serde_json::Value>,
    /// When it was saved.
    pub saved_at: OffsetDateTime,
}

/// One response the observer sent (or tried to).
#[derive(Debug, Clone, PartialEq)]
pub struct SentResponse {
    /// Identifies the response (a hash of its content), for idempotence.
    pub key: String,
    /// The record that raised it.
    pub seq: u64,
    /// When it was sent.
    pub time: OffsetDateTime,
    /// `alert`, `conservative`, ...
    pub action: String,
    /// The detector or correlation rule.
    pub detector: String,
    /// The body sent to the control API.
    pub body: serde_json::Value,
    /// The control's id, when the gateway took it.
    pub control: Option<String>,
    /// `sent` (the gateway took it) or `refused: ...` / `failed: ...`.
    pub outcome: String,
}

/// The store. Every call is one short SQLite statement or transaction.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `dir`, making the directory and the database private.
    /// Returns what had to be tightened, for the caller to report.
    pub fn open(dir: &Path) -> Result<(Store, Vec<Tightened>), StoreError> {
        fn private(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
            move |source| StoreError::Private {
                path: path.to_path_buf(),
                source,
            }
        }
        let mut tightened: Vec<Tightened> = private::private_dir(dir)
            .map_err(private(dir))?
            .into_iter()
            .collect();
        let path = dir.join(DB_FILE);
        tightened.extend(private::private_database(&path).map_err(private(&path))?);
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Newer {
                path,
                found: version,
            });
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok((
            Store {
                conn: Mutex::new(conn),
                path,
            },
            tightened,
        ))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut conn)
    }

    /// The checkpoint, if one was saved.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.with(|conn| {
            let row = conn
                .query_row(
                    "SELECT seq, hash, engine, saved_at FROM checkpoint WHERE id = 1",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((seq, hash, engine, saved_at)) = row else {
                return Ok(None);
            };
            let corrupt = |what| StoreError::Corrupt { what };
            Ok(Some(Checkpoint {
                head: Head {
                    seq: u64::try_from(seq).map_err(|_| corrupt("sequence number"))?,
                    hash: hash.try_into().map_err(|_| corrupt("hash"))?,
                },
                engine: engine
                    .map(|e| serde_json::from_str(&e))
                    .transpose()
                    .map_err(|_| corrupt("engine state"))?,
                saved_at: warden_core::text::parse_rfc3339(&saved_at)
                    .ok_or_else(|| corrupt("time"))?,
            }))
        })
    }

    /// Saves the checkpoint (replacing the one before), durably.
    pub fn save_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        peers: &[(String, Head)],
    ) -> Result<(), StoreError> {
        let seq = i64::try_from(checkpoint.head.seq).unwrap_or(i64::MAX);
        let engine = checkpoint.engine.as_ref().map(serde_json::Value::to_string);
        let saved_at = warden_core::text::rfc3339(checkpoint.saved_at);
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO checkpoint (id, seq, hash, engine, saved_at) VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET seq = ?1, hash = ?2, engine = ?3, saved_at = ?4",
                params![seq, checkpoint.head.hash.as_slice(), engine, saved_at],
            )?;
            for (instance, head) in peers {
                tx.execute(
                    "INSERT INTO peer_heads (instance, seq, hash) VALUES (?1, ?2, ?3)
                     ON CONFLICT (instance) DO UPDATE SET seq = ?2, hash = ?3",
                    params![
                        instance,
                        i64::try_from(head.seq).unwrap_or(i64::MAX),
                        head.hash.as_slice()
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The last record read of every other instance's chain, as saved with the checkpoint.
    pub fn peer_heads(&self) -> Result<Vec<(String, Head)>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare("SELECT instance, seq, hash FROM peer_heads")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?;
            let corrupt = |what| StoreError::Corrupt { what };
            let mut out = Vec::new();
            for row in rows {
                let (instance, seq, hash) = row?;
                out.push((
                    instance,
                    Head {
                        seq: u64::try_from(seq).map_err(|_| corrupt("sequence number"))?,
                        hash: hash.try_into().map_err(|_| corrupt("hash"))?,
                    },
                ));
            }
            Ok(out)
        })
    }

    /// Whether the response `key` was sent and taken by the gateway.
    pub fn was_sent(&self, key: &str) -> Result<bool, StoreError> {
        self.with(|conn| {
            let outcome: Option<String> = conn
                .query_row("SELECT outcome FROM responses WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(outcome.as_deref() == Some("sent"))
        })
    }

    /// Records a response sent (or its failure), replacing an earlier entry of the same key,
    /// and keeps only the newest [`MAX_RESPONSES`].
    pub fn record_response(&self, r: &SentResponse) -> Result<(), StoreError> {
        let seq = i64::try_from(r.seq).unwrap_or(i64::MAX);
        let time = warden_core::text::rfc3339(r.time);
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM responses WHERE key = ?1", [&r.key])?;
            tx.execute(
                "INSERT INTO responses (key, seq, time, action, detector, body, control, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    r.key,
                    seq,
                    time,
                    r.action,
                    r.detector,
                    r.body.to_string(),
                    r.control,
                    r.outcome
                ],
            )?;
            tx.execute(
                "DELETE FROM responses WHERE id <= (SELECT MAX(id) FROM responses) - ?1",
                [MAX_RESPONSES],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// The newest `limit` responses, newest first.
    pub fn responses(&self, limit: u32) -> Result<Vec<SentResponse>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT key, seq, time, action, detector, body, control, outcome
                 FROM responses ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })?;
            let corrupt = |what| StoreError::Corrupt { what };
            let mut out = Vec::new();
            for row in rows {
                let (key, seq, time, action, detector, body, control, outcome) = row?;
                out.push(SentResponse {
                    key,
                    seq: u64::try_from(seq).map_err(|_| corrupt("sequence number"))?,
                    time: warden_core::text::parse_rfc3339(&time).ok_or_else(|| corrupt("time"))?,
                    action,
                    detector,
                    body: serde_json::from_str(&body).map_err(|_| corrupt("response"))?,
                    control,
                    outcome,
                });
            }
            Ok(out)
        })
    }
}
