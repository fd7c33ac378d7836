//! warden's vocabulary, shared by every other crate.
//!
//! This crate sits at the bottom of the workspace DAG: it has no async runtime and no internal
//! dependencies, and no IO but two modules: [`private`], through which every store creates the
//! data directory and its files with owner-only modes, and [`small_file`], the bounded reader
//! of configuration and secret files. It defines the action tiers, the [`Decision`] every
//! policy evaluation returns, the gateway postures, the path canonicaliser, the action gate's
//! answers ([`gate`]), the ledger's record vocabulary and the [`Recorder`] trait components
//! append through ([`record`]), canonical JSON ([`canonical`]), the redaction of configured
//! secrets ([`redact`]), the small text encodings every surface shares ([`text`]) and the W3C
//! trace context an agent sends ([`trace_context`]).

pub mod canonical;
mod clock;
mod decision;
pub mod gate;
pub mod path;
pub mod private;
pub mod provenance;
pub mod record;
pub mod redact;
pub mod small_file;
pub mod store;
pub mod text;
mod tier;
pub mod trace_context;

pub use canonical::{canonical_json, hex};
pub use clock::{Clock, ManualClock, SystemClock};
pub use decision::{
    ApprovalSpec, CharterHash, Decision, Posture, Reason, RuleRef, SourceLocation, Verdict,
};
pub use gate::ApprovalStatus;
pub use provenance::{ArgProvenance, FoundIn, TrustedSource};
pub use record::{NewRecord, ParseRecordKindError, RecordError, RecordKind, Recorder};
pub use store::{InstanceId, StoreLocation};
pub use tier::{ParseTierError, Tier};
pub use trace_context::TraceContext;
