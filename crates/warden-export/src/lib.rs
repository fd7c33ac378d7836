//! Copies of the ledger outside the agent's reach.
//!
//! Every record the ledger commits is pushed, in ledger order, to each configured sink:
//! rotating JSON-lines files (a directory the operator mounts elsewhere), an HTTP endpoint
//! (batched JSON) or OpenTelemetry logs (OTLP/HTTP). What it guarantees:
//!
//! - **Never on the action path.** Each sink follows the ledger's committed head with its own
//!   read-only reader; nothing an action does waits for an export.
//! - **At least once, in order, resumable.** A sink's cursor (the last sequence number the sink
//!   acknowledged) is kept in the data directory and moved only after the sink acknowledged;
//!   after a restart or a crash each sink resumes after its cursor, so a record may be sent
//!   twice, never skipped or reordered.
//! - **Bounded.** A sink holds at most one batch in memory; when it is down the ledger keeps
//!   everything and the sink catches up when it is back. Its lag (head minus cursor) is a
//!   metric, and past a limit an `export_lagging` record (then `export_recovered`) tells the
//!   observer.
//! - **Verifiable on its own.** An export holds the records exactly as the ledger stores them,
//!   with their hashes and the `checkpoint_signed` records: `warden audit verify --file EXPORT
//!   --pubkey KEY` checks a copy without the ledger.

/// One export sink, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// The sink's name: unique, used for its cursor file and its metrics.
    pub name: String,
}
