//! The pure half of the ledger: canonical JSON, the record format, the hash chain and the
//! verifier. No IO, no async runtime; the encoding is pinned by golden vectors
//! (`tests/fixtures/chain/vectors.json`) so it can never change silently.

mod canonical;
mod hash;
mod kind;
mod record;
mod verify;

#[cfg(test)]
mod tests;

pub use canonical::canonical_json;
pub use hash::{GENESIS_HASH, HASH_DOMAIN, record_hash};
pub use kind::{ParseRecordKindError, RecordKind};
pub use record::{Record, RecordRef, TimeError, format_time, hex, parse_time};
pub use verify::{Head, Problem, Verifier};
