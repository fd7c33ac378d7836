//! Who is acting, and what they have used: the gateway's mutable state in `state.db`.
//!
//! - [`state_db`]: the database, its pool and its versioned migrations.
//! - [`tokens`]: session and operator tokens — random, prefixed by plane (`wa_` agent,
//!   `wo_` operator), stored only as BLAKE3 hashes, compared in constant time.
//! - [`sessions`]: a session binds one agent, acting for one principal, to one task for a
//!   limited time, with the data labels it accumulates.
//! - [`operators`]: operator credentials and their roles (admin, or approver as a principal).
//! - [`scope_counters`]: preapproved-scope counters per session and per UTC day, counted
//!   atomically with the decision that uses them.
//! - [`token_budgets`]: the model proxy's token counters per session, agent and principal.
//! - [`capture_quota`]: how many bytes a session may have recorded, per record and in all,
//!   shared by the governor and the model proxy.
//! - [`ledger_mark`]: the last ledger sequence number the gateway knows committed, for
//!   `warden audit verify` to tell a ledger whose tail was cut off.
//! - [`model_turns`]: each session's last model turns, kept for approval requests raised
//!   after a restart.
//! - [`trust`]: each session's trusted text beyond its task (instructions, values confirmed
//!   on approval), reloaded into the live session at start-up.
//! - [`controls`]: the controls in force (posture, frozen tools, refused sessions), each
//!   scoped to the gateway, an agent, a principal or a session, read by the governor and the
//!   model proxy alike.
//!
//! On a fleet (the PostgreSQL store) every instance reads and writes the same tables; what an
//! instance keeps in memory is a cache the store's notices keep current (see
//! [`state_db::notices`]).
//!
//! In the workspace DAG this crate sits on `warden-core`, `warden-charter` (budgets, amounts)
//! and `warden-pdp` (the scope counters answer its `ScopeUsage` queries); it knows nothing of
//! protocols or the ledger.

pub mod capture_quota;
pub mod controls;
pub mod ledger_mark;
pub mod model_turns;
pub mod operators;
pub mod scope_counters;
pub mod sessions;
pub mod state_db;
pub mod token_budgets;
pub mod tokens;
pub mod trust;

pub use capture_quota::{CaptureLimits, CaptureQuota, QuotaExhausted};
pub use controls::{Actor, Applied, Control, ControlAction, ControlScope, Controls};
pub use ledger_mark::LedgerMark;
pub use model_turns::{StoredTurns, TurnStore};
pub use operators::{
    Issued, MAX_OPERATOR_LIST, OperatorCredentials, OperatorIdentity, OperatorRole, OperatorToken,
};
pub use scope_counters::{ScopeCounters, ScopeIncrement};
pub use sessions::{
    ChildError, Link, MAX_TASK_BYTES, MAX_TTL, OpenedSession, Session, SessionInfo, SessionStore,
};
pub use state_db::{Backend, Channel, Notice, Notices, PoolBounds, StateDb, StoreError};
pub use token_budgets::{BudgetExceeded, BudgetRefused, CountedTokens, Reservation, TokenBudgets};
pub use tokens::Plane;
pub use trust::TrustedPiece;
