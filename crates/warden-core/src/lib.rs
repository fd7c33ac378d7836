//! warden's vocabulary, shared by every other crate.
//!
//! This crate sits at the bottom of the workspace DAG: it has no IO, no async runtime and no
//! internal dependencies. It defines the action tiers, the [`Decision`] every policy evaluation
//! returns, the gateway postures, and the path canonicaliser used both by the decision engine
//! and (later) by the gateway before it forwards an action.

mod clock;
mod decision;
pub mod path;
mod tier;

pub use clock::{Clock, ManualClock, SystemClock};
pub use decision::{
    ApprovalSpec, CharterHash, Decision, Posture, Reason, RuleRef, SourceLocation, Verdict,
};
pub use tier::{ParseTierError, Tier};
