//! Human approval: what an approval request is, how it may change, where it is kept, and how
//! approval links are signed.
//!
//! - [`request`]: an [`ApprovalRequest`] — the exact action it is bound to (an [`ActionHash`]
//!   of session, tool and canonical arguments), who asked, why, the deadline and the votes.
//! - [`machine`]: the pure transitions — approve, deny, expire, use — each of which either
//!   moves the request on or names why it is refused ([`VoteRefusal`], [`UseRefusal`]) — and
//!   the re-decision a live reload makes ([`Redecide`]: void, release, keep). No IO, no
//!   clock: the caller passes `now`.
//! - [`store`]: the requests in the state store (`state.db`, or the fleet's PostgreSQL database
//!   where every change locks the request's row), with an in-memory index by action hash and a
//!   watch channel per request so that waiting calls wake when it is decided (on this instance
//!   or, on PostgreSQL, on another).
//! - [`signing`]: HMAC-SHA256 signatures for webhook approve/deny links and webhook bodies.
//!
//! - [`workflow`]: [`Approvals`], who may decide (the charter's authority section) and the
//!   recording: every transition is recorded (through a [`Recorder`](warden_core::Recorder))
//!   before it takes effect, and a request that cannot be recorded or stored does not change.
//! - [`webhook`]: the outbound notifier — one signed POST per new request and delivery target,
//!   with the approve and deny links of the approvers whose links go there, on a bounded queue
//!   that never blocks the decision path.
//! - [`throttle`]: refusals without a credential are recorded once per source and window, then
//!   counted, so they cannot fill the ledger.
//!
//! In the workspace DAG this crate sits on `warden-core` and `warden-charter`; the ledger is
//! reached only through the `Recorder` trait.

pub mod machine;
pub mod request;
pub mod signing;
pub mod store;
pub mod throttle;
pub mod webhook;
pub mod workflow;

pub use machine::{Approver, Redecide, RedecideRefusal, UseRefusal, VoteRefusal, Voted};
pub use request::{
    ActionHash, ApprovalRequest, ChainLink, Earlier, NewApproval, Redecision, Reversal, Status,
    Vote,
};
pub use signing::{LinkAction, Signer};
pub use store::{ApprovalStore, Change, Entry, Loaded, StoreError, StorePool};
pub use webhook::{Notifier, WebhookConfig, WebhookFormat};
pub use workflow::{Approvals, Choice, DecideError, Decided, Decider, OnRequest};
