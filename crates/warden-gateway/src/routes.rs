//! The agent plane's router: which routes the agent listener serves, and the layers in front
//! of them (the Host check, authentication, body limits, the JSON-RPC guard), in the order
//! their comments explain. The operator plane's routes are [`warden_operator::router`]'s;
//! [`operator_app`] puts `/readyz` and the plane's bounds and Host check around them.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use warden_audit::{NewRecord, RecordKind};
use warden_mcp::{McpEndpoint, jsonrpc_error};
use warden_operator::ApiError;
use warden_session::Session;
use warden_session::tokens::{self, Plane};

use crate::app_state::AppState;
use crate::decide_api;

mod audit;
mod charter;

/// The error shape of the route a request is for: the model endpoints answer in their
/// provider's shape, the HTTP API (`/v1/decide`, `/v1/actions/…`, `/v1/approvals`) in its own,
/// and MCP in JSON-RPC.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Provider(warden_llm::Protocol),
    Api,
    JsonRpc,
}

impl Shape {
    fn of(path: &str) -> Shape {
        match path {
            "/v1/chat/completions" | "/v1/models" => Shape::Provider(warden_llm::Protocol::OpenAi),
            "/v1/messages" => Shape::Provider(warden_llm::Protocol::Anthropic),
            p if p.starts_with("/v1/") => Shape::Api,
            _ => Shape::JsonRpc,
        }
    }

    /// A refusal in this shape: `code` is the stable code of the API and provider shapes
    /// (the OpenAI `code`; Anthropic's shape carries only the status's type), `-32001` the
    /// JSON-RPC code of every authentication refusal.
    fn refuse(self, status: StatusCode, code: &'static str, message: &str) -> Response {
        match self {
            Shape::Provider(p) => (
                status,
                axum::Json(p.error_body(status.as_u16(), code, message)),
            )
                .into_response(),
            Shape::Api => ApiError::new(status, code, message).into_response(),
            Shape::JsonRpc => {
                let jsonrpc_code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    -32600
                } else {
                    -32001
                };
                jsonrpc_error(status, jsonrpc_code, message)
            }
        }
    }
}

/// A refusal in the shape of the agent-plane route `path` is for (the model endpoints in their
/// provider's shape, MCP in JSON-RPC, everything else in the HTTP API's).
pub(crate) fn refuse_for(
    path: &str,
    status: StatusCode,
    code: &'static str,
    message: &str,
) -> Response {
    let shape = match Shape::of(path) {
        // `/healthz`, `/readyz` and unknown paths answer in the API's shape, not JSON-RPC.
        Shape::JsonRpc if path != "/mcp" && !path.starts_with("/mcp/") => Shape::Api,
        shape => shape,
    };
    shape.refuse(status, code, message)
}

/// A refusal answered before the request's body was read, with `Connection: close`: the
/// connection is not reused, so a client never sends its next request on a connection the
/// server is closing because of the unread body (it would see "server disconnected" instead of
/// an answer).
fn refused_and_closed(mut refusal: Response) -> Response {
    refusal.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    refusal
}

/// Authenticates agent-plane requests: the session token as `Authorization: Bearer` (or
/// `x-api-key`). Operator tokens are refused here, and so are revoked and expired sessions —
/// on every route, listing tools and models included — with the refusal recorded
/// (`session_refused`, `session_expired`) for the first request of the session and then at most
/// once a minute ([`SessionRefusals`]). The governor checks revocation and expiry again on
/// every action (a session can expire between this check and its decision).
async fn agent_auth(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let shape = Shape::of(req.uri().path());
    let headers = req.headers();
    if let Some(len) = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > state.config.max_body_bytes
    {
        let code = match shape {
            Shape::Api => "invalid_request",
            Shape::Provider(_) | Shape::JsonRpc => "request_too_large",
        };
        return refused_and_closed(shape.refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            code,
            &format!(
                "request body of {len} bytes is larger than the limit of {} bytes",
                state.config.max_body_bytes
            ),
        ));
    }
    let unauthenticated = match shape {
        Shape::Provider(_) => "invalid_api_key",
        Shape::Api | Shape::JsonRpc => "unauthenticated",
    };
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .or_else(|| headers.get("x-api-key"))
        .and_then(|v| v.to_str().ok())
        .and_then(tokens::bearer)
        .map(str::to_owned);
    let Some(token) = presented else {
        return refused_and_closed(shape.refuse(
            StatusCode::UNAUTHORIZED,
            unauthenticated,
            "a session token is required (`Authorization: Bearer wa_…`)",
        ));
    };
    if tokens::plane_of(&token) == Some(Plane::Operator) {
        let code = match shape {
            Shape::Provider(_) => "invalid_api_key",
            Shape::Api | Shape::JsonRpc => "wrong_plane",
        };
        return refused_and_closed(shape.refuse(
            StatusCode::FORBIDDEN,
            code,
            "operator tokens are refused on the agent plane",
        ));
    }
    // On PostgreSQL the session is read current from the shared store (a miss loads it, a
    // hit refreshes it); a store error refuses the request, never lets it through.
    let session = match state.sessions.authenticate_current(&token).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return refused_and_closed(shape.refuse(
                StatusCode::UNAUTHORIZED,
                unauthenticated,
                "invalid session token",
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "Session authentication failed: the state store is unavailable.");
            return refused_and_closed(shape.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the state store is unavailable; try again shortly",
            ));
        }
    };
    let now = state.governor.now();
    let refused = if session.is_revoked() {
        Some((
            "session_revoked",
            "the session was revoked; ask the operator for a new one",
        ))
    } else if session.is_expired(now) {
        Some((
            "session_expired",
            "the session has expired; ask the operator for a new one",
        ))
    } else {
        None
    };
    if let Some((code, message)) = refused {
        let attempted = format!("{} {}", req.method(), req.uri().path());
        record_refusal(&state, &session, code, &attempted, now).await;
        return refused_and_closed(shape.refuse(StatusCode::UNAUTHORIZED, code, message));
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// Records the refusal of a revoked or expired session, unless one was recorded less than
/// [`REFUSAL_RECORD_INTERVAL`](crate::session_refusals::REFUSAL_RECORD_INTERVAL) ago. The
/// refusal is answered whether or not the record could be written (it refuses); a record the
/// ledger could not take is tried again on the next refusal.
async fn record_refusal(
    state: &AppState,
    session: &Session,
    code: &'static str,
    attempted: &str,
    now: time::OffsetDateTime,
) {
    let Some(suppressed) = state.session_refusals.admit(&session.id, now) else {
        return;
    };
    let (kind, payload) = if code == "session_revoked" {
        (
            RecordKind::SessionRefused,
            json!({ "reason": "revoked", "request": attempted, "suppressed": suppressed }),
        )
    } else {
        (
            RecordKind::SessionExpired,
            json!({ "expired_at": session.expires_at.to_string(), "request": attempted, "suppressed": suppressed }),
        )
    };
    let record = NewRecord::new(Some(&session.id), kind, payload);
    if let Err(e) = state.governor.ledger().append(record).await {
        tracing::error!(error = %e, "The ledger cannot record a refused session; the request is refused all the same.");
        state.session_refusals.forget(&session.id);
    }
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

pub(crate) fn agent_router(
    state: Arc<AppState>,
    cancel: CancellationToken,
    readiness: Router,
) -> Router {
    let limits = state.config.limits;
    let hosts = Arc::new(crate::host_check::AllowedHosts::new(
        crate::host_check::PlaneKind::Agent,
        state.config.agent_listen,
        &state.config.deployment.agent.allowed_hosts,
    ));
    // The short routes (health, result reports) answer at once: they are under the request
    // timeout. The MCP endpoint, the decide API and the model endpoints wait for approvals and
    // stream answers, bounded by their own deadlines instead (see `crate::listener`).
    let within = middleware::from_fn(move |req, next| {
        crate::listener::answer_within(limits.request_timeout, req, next)
    });
    let mcp = warden_mcp::router(McpEndpoint {
        gate: Arc::new(crate::mcp_gate::McpGate::new(state.clone())),
        upstreams: state.upstreams.clone(),
        upstream_timeout: state.config.upstream_timeout,
        max_body_bytes: state.config.max_body_bytes,
        // Off here (an empty list): the plane's own Host check (`crate::host_check`, the
        // outermost layer below) has already refused every host the plane does not answer
        // to, on every route; rmcp's check cannot express its `*.` wildcards.
        allowed_hosts: Vec::new(),
        shutdown: cancel,
        secrets: state.models.secrets().clone(),
    });
    // Layer order: the body limit applies to the JSON extractors; authentication wraps every
    // route but `/healthz`, so nothing reaches the MCP service or the decide API without a
    // valid session token.
    // The MCP router's JSON-RPC guard sits inside authentication: only an authenticated body
    // is read and parsed.
    let protected = Router::new()
        .merge(mcp)
        .route("/v1/decide", post(decide_api::decide))
        // The model proxy's endpoints, behind the same body limit and authentication.
        .merge(warden_models::router(state.models.clone()))
        // An agent never reaches the approval channel; the attempt is recorded.
        .merge(warden_operator::agent_plane_refusals(
            state.governor.approvals().clone(),
        ))
        .route(
            "/v1/actions/{id}/result",
            post(decide_api::result).layer(within.clone()),
        )
        // Delegation: the parent's session token opens a child session (bounded body).
        .route(
            "/v1/sessions/delegate",
            post(crate::delegation::delegate_route)
                .layer(DefaultBodyLimit::max(
                    crate::delegation::MAX_DELEGATE_BODY.min(state.config.max_body_bytes),
                ))
                .layer(within.clone()),
        )
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), agent_auth));
    Router::new()
        .route("/healthz", get(healthz).layer(within.clone()))
        .merge(protected)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint on the agent plane",
            )
        })
        .with_state(state)
        // Readiness, like liveness, needs no credential.
        .merge(readiness.layer(within))
        // Outermost but one: the body timeout applies to every route's body, authenticated or not.
        .layer(middleware::from_fn(move |req, next| {
            crate::listener::body_within(limits.body_timeout, req, next)
        }))
        // Outermost of all: a request for a host the plane does not answer to (DNS
        // rebinding) reaches nothing, not even `/healthz`.
        .layer(middleware::from_fn_with_state(
            hosts,
            crate::host_check::check_host,
        ))
}

/// The operator plane: [`warden_operator::router`], the console ([`warden_console::router`]),
/// the audit routes (`/v1/audit/…`, [`audit`]: the signed checkpoint and the proofs, for
/// admins and observers), the charter routes ([`charter`]: admins only) and `/readyz`, with the plane's bounds and Host check.
pub(crate) fn operator_app(
    operator: Arc<warden_operator::OperatorState>,
    state: Arc<AppState>,
    console: Arc<warden_console::ConsoleState>,
    readiness: Arc<crate::readiness::Readiness>,
    config: &crate::config::Config,
) -> Router {
    let limits = config.limits;
    let hosts = Arc::new(crate::host_check::AllowedHosts::new(
        crate::host_check::PlaneKind::Operator,
        config.operator_listen,
        &config.deployment.operator.allowed_hosts,
    ));
    // The operator plane's routes all answer at once: every one is under the request
    // timeout; the body timeout wraps it, so it runs first; the Host check wraps everything
    // (a request for a host the plane does not answer to reaches nothing).
    // The audit routes are the gateway's (they read the ledger), behind the operator
    // crate's own token layer.
    let audit = audit::router(operator.clone(), console.ledger.clone());
    // The charter routes (`/v1/charter`, `/v1/charter/reload`: admins only) reach the
    // gateway's state (a reload swaps the charter and starts and stops servers), behind the
    // same token layer.
    let charter = charter::router(operator.clone(), state);
    warden_operator::router(operator)
        .merge(audit)
        .merge(charter)
        // The console authenticates with its own cookie, not the operator token layer.
        .merge(warden_console::router(console))
        .merge(crate::readiness::router(readiness))
        .layer(middleware::from_fn(move |req, next| {
            crate::listener::answer_within(limits.request_timeout, req, next)
        }))
        .layer(middleware::from_fn(move |req, next| {
            crate::listener::body_within(limits.body_timeout, req, next)
        }))
        .layer(middleware::from_fn_with_state(
            hosts,
            crate::host_check::check_host,
        ))
}
