//! Why a sink cannot start (or a step of it failed).

use std::path::PathBuf;
use std::sync::Arc;

use warden_audit::LedgerError;

/// Why an export sink cannot start, or a step of its work failed. Messages name the file or
/// the sink, never a header value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExportError {
    /// The cursor file holds something other than a sequence number (fail closed: guessing
    /// could skip records).
    #[error(
        "the export cursor `{path}` does not hold a sequence number ({reason}); fix or remove it (removed, the sink starts again at the first record)"
    )]
    CursorGarbage {
        /// The cursor file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The cursor is past the ledger's head: it belongs to another ledger, or was edited.
    #[error(
        "the export cursor `{path}` says record {cursor} was exported, but the ledger ends at {head}; it belongs to another ledger or was edited: fix or remove it"
    )]
    CursorAhead {
        /// The cursor file.
        path: PathBuf,
        /// What it says.
        cursor: u64,
        /// The ledger's last record.
        head: u64,
    },
    /// The newest file of a file export does not continue this ledger.
    #[error("the export in `{dir}` does not continue this ledger: {reason}")]
    Mismatch {
        /// The export directory.
        dir: PathBuf,
        /// What differs.
        reason: String,
    },
    /// A file or directory could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done (`write`, `read`, `create`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The ledger could not be read.
    #[error("cannot read the ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The sink's settings cannot be used (a header that is not a valid HTTP header, a client
    /// that cannot be built).
    #[error("export sink `{sink}`: {reason}")]
    Setup {
        /// The sink's name.
        sink: String,
        /// What is wrong (never a header value).
        reason: String,
    },
}

impl ExportError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        ExportError::Io {
            action,
            path: path.into(),
            source: Arc::new(e),
        }
    }
}
