//! Live reload of the charter: a new charter put in force while the gateway runs.
//!
//! The whole reload (the operator API, `warden charter reload`, `SIGHUP`) is built on
//! [`put_in_force`]: compile first (an error leaves the old charter in force and is recorded
//! as `charter_refused`), record `charter_loaded` durably (a reload the ledger cannot record is
//! refused: no unrecorded charter change), then put it in force, then re-decide the approvals
//! raised under the old one, then start and stop upstream servers for inventory changes; all
//! under one reload lock, so two reloads never interleave.

use std::sync::Arc;

use warden_charter::CompiledCharter;

use crate::app_state::AppState;
use crate::governor::Redecided;

/// Puts `next` in force everywhere at once — the governor (with what it derives) and the
/// shared cell the model proxy, the approvals, the operator plane and the console read —
/// then re-decides every pending approval and unused grant raised under the charter it
/// replaced. Returns that charter and what the re-decision did.
///
/// What it guarantees: every decision that starts after it returns is taken under `next`;
/// one already under way finishes under the charter it loaded. Call it with the reload lock
/// held, after `charter_loaded` is durable.
pub async fn put_in_force(
    state: &AppState,
    next: Arc<CompiledCharter>,
) -> (Arc<CompiledCharter>, Vec<Redecided>) {
    state.governor.install(next.clone());
    let previous = state.charter.swap(next);
    let redecided = state.governor.redecide_pending(&previous).await;
    (previous, redecided)
}
