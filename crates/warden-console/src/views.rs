//! The console's views: each a module with its routes, handlers and page templates.

pub mod agents;
pub mod approvals;
pub mod charter;
pub mod controls;
pub mod overview;
pub mod search;
pub mod timeline;

use std::sync::Arc;

use axum::Router;

use crate::ConsoleState;

/// Every view's routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .merge(overview::routes())
        .merge(timeline::routes())
        .merge(approvals::routes())
        .merge(controls::routes())
        .merge(agents::routes())
        .merge(charter::routes())
        .merge(search::routes())
}
