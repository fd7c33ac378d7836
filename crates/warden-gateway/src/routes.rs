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
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use warden_operator::ApiError;
use warden_session::tokens::{self, Plane};

use crate::app_state::AppState;
use crate::decide_api;
use crate::mcp::AgentMcp;
use crate::model_proxy;

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

/// A JSON-RPC error response with no id, for failures before a request is read. The body of
/// the request may be left unread, so the connection is closed (`Connection: close`) rather
/// than reused with unread bytes in it.
fn jsonrpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        [(http::header::CONNECTION, "close")],
        axum::Json(
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } }),
        ),
    )
        .into_response()
}

/// Reads an MCP POST body (bounded) and refuses, in JSON-RPC terms, what is not a JSON-RPC
/// 2.0 message: a parse error is `-32700`, a wrong shape `-32600` (both HTTP 400), a body over
/// the limit `-32600` with HTTP 413 — whether or not it announced its length.
async fn jsonrpc_guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if req.method() != http::Method::POST {
        return next.run(req).await;
    }
    let limit = state.config.max_body_bytes;
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return jsonrpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            &format!("request body is larger than the limit of {limit} bytes"),
        );
    };
    let message: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                -32700,
                &format!("parse error: {e}"),
            );
        }
    };
    let problem = match &message {
        serde_json::Value::Object(m) => {
            let version_ok = m.get("jsonrpc").and_then(serde_json::Value::as_str) == Some("2.0");
            let is_request = m.get("method").is_some_and(serde_json::Value::is_string);
            let is_response =
                m.contains_key("id") && (m.contains_key("result") || m.contains_key("error"));
            if !version_ok {
                Some("`jsonrpc` must be \"2.0\"")
            } else if !is_request && !is_response {
                Some("a request needs a string `method`")
            } else {
                None
            }
        }
        serde_json::Value::Array(_) => Some("JSON-RPC batches are not supported"),
        _ => Some("a JSON-RPC message is an object"),
    };
    if let Some(p) = problem {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            &format!("invalid request: {p}"),
        );
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

pub(crate) fn agent_router(state: Arc<AppState>, cancel: CancellationToken) -> Router {
    let listen_host = state.config.agent_listen.ip().to_string();
    let mcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_cancellation_token(cancel)
        .with_max_request_body_bytes(state.config.max_body_bytes)
        .with_allowed_hosts([
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            listen_host,
        ]);
    let handler_state = state.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(AgentMcp::new(handler_state.clone())),
        Arc::new(NeverSessionManager::default()),
        mcp_config,
    );
    // Layer order: the body limit applies to the JSON extractors; authentication wraps every
    // route but `/healthz`, so nothing reaches the MCP service or the decide API without a
    // valid session token.
    // Inside authentication: only an authenticated body is read and parsed.
    let mcp = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(state.clone(), jsonrpc_guard));
    let protected = Router::new()
        .merge(mcp)
        .route("/v1/decide", post(decide_api::decide))
        .route("/v1/chat/completions", post(model_proxy::chat_completions))
        .route("/v1/messages", post(model_proxy::messages))
        .route("/v1/models", get(model_proxy::models))
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
