//! The ledger: warden's append-only, hash-chained log of everything it decides and does.
//!
//! - [`chain`] is pure: canonical JSON, the record format, the record hash and the streaming
//!   [`Verifier`]. No IO; pinned by golden vectors.
//! - [`store`] keeps the chain in SQLite: one writer thread owns the only write connection and
//!   is fed by a bounded queue ([`Ledger`]); readers open the database read-only
//!   ([`LedgerReader`]).
//! - [`search`] is a full-text index of the text model calls, approval requests and attempted
//!   actions carry ([`SearchIndex`]): derived data, kept beside the ledger and rebuilt from it.
//!
//! In the workspace DAG this crate depends only on `warden-core` (for the
//! [`Clock`](warden_core::Clock)). `docs/ledger.md` describes the format, the durability
//! guarantees and the failure behaviour.

pub mod chain;
pub mod checkpoint;
pub mod merkle;
pub mod search;
pub mod signed;
pub mod store;

pub use chain::{Head, Problem, Record, RecordKind, Verifier};
pub use search::{Hit, SearchError, SearchIndex, UpdateReport};
pub use store::TreeHead;
pub use store::{
    Appended, CanonicalRecord, CommitObserver, InstanceInfo, Ledger, LedgerConfig, LedgerError,
    LedgerReader, LedgerSource, NewRecord, PageBound, VerifyReport,
};
