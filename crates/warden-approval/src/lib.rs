//! Human approval: what an approval request is, how it may change, where it is kept, and how
//! approval links are signed.
//!
//! - [`request`]: an [`ApprovalRequest`] — the exact action it is bound to (an [`ActionHash`]
//!   of session, tool and canonical arguments), who asked, why, the deadline and the votes.
//! - [`machine`]: the pure transitions — approve, deny, expire, use — each of which either
//!   moves the request on or names why it is refused ([`Refusal`], [`UseRefusal`]). No IO, no
//!   clock: the caller passes `now`.
//! - [`store`]: the requests in the state store (`state.db`), with an in-memory index by action
//!   hash and a watch channel per request so that waiting calls wake when it is decided.
//! - [`signing`]: HMAC-SHA256 signatures for webhook approve/deny links and webhook bodies.
//!
//! The gateway composes these with the ledger: every transition is recorded before it takes
//! effect, and a request that cannot be recorded or stored does not change.

pub mod machine;
pub mod request;
pub mod signing;
pub mod store;

pub use machine::{Approver, Refusal, UseRefusal, Voted};
pub use request::{ActionHash, ApprovalRequest, NewApproval, Status, Vote};
pub use signing::{LinkAction, Signer};
pub use store::{ApprovalStore, Entry, StoreError};
