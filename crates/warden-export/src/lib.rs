//! Copies of the ledger outside the agent's reach.
//!
//! Every record the ledger commits is pushed, in ledger order, to each configured sink:
//! rotating JSON-lines files (a directory the operator mounts elsewhere, [`file`]), an HTTP
//! endpoint (batched JSON, [`http`]) or OpenTelemetry logs (OTLP/HTTP protobuf, [`otlp`]). What
//! it guarantees:
//!
//! - **Never on the action path.** Each sink follows the ledger's committed head with its own
//!   read-only reader ([`Exporter::run`]); nothing an action does waits for an export.
//! - **At least once, in order, resumable.** A sink's cursor (the last sequence number the sink
//!   acknowledged, `DIR/export/<name>.cursor`, [`cursor`]) is moved only after the sink
//!   acknowledged (a 2xx, or the file's bytes fsynced); after a restart or a crash each sink
//!   resumes after its cursor, so a record may be sent twice (at most one batch, ≤
//!   [`MAX_BATCH_RECORDS`] records), never skipped or reordered. A file export resumes after
//!   the last complete line of its newest file, so it holds no repeat at all.
//! - **Bounded.** A sink holds at most one batch in memory (≤ [`MAX_BATCH_RECORDS`] records
//!   and ≤ [`MAX_BATCH_BYTES`] bytes, or one record if a single record is larger); when it is
//!   down the ledger keeps everything, the batch is retried with backoff forever, and the sink
//!   catches up when it is back. Its lag (head minus cursor) is a metric, and past a limit an
//!   `export_lagging` record (then `export_recovered`) tells the observer ([`lag`]).
//! - **Fails closed at start-up.** A cursor that is not a number, or is past the ledger's
//!   head, and a file export that does not continue this ledger, stop the start with an error
//!   naming the file: a sink never skips records silently ([`ExportError`]).
//! - **Verifiable on its own.** An export holds the records exactly as the ledger stores them
//!   (`Record::to_json_line`), with their hashes and the `checkpoint_signed` records:
//!   `warden audit verify --file EXPORT --pubkey KEY` checks a copy without the ledger.
//! - **Secrets stay secret.** Header values come from the environment; they are never logged,
//!   recorded or shown by `Debug`.

use std::path::PathBuf;
use std::time::Duration;

pub mod batch;
pub mod cursor;
mod error;
pub mod exporter;
pub mod file;
pub mod http;
pub mod lag;
pub mod otlp;
pub mod retry;

pub use error::ExportError;
pub use exporter::{Exporter, Stats};

/// The most records in one batch (a resend after a crash repeats at most this many, within
/// the verifier's repeat window of 4096).
pub const MAX_BATCH_RECORDS: usize = 1024;

/// The most bytes (JSON lines) in one batch; a single larger record is sent alone.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The default size at which a file sink starts a new file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The default lag (records) past which a sink is reported as lagging.
pub const DEFAULT_MAX_LAG_RECORDS: u64 = 100_000;

/// The default time a sink may fail without success before it is reported as lagging.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(300);

/// The most sinks a gateway exports to (each is a task, a reader and a metrics label).
pub const MAX_SINKS: usize = 8;

/// One export sink, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// The sink's name (`[a-z0-9_-]{1,32}`, unique): its cursor file and its metrics label.
    pub name: String,
    /// Where the records go.
    pub target: Target,
    /// A file sink starts a new file once its current one holds this many bytes.
    pub max_file_bytes: u64,
    /// Past this lag (records), the sink is reported as lagging.
    pub max_lag_records: u64,
    /// Failing this long without a success, the sink is reported as lagging.
    pub max_lag: Duration,
}

impl SinkConfig {
    /// A sink named `name` to `target`, with the default limits.
    pub fn new(name: &str, target: Target) -> SinkConfig {
        SinkConfig {
            name: name.to_owned(),
            target,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_lag_records: DEFAULT_MAX_LAG_RECORDS,
            max_lag: DEFAULT_MAX_LAG,
        }
    }

    /// The sink's type as configured (`file`, `http`, `otlp_logs`).
    pub fn kind(&self) -> &'static str {
        match self.target {
            Target::File { .. } => "file",
            Target::Http { .. } => "http",
            Target::OtlpLogs { .. } => "otlp_logs",
        }
    }
}

/// Where a sink's records go.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// Rotating JSON-lines files in `dir` (absolute).
    File {
        /// The directory the files are written to.
        dir: PathBuf,
    },
    /// Batches of records POSTed as JSON to `url`.
    Http {
        /// An `http` or `https` URL.
        url: String,
        /// Headers sent with every request, values read from the environment (never shown).
        headers: Vec<(String, String)>,
    },
    /// OTLP/HTTP protobuf logs to `{endpoint}/v1/logs`.
    OtlpLogs {
        /// The collector's base URL.
        endpoint: String,
        /// Headers sent with every request, values read from the environment (never shown).
        headers: Vec<(String, String)>,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |headers: &[(String, String)]| {
            headers.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
        };
        match self {
            Target::File { dir } => f.debug_struct("File").field("dir", dir).finish(),
            Target::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", url)
                .field("headers", &names(headers))
                .finish(),
            Target::OtlpLogs { endpoint, headers } => f
                .debug_struct("OtlpLogs")
                .field("endpoint", endpoint)
                .field("headers", &names(headers))
                .finish(),
        }
    }
}
