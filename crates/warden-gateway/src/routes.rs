//! The agent plane's router: which routes the agent listener serves, and the layers in front
//! of them (authentication, body limits, the JSON-RPC guard), in the order their comments
//! explain. The operator plane's router is [`warden_operator::router`].

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use warden_mcp::{McpEndpoint, jsonrpc_error};
use warden_operator::ApiError;
use warden_session::tokens::{self, Plane};

use crate::app_state::AppState;
use crate::decide_api;

/// Authenticates agent-plane requests: the session token as `Authorization: Bearer` (or
/// `x-api-key`). Operator tokens are refused here.
async fn agent_auth(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    // The model endpoints answer in their provider's error shape; everything else in JSON-RPC.
    let shape = match req.uri().path() {
        "/v1/chat/completions" | "/v1/models" => Some(warden_llm::Protocol::OpenAi),
        "/v1/messages" => Some(warden_llm::Protocol::Anthropic),
        _ => None,
    };
    let jsonrpc_error = |status: StatusCode, code: i64, message: &str| match shape {
        Some(p) => {
            let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "request_too_large"
            } else {
                "invalid_api_key"
            };
            (
                status,
                axum::Json(p.error_body(status.as_u16(), kind, message)),
            )
                .into_response()
        }
        None => jsonrpc_error(status, code, message),
    };
    let headers = req.headers();
    if let Some(len) = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > state.config.max_body_bytes
    {
        return jsonrpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            &format!(
                "request body of {len} bytes is larger than the limit of {} bytes",
                state.config.max_body_bytes
            ),
        );
    }
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .or_else(|| headers.get("x-api-key"))
        .and_then(|v| v.to_str().ok())
        .and_then(tokens::bearer)
        .map(str::to_owned);
    let Some(token) = presented else {
        return jsonrpc_error(
            StatusCode::UNAUTHORIZED,
            -32001,
            "a session token is required (`Authorization: Bearer wa_…`)",
        );
    };
    if tokens::plane_of(&token) == Some(Plane::Operator) {
        return jsonrpc_error(
            StatusCode::FORBIDDEN,
            -32001,
            "operator tokens are refused on the agent plane",
        );
    }
    match state.sessions.authenticate(&token) {
        Some(session) => {
            req.extensions_mut().insert(session);
            next.run(req).await
        }
        None => jsonrpc_error(StatusCode::UNAUTHORIZED, -32001, "invalid session token"),
    }
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

pub(crate) fn agent_router(state: Arc<AppState>, cancel: CancellationToken) -> Router {
    let mcp = warden_mcp::router(McpEndpoint {
        gate: state.governor.clone(),
        upstreams: state.upstreams.clone(),
        upstream_timeout: state.config.upstream_timeout,
        max_body_bytes: state.config.max_body_bytes,
        allowed_hosts: vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            state.config.agent_listen.ip().to_string(),
        ],
        shutdown: cancel,
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
        .route("/v1/actions/{id}/result", post(decide_api::result))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), agent_auth));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint on the agent plane",
            )
        })
        .with_state(state)
}
