//! The ledger's errors.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::chain::TimeError;

/// The underlying error of a failed open, write or read: SQLite's (through `rusqlite`), or
/// the reason a stored value could not be used or a blocking task did not finish.
pub(super) type Source = Arc<dyn std::error::Error + Send + Sync>;

/// Something went wrong opening, writing or reading the ledger.
///
/// Cloneable, so one failed commit can be reported to every append that was part of it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// The data directory cannot be created.
    #[error("cannot create the data directory `{}`", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<io::Error>,
    },
    /// The lock file cannot be opened or locked.
    #[error("cannot lock the ledger `{}`", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<io::Error>,
    },
    /// Another process is writing the ledger.
    #[error("another process is writing the ledger in `{}`; stop it first", path.display())]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// There is no ledger in the directory.
    #[error("there is no ledger at `{}`", path.display())]
    NotFound {
        /// The database file that is missing.
        path: PathBuf,
    },
    /// SQLite cannot open the database (or set it up).
    #[error("cannot open the ledger `{}`", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Source,
    },
    /// The database is not a warden ledger, or one this version cannot read.
    #[error("`{}` is not a ledger this warden can read: {reason}", path.display())]
    Format {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The commit failed; nothing of the batch was recorded.
    #[error("the ledger could not commit the record")]
    Write(#[source] Source),
    /// The writer could not stamp the record's time.
    #[error("the ledger could not stamp the record")]
    Time(#[source] TimeError),
    /// A read failed.
    #[error("cannot read the ledger")]
    Read(#[source] Source),
    /// A stored record cannot be read back as a record.
    #[error("record {seq} cannot be read: {reason}; run `warden audit verify`")]
    Malformed {
        /// The stored sequence number.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
    /// The ledger holds `i64::MAX` records: SQLite cannot number another.
    #[error("the ledger has no sequence numbers left")]
    Exhausted,
    /// The ledger has been shut down (or its writer stopped).
    #[error("the ledger is closed")]
    Closed,
    /// An append was not committed within [`LedgerConfig::append_timeout`](super::LedgerConfig::append_timeout)
    /// (a full queue, a slow disk, a lock held too long).
    #[error("the ledger did not commit the record within {after:?}")]
    TimedOut {
        /// The append timeout.
        after: std::time::Duration,
    },
    /// Kept for compatibility: [`Ledger::open`](super::Ledger::open) no longer needs a tokio
    /// runtime (its writer runs on a thread of its own) and never returns this.
    #[error("the ledger needs a tokio runtime to run its writer")]
    NoRuntime,
    /// A Merkle tree of no records was asked for: it has no root worth signing and no proofs.
    #[error("the tree of 0 records has no root or proofs; ask for a size of 1 or more")]
    EmptyTree,
    /// A tree larger than the ledger was asked for.
    #[error("the ledger holds {head} records, so it has no tree of {size}")]
    BeyondHead {
        /// The size asked for.
        size: u64,
        /// The ledger's last record.
        head: u64,
    },
    /// An inclusion proof was asked for a record outside the tree (0, or past its size).
    #[error("record {seq} is not in the tree of {size} records")]
    NotInTree {
        /// The record.
        seq: u64,
        /// The tree's size.
        size: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("a tree of {old} records cannot be extended by one of {new}")]
    Shrinks {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// The answer needs a record pruned from this ledger (retention).
    #[error(
        "record {seq} has been pruned from this ledger; prove it from the archive that holds it"
    )]
    Pruned {
        /// The first pruned record needed.
        seq: u64,
    },
    /// A node of the ledger's Merkle tree is not stored where it should be.
    #[error(
        "the ledger's Merkle tree has no node at level {level}, index {index}; the ledger's writer (the gateway) rebuilds the tree when it next opens the ledger"
    )]
    TreeNode {
        /// The node's level (8 or more).
        level: u32,
        /// Its index at that level.
        index: u64,
    },
    /// The ledger was last written by a warden without the Merkle tree: no tree, no id yet.
    #[error(
        "the ledger has no Merkle tree yet; the ledger's writer (the gateway) builds it when it next opens the ledger"
    )]
    NoTree,
    /// PostgreSQL failed (unreachable, a timeout, a constraint): the append or read did not
    /// happen; the caller fails closed.
    #[error("the ledger's PostgreSQL store failed: {0}")]
    Postgres(#[source] Source),
    /// Another process is writing this instance's chain in the shared store.
    #[error(
        "another process is writing the ledger of instance `{instance}`; stop it first, or give this one another `--instance`"
    )]
    InstanceLocked {
        /// The instance.
        instance: String,
    },
    /// The shared store has no chain of this instance.
    #[error("the shared store has no ledger of instance `{instance}`")]
    UnknownInstance {
        /// The instance asked for.
        instance: String,
    },
    /// What was asked is not available on this store.
    #[error("{0} is not available on this ledger store")]
    Unsupported(&'static str),
}
