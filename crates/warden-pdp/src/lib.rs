//! The policy decision point: `decide(&CompiledCharter, &Request) -> Decision`.
//!
//! Pure and synchronous: no IO, no clock, no async runtime. Everything a decision depends on
//! — the action, the on-behalf-of principal, the session's labels and preapproved-scope usage,
//! the posture and the controls an operator or the observer set, and the time — comes in the
//! [`Request`], so every decision can be replayed against the charter that made it.
//!
//! The rules, in order (see `docs/charter.md`):
//! 1. a revoked session, a frozen tool or the frozen posture deny;
//! 2. among matching rules the strictest tier wins, so rule order never matters; an error in
//!    a restrictive (approval or prohibited) rule denies, an error in a permissive rule only
//!    keeps it from matching;
//! 3. no match → the default posture (`ask`, i.e. approval);
//! 4. a preapproved action outside its scope (count, spend, expiry) escalates to approval;
//! 5. an action above what the principal may direct escalates to approval;
//! 6. the conservative posture turns autonomous and preapproved into approval.
//!
//! `in_task` and `provenance` matchers trace argument values through the request's
//! [`warden_provenance::SessionProvenance`]; the decision lists what its determining rules
//! judged that way in [`warden_core::Decision::provenance`].
//!
//! Sits above `warden-core` and `warden-charter` in the workspace DAG.

pub mod cases;
mod combine;
mod decide;
mod eval;
pub mod explain;
mod labels;
mod provenance;
mod request;
mod sql;

pub use combine::{combine, combine_verdicts, restrictiveness};
pub use decide::decide;
pub use eval::principal_matches;
pub use labels::{action_labels, result_labels};
pub use provenance::{MAX_EXPLAINED, MAX_EXPLAINED_VALUE, MAX_LEAVES};
pub use request::{Controls, NoScopeUsage, Request, RuleUsage, ScopeUsage};
pub use request::{lookup, spend_of};
