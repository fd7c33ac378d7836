//! The overview (skeleton: to be built): active sessions, pending approvals, alerts and
//! controls in force, decisions per minute by verdict, model tokens per agent, the ledger head
//! and the last verification.

use std::sync::Arc;

use axum::Router;

use crate::ConsoleState;

/// Decisions per minute by verdict and model tokens per agent, fed from the ledger; bounded.
#[derive(Debug, Default)]
pub struct Activity {}

/// The last ledger verification run from the console.
#[derive(Debug, Default)]
pub struct LastVerify {}

/// Follows the ledger's committed head into `state.activity` until the gateway stops
/// (skeleton: waits for the stop).
pub(crate) async fn follow(state: Arc<ConsoleState>) {
    state.stop.cancelled().await;
}

/// The view's routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
}
