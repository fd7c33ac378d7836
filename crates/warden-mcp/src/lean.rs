//! The lean path of `/mcp`: a plain `tools/call` answered without rmcp's per-request service.
//!
//! In stateless mode rmcp serves every POST by parsing the body again, starting a service for
//! the one request (a task, and another for the handler), and passing the answer back over
//! channels: task hops and allocations that are not the work, paid on every tool call. The
//! JSON-RPC guard has parsed and checked the body already; for a request that is a plain
//! `tools/call`, this layer takes that parse and calls the same core as rmcp's handler
//! ([`AgentMcp::govern_call`]: the same decision, records and forwarding), then writes the
//! JSON-RPC answer rmcp would write.
//!
//! What takes the lean path, everything else going on to rmcp unchanged:
//! - a request (with an integer or string `id`) whose only members are `jsonrpc`, `id`,
//!   `method` and `params`, with `method` `tools/call`;
//! - `params` holding only `name` (a string), `arguments` (an object, or absent) and `_meta`
//!   (absent, or holding only string `traceparent` and `tracestate`): no progress token (its
//!   notifications need rmcp's stream), no per-request protocol version, no task;
//! - an `Accept` header listing both `application/json` and `text/event-stream` with no
//!   parameters, a `Content-Type` of `application/json`, an `MCP-Protocol-Version` header that
//!   is absent or a version rmcp knows older than 2026-07-28 (whose results carry no
//!   `resultType`), and no other `Mcp-*` header than that and `Mcp-Session-Id` (which stateless
//!   rmcp ignores too);
//! - an authenticated session in the request (the agent plane's authentication put it there).
//!
//! What it keeps: the answer is rmcp's own message type, serialized as rmcp serializes it
//! (`200`, `application/json`); the call runs on a task of its own, as rmcp's handler does, so
//! a client that goes away cancels a wait for approval (never a call already forwarded, whose
//! result is still recorded); a handler that panics is answered with a JSON-RPC internal
//! error. The `Host` check is the agent plane's, ahead of every route.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolRequestParams, ProtocolVersion, RequestId, ServerJsonRpcMessage, ServerResult,
};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use warden_core::TraceContext;
use warden_core::gate::ProgressFn;
use warden_session::Session;

use crate::gate::ToolGate;
use crate::guard::{Parsed, jsonrpc_error};
use crate::handler::{AgentMcp, CallContext};

/// The first protocol version whose results carry `resultType` (left to rmcp).
const RESULT_TYPE_FROM: &str = "2026-07-28";

/// Calls answered on the lean path by this process.
static LEAN_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many `tools/call` requests this process answered on the lean path (every endpoint):
/// for diagnostics and for tests that must know which path a call took. Never decreases.
pub fn lean_calls() -> u64 {
    LEAN_CALLS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Answers a plain `tools/call` itself (see the module's documentation); passes every other
/// request on, its body untouched.
pub(crate) async fn lean_tools_call<G: ToolGate>(
    State(handler): State<Arc<AgentMcp<G>>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(Parsed(message)) = req.extensions_mut().remove::<Parsed>() else {
        return next.run(req).await;
    };
    let message = Arc::try_unwrap(message).unwrap_or_else(|shared| (*shared).clone());
    let session = req.extensions().get::<Arc<Session>>().cloned();
    let (Some(session), true) = (session, headers_allow(req.headers())) else {
        return next.run(req).await;
    };
    let Some((id, params, meta)) = plain_call(message) else {
        return next.run(req).await;
    };
    let trace = TraceContext::from_meta(&meta).or_else(|| {
        let headers = req.headers();
        TraceContext::from_headers(
            headers.get_all("traceparent").iter().map(|v| v.as_bytes()),
            headers.get_all("tracestate").iter().map(|v| v.as_bytes()),
        )
    });
    LEAN_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let cancel = CancellationToken::new();
    // Dropped with this future (the client went away): the call's wait for approval stops.
    let on_drop = cancel.clone().drop_guard();
    let call = CallContext {
        session,
        trace,
        cancel,
    };
    // Awaited right here, so the plane's drain at shutdown waits for it with the request; a
    // client that goes away leaves it to finish and record its result, as rmcp's own
    // per-request tasks do.
    #[expect(
        clippy::disallowed_methods,
        reason = "awaited by the request, which the plane's server tracks"
    )]
    let outcome = tokio::spawn(async move {
        let no_progress: &ProgressFn = &|_, _, _| Box::pin(async {});
        handler.govern_call(params, call, no_progress).await
    })
    .await;
    on_drop.disarm();
    let message = match outcome {
        Ok(Ok(response)) => {
            let mut result = ServerResult::from(response);
            result.strip_result_type_for_legacy_peer();
            ServerJsonRpcMessage::response(result, id)
        }
        Ok(Err(error)) => ServerJsonRpcMessage::error(error, Some(id)),
        Err(e) => {
            tracing::error!(error = %e, "A tool call's handler failed.");
            ServerJsonRpcMessage::error(
                McpError::internal_error("the call's handler failed", None),
                Some(id),
            )
        }
    };
    match serde_json::to_vec(&message) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "A tool call's answer could not be serialized.");
            jsonrpc_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                -32603,
                "the answer could not be serialized",
            )
        }
    }
}

/// Whether the headers are ones the lean path answers exactly as rmcp would.
fn headers_allow(headers: &HeaderMap) -> bool {
    let mut json = false;
    let mut sse = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for entry in value.split(',') {
            let essence = entry.trim();
            if essence.contains([';', '"']) {
                return false;
            }
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    let content_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        });
    let version_ok = match headers.get_all("mcp-protocol-version").iter().count() {
        0 => true,
        1 => headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v < RESULT_TYPE_FROM
                    && ProtocolVersion::KNOWN_VERSIONS
                        .iter()
                        .any(|known| known.as_str() == v)
            }),
        _ => false,
    };
    let other_mcp_headers = headers.keys().any(|name| {
        let name = name.as_str();
        name.starts_with("mcp-") && name != "mcp-protocol-version" && name != "mcp-session-id"
    });
    json && sse && content_json && version_ok && !other_mcp_headers
}

/// The id, the parameters and the `_meta` of a plain `tools/call` (see the module's
/// documentation); `None` for anything else.
fn plain_call(message: Value) -> Option<(RequestId, CallToolRequestParams, Map<String, Value>)> {
    let Value::Object(mut message) = message else {
        return None;
    };
    let only = |m: &Map<String, Value>, keys: &[&str]| m.keys().all(|k| keys.contains(&&**k));
    if !only(&message, &["jsonrpc", "id", "method", "params"])
        || message.get("method").and_then(Value::as_str) != Some("tools/call")
    {
        return None;
    }
    let id = match message.remove("id")? {
        Value::String(s) => Value::String(s),
        Value::Number(n) if n.is_i64() => Value::Number(n),
        _ => return None,
    };
    let Value::Object(params) = message.remove("params")? else {
        return None;
    };
    let meta = match params.get("_meta") {
        None => Map::new(),
        Some(Value::Object(meta))
            if only(meta, &["traceparent", "tracestate"])
                && meta.values().all(Value::is_string) =>
        {
            meta.clone()
        }
        Some(_) => return None,
    };
    let arguments_ok = params.get("arguments").is_none_or(Value::is_object);
    if !only(&params, &["name", "arguments", "_meta"])
        || !params.get("name").is_some_and(Value::is_string)
        || !arguments_ok
    {
        return None;
    }
    let id: RequestId = serde_json::from_value(id).ok()?;
    let params: CallToolRequestParams = serde_json::from_value(Value::Object(params)).ok()?;
    Some((id, params, meta))
}

#[cfg(test)]
mod tests;
