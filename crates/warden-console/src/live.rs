//! `GET /ui/live`: the server-sent-event stream that tells a page the ledger's committed head
//! moved (skeleton: the shell part builds it).

use std::sync::Arc;

use axum::Router;

use crate::ConsoleState;

/// The live routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
}
