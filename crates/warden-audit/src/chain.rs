//! The pure half of the ledger: canonical JSON, the record format, the hash chain and the
//! verifier. No IO, no async runtime; the encoding is pinned by golden vectors
//! (`tests/fixtures/chain/vectors.json`) so it can never change silently.

mod hash;
mod record;
mod verify;

#[cfg(test)]
mod tests;

pub use hash::{GENESIS_HASH, HASH_DOMAIN, record_hash};
pub use record::{LineError, Record, RecordRef, TimeError, format_time, parse_time};
pub use verify::{Head, Problem, Verifier};
pub use warden_core::canonical::{canonical_json, hex};
pub use warden_core::record::{ParseRecordKindError, RecordKind};
