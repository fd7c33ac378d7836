//! The approvals view (skeleton: to be built).

use std::sync::Arc;

use axum::Router;

use crate::ConsoleState;

/// The view's routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
}
