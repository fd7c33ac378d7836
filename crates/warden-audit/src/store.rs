//! The SQLite store: one writer thread behind a bounded queue ([`Ledger`]), read-only readers
//! ([`LedgerReader`]). Everything goes through one SQLite crate, `rusqlite` (bundled SQLite),
//! driven directly: the writer on its own OS thread commits without a hop to another thread
//! per statement, the verify scan reads columns in place (see `scan.rs`), and the reader's
//! queries run on blocking threads over a small pool of read-only connections (see
//! `pool.rs`). The writer and every reader check the ledger's format with the same function
//! (`schema.rs`).
//!
//! The database is `DIR/ledger.db`, in WAL mode with `synchronous=FULL`: a record whose
//! append returned has been fsynced to the write-ahead log, so it survives a crash or a
//! power loss. `DIR/ledger.lock` is held (an advisory file lock) by the one process that
//! writes the ledger.

pub(crate) mod error;
mod intake;
mod pool;
mod postgres;
mod prune;
mod reader;
mod recorder;
pub(crate) mod resume;
mod scan;
mod schema;
mod tree;
mod wal;
mod writer;

#[cfg(test)]
mod kind_index_tests;
#[cfg(test)]
mod tests;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use warden_core::{Clock, RecordKind};

use crate::chain::canonical_json;
use crate::merkle;

pub use error::LedgerError;
pub use postgres::InstanceInfo;
pub use prune::{Pruned, prune_ledger};
pub use reader::{LedgerReader, PageBound};
pub use scan::VerifyReport;
pub(crate) use scan::verify_signed;
#[cfg(test)]
pub(crate) use scan::verify_signed_in_parts;
pub(crate) use schema::connect_reader;
pub use warden_core::NewRecord;

/// The database file inside the data directory.
pub const DB_FILE: &str = "ledger.db";
/// The lock file the writing process holds inside the data directory.
pub const LOCK_FILE: &str = "ledger.lock";

/// Where a ledger is read from: a data directory's `ledger.db`, or the fleet's PostgreSQL
/// store (one instance's chain, or every instance's records merged by time).
#[derive(Debug, Clone)]
pub enum LedgerSource {
    /// `DIR/ledger.db`.
    Dir(PathBuf),
    /// The shared store.
    Postgres {
        /// Its pool.
        pool: sqlx::PgPool,
        /// One instance's chain; `None`: every instance, merged by time.
        instance: Option<warden_core::InstanceId>,
    },
}

/// A record to append with its payload already in canonical JSON: the exact text the ledger
/// stores and hashes. Built only from a [`NewRecord`], so its payload is always canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRecord {
    pub(crate) session: Option<String>,
    pub(crate) kind: RecordKind,
    pub(crate) payload: String,
}

impl CanonicalRecord {
    /// `record`, its payload written as canonical JSON (once).
    pub fn new(record: NewRecord) -> CanonicalRecord {
        CanonicalRecord {
            payload: canonical_json(&record.payload),
            session: record.session,
            kind: record.kind,
        }
    }

    /// The payload as the ledger will store it.
    pub fn payload(&self) -> &str {
        &self.payload
    }

    /// The size in bytes of the stored payload (the `payload` column).
    pub fn payload_bytes(&self) -> u64 {
        self.payload.len() as u64
    }

    /// The record's session, if any.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// What the record is about.
    pub fn kind(&self) -> RecordKind {
        self.kind
    }
}

/// What the ledger assigned to a committed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's hash.
    pub hash: [u8; 32],
    /// The record's time.
    pub time: OffsetDateTime,
}

/// The Merkle tree head after a commit: the tree of the records `1..=size` (leaf `seq - 1` is
/// `merkle::leaf_hash(&record.hash)`) and its root. `size` is the committed head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// How many records the tree holds (the last record's `seq`).
    pub size: u64,
    /// The tree's root (RFC 9162, SHA-256; [`merkle::empty_root`] for an empty ledger).
    pub root: merkle::Hash,
}

/// How the ledger's writer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// How many appends (an `append_batch` counts as one) may wait in the queue; when it is
    /// full, appending waits. Default 4096.
    pub queue_capacity: NonZeroUsize,
    /// At most this many records are committed in one transaction (group commit), except that
    /// an `append_batch` larger than this is still committed whole. Default 512.
    pub max_batch: NonZeroUsize,
    /// How long a write waits for a lock held by another connection before it fails.
    /// Default 5 s.
    pub busy_timeout: Duration,
    /// Refuse to grow the database file beyond about this many bytes (SQLite
    /// `max_page_count`); appends past it fail as if the disk were full. Default: no limit.
    pub max_size_bytes: Option<u64>,
    /// How long an append waits (for room in the queue and for its commit) before it fails
    /// with [`LedgerError::TimedOut`]; the caller treats that as a failure to record and fails
    /// closed. An append whose caller gave up is dropped by the writer if it has not started
    /// writing it yet. Default 10 s.
    pub append_timeout: Duration,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            queue_capacity: NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN),
            max_batch: NonZeroUsize::new(512).unwrap_or(NonZeroUsize::MIN),
            busy_timeout: Duration::from_secs(5),
            max_size_bytes: None,
            append_timeout: Duration::from_secs(10),
        }
    }
}

/// Told by the writer, on its thread, after each group commit: how many records, how long
/// the transaction took, and whether it committed. It must return quickly (it runs between
/// commits); a metrics histogram is the intended use.
pub trait CommitObserver: Send + Sync + 'static {
    /// One group commit of `records` records took `took`; `committed` is false if it failed.
    fn committed(&self, records: usize, took: Duration, committed: bool);

    /// A checkpoint of the SQLite ledger's WAL (its committed pages copied into the database
    /// file) took `took`; `on_commit_path` when the writer ran it itself, after a commit and
    /// before the next (the WAL had reached its bound), rather than its checkpointer.
    fn checkpointed(&self, took: Duration, on_commit_path: bool) {
        let _ = (took, on_commit_path);
    }
}

/// A handle on the ledger's writer: cheap to clone, shared by every task that appends.
///
/// The writer is FIFO: appends commit in the order they were queued, a group at a time, each
/// group whole or not at all. Appends are durable when they return `Ok`, except
/// [`Ledger::append_queued`], which returns once its records are queued (see there). Every append is bounded by
/// [`LedgerConfig::append_timeout`] (a full queue, a slow disk, a lock held by another
/// process): past it the append fails with [`LedgerError::TimedOut`], and a caller treats that
/// as a failure to record, that is, it fails closed. An append whose caller gave up (the
/// timeout, or a dropped future) is skipped by the writer if it is still queued; one the
/// writer had already started may still be committed.
#[derive(Debug, Clone)]
pub struct Ledger {
    tx: mpsc::Sender<writer::Command>,
    dir: Arc<PathBuf>,
    append_timeout: Duration,
    /// The highest `seq` an append through this handle (or a clone) was acknowledged with,
    /// and when the last one failed (shared with the writer, which reports queued appends).
    health: Arc<writer::Health>,
    /// The committed head, as the writer publishes it.
    committed: watch::Receiver<u64>,
    /// The tree head of the committed records, as the writer publishes it.
    tree: watch::Receiver<TreeHead>,
    /// The ledger's identity.
    id: Arc<str>,
    /// On PostgreSQL: the shared store and this writer's instance.
    postgres: Option<Arc<(sqlx::PgPool, warden_core::InstanceId)>>,
}

/// How long after a failed append (with none succeeding since) the ledger is reported as not
/// taking appends ([`Ledger::is_accepting`]).
pub const FAILURE_REPORTED_FOR: Duration = Duration::from_secs(30);

impl Ledger {
    /// Opens the ledger in `dir` (creating the directory, mode 0700, and `ledger.db` and its
    /// lock, mode 0600, if missing; tightening them if group or others may use them), reads
    /// its last record, and starts the writer on a thread of its own (`warden-ledger`), which
    /// does the opening too, so this never blocks the calling task.
    ///
    /// Fails if another process holds the ledger's lock, or if the file is not a warden ledger
    /// (or one of a newer format).
    pub async fn open(
        dir: &Path,
        clock: Arc<dyn Clock>,
        config: LedgerConfig,
    ) -> Result<Ledger, LedgerError> {
        Ledger::open_observed(dir, clock, config, None).await
    }

    /// [`Ledger::open`], with `observer` told of every group commit (its duration).
    pub async fn open_observed(
        dir: &Path,
        clock: Arc<dyn Clock>,
        config: LedgerConfig,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> Result<Ledger, LedgerError> {
        let (tx, rx) = mpsc::channel(config.queue_capacity.get());
        let (head_tx, committed) = watch::channel(0);
        let (tree_tx, tree) = watch::channel(TreeHead {
            size: 0,
            root: merkle::empty_root(),
        });
        let publish = intake::Publish {
            head: head_tx,
            tree: tree_tx,
            observer,
        };
        let append_timeout = config.append_timeout;
        let (opened_tx, opened) = oneshot::channel();
        let thread_dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("warden-ledger".to_owned())
            .spawn(move || {
                match writer::Writer::open(&thread_dir, clock, &config, rx, publish) {
                    Ok(writer) => {
                        // If the caller gave up on `open`, nobody can append: drop the writer
                        // (and its lock) at once.
                        if opened_tx.send(Ok(Arc::from(writer.id()))).is_ok() {
                            writer.run();
                        }
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| LedgerError::Open {
                path: dir.join(DB_FILE),
                source: Arc::new(e),
            })?;
        let id = opened.await.map_err(|_| LedgerError::Closed)??;
        Ok(Ledger::handle(
            tx,
            dir,
            append_timeout,
            (committed, tree),
            id,
            None,
        ))
    }

    /// A handle on a writer that has opened.
    fn handle(
        tx: mpsc::Sender<writer::Command>,
        dir: &Path,
        append_timeout: Duration,
        (committed, tree): (watch::Receiver<u64>, watch::Receiver<TreeHead>),
        id: Arc<str>,
        postgres: Option<Arc<(sqlx::PgPool, warden_core::InstanceId)>>,
    ) -> Ledger {
        Ledger {
            tx,
            dir: Arc::new(dir.to_path_buf()),
            append_timeout,
            health: Arc::new(writer::Health::new()),
            committed,
            tree,
            id,
            postgres,
        }
    }

    /// A watch on the ledger's committed head: the `seq` of the last record the writer
    /// committed (by any handle; the ledger's last record at open), updated after each commit
    /// and before its appenders are answered. Never decreases. A reader following the ledger
    /// waits on it (`changed()`) instead of polling.
    pub fn watch_head(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// A watch on the Merkle tree head of the committed records, published by the writer after
    /// each commit (and at open) together with [`Ledger::watch_head`], before the commit's
    /// appenders are answered: its `size` is the committed head and its root covers exactly the
    /// records `1..=size`. Never shrinks.
    pub fn watch_tree(&self) -> watch::Receiver<TreeHead> {
        self.tree.clone()
    }

    /// The ledger's identity: a UUID made when the ledger is created (a ledger made before
    /// the tree gets one at the writer's next open), stored in the database (`meta`), so it
    /// is the same at every open.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many appends wait in the writer's queue now (an `append_batch` counts as one).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity().saturating_sub(self.tx.capacity())
    }

    /// Where this ledger is read from: its data directory, or its instance's chain in the
    /// shared store.
    pub fn source(&self) -> LedgerSource {
        match &self.postgres {
            Some(store) => LedgerSource::Postgres {
                pool: store.0.clone(),
                instance: Some(store.1.clone()),
            },
            None => LedgerSource::Dir(self.dir.to_path_buf()),
        }
    }

    /// The instance whose chain this handle writes in the shared store; `None` for a ledger
    /// in a data directory.
    pub fn instance(&self) -> Option<&warden_core::InstanceId> {
        self.postgres.as_deref().map(|store| &store.1)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The highest sequence number of a record appended through this handle or its clones,
    /// acknowledged (committed, durable) before this call; 0 before the first append. Never
    /// decreases. Cheap: one atomic load.
    pub fn committed_head(&self) -> u64 {
        self.health.head()
    }

    /// Whether the ledger takes appends, as far as is known without writing: its writer is
    /// running, and no append (through this handle or a clone) failed in the last
    /// [`FAILURE_REPORTED_FOR`] without one succeeding since (a full disk, the size cap, a
    /// lock held elsewhere). The window ends on its own so that a caller that stops sending
    /// work while this is `false` sees it again. Cheap: an atomic load and a channel check.
    ///
    /// A queued append ([`Ledger::append_queued`]) whose commit failed counts as a failed
    /// append here, when the writer finds it failed.
    pub fn is_accepting(&self) -> bool {
        !self.tx.is_closed() && !self.health.failed_within(FAILURE_REPORTED_FOR)
    }

    /// Appends one record and returns once its transaction has committed.
    pub async fn append(&self, record: NewRecord) -> Result<Appended, LedgerError> {
        let mut appended = self.append_batch(vec![record]).await?;
        appended.pop().ok_or(LedgerError::Closed)
    }

    /// Appends several records atomically (all are committed in one transaction, with
    /// consecutive sequence numbers, or none is) and returns once they have committed.
    pub async fn append_batch(
        &self,
        records: Vec<NewRecord>,
    ) -> Result<Vec<Appended>, LedgerError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        // Canonicalise here, on the caller's task, so the one writer only hashes and writes.
        let records = records.into_iter().map(CanonicalRecord::new).collect();
        self.append_canonical(records).await
    }

    /// [`Ledger::append_batch`] for records already in canonical form: a caller that needs a
    /// record's stored size before appending it (a quota) canonicalises it once, with
    /// [`CanonicalRecord::new`], and appends exactly the bytes it measured.
    pub async fn append_canonical(
        &self,
        records: Vec<CanonicalRecord>,
    ) -> Result<Vec<Appended>, LedgerError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (ack, done) = oneshot::channel();
        let append = async {
            self.tx
                .send(writer::Command::Append(writer::Job {
                    records,
                    ack: writer::Ack::Waiting(ack),
                }))
                .await
                .map_err(|_| LedgerError::Closed)?;
            done.await.map_err(|_| LedgerError::Closed)?
        };
        tokio::time::timeout(self.append_timeout, append)
            .await
            .unwrap_or(Err(LedgerError::TimedOut {
                after: self.append_timeout,
            }))
            .inspect(|appended| {
                if let Some(last) = appended.last() {
                    self.health.succeeded(last.seq);
                }
            })
            .inspect_err(|_| self.health.failed())
    }

    /// Appends several records atomically, like [`Ledger::append_batch`], but returns once
    /// they are queued to the writer, without waiting for their commit: they are committed
    /// with the next group. For a record nothing waits on (an action's result once the
    /// action's attempt, decision and forwarding are durable).
    ///
    /// What still holds:
    /// - Order: the writer is FIFO and commits a group whole, so these records commit after
    ///   everything queued before them and before everything queued after them; once a later
    ///   append has committed (an `Ok` from [`Ledger::append_batch`]), these have too. If
    ///   their commit fails they are retried at the head of the next group, before anything
    ///   queued after them (see the writer's intake).
    /// - Bounds: a full queue still makes this wait, up to [`LedgerConfig::append_timeout`];
    ///   `Err` means nothing was queued.
    /// - Failures are reported, never silent: a failed commit of these records is logged and
    ///   reported by [`Ledger::is_accepting`]; records still failing when the writer stops
    ///   are logged as lost (a crash loses them too: start-up reconciliation closes the
    ///   actions whose results they were as `unknown`).
    pub async fn append_queued(&self, records: Vec<NewRecord>) -> Result<(), LedgerError> {
        if records.is_empty() {
            return Ok(());
        }
        let records = records.into_iter().map(CanonicalRecord::new).collect();
        let job = writer::Job {
            records,
            ack: writer::Ack::Queued(self.health.clone()),
        };
        let send = async {
            self.tx
                .send(writer::Command::Append(job))
                .await
                .map_err(|_| LedgerError::Closed)
        };
        tokio::time::timeout(self.append_timeout, send)
            .await
            .unwrap_or(Err(LedgerError::TimedOut {
                after: self.append_timeout,
            }))
            .inspect_err(|_| self.health.failed())
    }

    /// Returns once every append queued before this call (through any handle) has been
    /// committed, or has failed: a reader that opens after it sees every record queued
    /// before it that committed (the writer is FIFO; nothing is written for the call itself).
    /// Bounded by [`LedgerConfig::append_timeout`]; `Err` if queued records before it failed
    /// to commit, or the wait timed out.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        let (ack, done) = oneshot::channel();
        let flush = async {
            self.tx
                .send(writer::Command::Append(writer::Job {
                    records: Vec::new(),
                    ack: writer::Ack::Waiting(ack),
                }))
                .await
                .map_err(|_| LedgerError::Closed)?;
            done.await.map_err(|_| LedgerError::Closed)?
        };
        tokio::time::timeout(self.append_timeout, flush)
            .await
            .unwrap_or(Err(LedgerError::TimedOut {
                after: self.append_timeout,
            }))
            .map(drop)
    }

    /// Commits everything already queued, stops the writer, closes the database and releases
    /// the lock; returns once the writer's thread has done all that. Appends made after this
    /// fail with [`LedgerError::Closed`].
    pub async fn shutdown(&self) -> Result<(), LedgerError> {
        let (ack, done) = oneshot::channel();
        if self.tx.send(writer::Command::Shutdown(ack)).await.is_err() {
            // The writer has already stopped.
            return Ok(());
        }
        done.await.unwrap_or(Ok(()))
    }
}
