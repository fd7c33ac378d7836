//! The operator plane: the routes people and their tools use to run warden — sessions,
//! operator credentials, approvals, the signed approval-link pages, the control API the
//! observer and operators intervene through, and the agent inventory ([`agents`]).
//!
//! What it guarantees: every route but `/healthz` and the signed links needs an operator
//! token (`Authorization: Bearer wo_…`); an agent's session token is refused on every route
//! (and recorded when it was aimed at the approval channel); an approver's credential reaches
//! the approvals and nothing else; a signed link decides only what its signature covers, only
//! before it expires, and never on a `GET`. Every refusal is an [`ApiError`] (one JSON shape:
//! a stable code and a sentence), except to a browser posting a link page's form, which gets
//! a page. What the plane changes (sessions opened and revoked, credentials issued, approvals
//! decided or refused) is recorded through the [`Recorder`].
//!
//! Where it sits: above `warden-core`, `warden-charter`, `warden-session` and
//! `warden-approval`; below `warden-gateway`, which builds an [`OperatorState`] at start-up,
//! serves [`router`] on the operator listener and mounts [`agent_plane_refusals`] on the
//! agent plane.

pub mod agents;
mod approvals;
mod auth;
pub mod controls;
mod credentials;
mod error;
mod feed;
pub mod instances;
mod ledger_stream;
mod links;
mod sessions;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::json;
use warden_approval::Approvals;
use warden_charter::CharterCell;
use warden_core::{Clock, Recorder};
use warden_session::{OperatorCredentials, SessionStore};

pub use auth::{authenticate, record_offline_issue};
pub use error::{ApiError, BodyBytes, JsonBody};
pub use feed::{FeedFuture, FeedRecord, LedgerFeed};
pub use ledger_stream::{
    KEEP_ALIVE, MAX_BATCH, MAX_STREAMS, MetricsSource, Observability, POLL_HEAD,
};
pub use sessions::MAX_INSTRUCTION_BYTES;

/// The largest body a signed-link `POST` may carry (a form with a reason).
pub const MAX_LINK_BODY_BYTES: usize = 16 * 1024;

/// What the operator plane's handlers use.
#[derive(Debug)]
pub struct OperatorState {
    /// Agent sessions: opened, listed and revoked here; agent tokens are recognised (and
    /// refused) by them.
    pub sessions: SessionStore,
    /// Operator credentials: authenticated and issued here.
    pub operators: OperatorCredentials,
    /// The approval workflow: listed, shown, decided and refused here.
    pub approvals: Arc<Approvals>,
    /// The charter in force (shared with the rest of the gateway, swapped by a reload): its
    /// agent, principals and hash. A handler loads it once.
    pub charter: Arc<CharterCell>,
    /// Where sessions opened and revoked and credentials issued are recorded.
    pub recorder: Arc<dyn Recorder>,
    /// The controls in force, and their one write path (shared with the dead man's switch).
    pub controls: Arc<controls::ControlDesk>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// The largest body an authenticated request may carry, in bytes.
    pub max_body_bytes: usize,
    /// The ledger stream and the metrics (the observer's read surfaces).
    pub observability: Observability,
    /// When each agent's charter in force was put in force (set by the gateway; read by the
    /// agent inventory).
    pub loaded_at: agents::LoadedAt,
}

/// The operator plane's routes, with their layers.
pub fn router(state: Arc<OperatorState>) -> Router {
    let protected = Router::new()
        .route(
            "/v1/sessions",
            post(sessions::open_session).get(sessions::list_sessions),
        )
        .route("/v1/sessions/{id}", get(sessions::show_session))
        .route("/v1/sessions/{id}/revoke", post(sessions::revoke_session))
        .route(
            "/v1/sessions/{id}/instructions",
            post(sessions::add_instruction),
        )
        .route(
            "/v1/operator-tokens",
            post(credentials::issue_token).get(credentials::list_tokens),
        )
        .route(
            "/v1/operator-tokens/{id}/revoke",
            post(credentials::revoke_token),
        )
        .route("/v1/controls", post(controls::set).get(controls::list))
        .route("/v1/controls/{id}/lift", post(controls::lift))
        .route("/v1/observer/heartbeat", post(controls::heartbeat))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", get(approvals::show))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/deny", post(approvals::deny))
        .route("/v1/approvals/{id}/reverse", post(approvals::reverse))
        .route("/v1/agents", get(agents::list))
        .route("/v1/agents/{id}", get(agents::show))
        .route("/v1/ledger/stream", get(ledger_stream::stream))
        .route("/v1/instances", get(instances::list))
        .route("/metrics", get(ledger_stream::metrics))
        // The limit the body extractors enforce (over it: `413` in the API's shape). It only
        // sets a limit; bodies are read by the handlers, after authentication.
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        // Outermost: nothing above reaches a handler without an operator token, and an
        // approver's credential reaches only the approvals.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    let links = Router::new()
        .route(
            "/v1/approvals/{id}/link/{action}",
            get(links::link_page).post(links::link_decide),
        )
        // No authentication layer: a signed link carries its own credential (the signature,
        // checked by the handler), and the person holding it has no bearer token. Its body is
        // a form with a reason, so its limit is small.
        .layer(DefaultBodyLimit::max(MAX_LINK_BODY_BYTES));
    Router::new()
        // Outside authentication: a liveness probe has no credential.
        .route("/healthz", get(healthz))
        .merge(links)
        .merge(protected)
        // Anything else: a 404 in the API's shape (an unknown path needs no credential to
        // learn that it is unknown; it reaches no handler).
        .fallback(|| async {
            ApiError::new(
                http::StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint on the operator plane",
            )
        })
        .with_state(state)
}

/// The agent plane's answer on `/v1/approvals` and `/v1/approvals/{*rest}`: `403
/// agent_credential`, and the attempt recorded — an agent never reaches the approval channel.
///
/// Mount it behind the agent plane's authentication: the handler reads the authenticated
/// session (an `Arc<warden_session::Session>` request extension) to record whose attempt it
/// was.
pub fn agent_plane_refusals<S>(approvals: Arc<Approvals>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/v1/approvals", any(approvals::agent_refused))
        .route("/v1/approvals/{*rest}", any(approvals::agent_refused))
        .with_state(approvals)
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

#[cfg(test)]
mod tests;
