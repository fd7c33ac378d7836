//! The lean path of `/mcp`: a plain `tools/call` answered without rmcp's per-request service.
//!
//! In stateless mode rmcp serves every POST by parsing the body again, starting a service for
//! the one request (a task, and another for the handler), and passing the answer back over
//! channels: task hops and allocations that are not the work, paid on every tool call. The
//! JSON-RPC guard has read and checked the body already; this layer reads those bytes straight
//! into the parameters of a plain `tools/call` (strictly: see [`PlainRequest`]) and calls the
//! same core as rmcp's handler ([`AgentMcp::govern_call`]: the same decision, records and
//! forwarding), then writes the JSON-RPC answer rmcp would write.
//!
//! What takes the lean path, everything else going on to rmcp unchanged:
//! - a request (with an integer or string `id`) whose only members are `jsonrpc`, `id`,
//!   `method` and `params`, each given once, with `method` `tools/call`;
//! - `params` holding only `name` (a string), `arguments` (an object, `null` or absent) and
//!   `_meta` (absent, or holding only string `traceparent` and `tracestate`), each given once:
//!   no progress token (its
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
use crate::guard::{Checked, jsonrpc_error};
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
    let Some(Checked(body)) = req.extensions_mut().remove::<Checked>() else {
        return next.run(req).await;
    };
    let session = req.extensions().get::<Arc<Session>>().cloned();
    let (Some(session), true) = (session, headers_allow(req.headers())) else {
        return next.run(req).await;
    };
    let Some((id, params, meta)) = plain_call(&body) else {
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

/// A plain `tools/call`, read strictly: an unknown member or one given twice (anywhere but
/// inside `arguments`, which rmcp reads as an object too) fails, and the request goes to rmcp,
/// whose own reading refuses it as it always did. No parser differential: what is decided is
/// what this reading gives, and it is what is forwarded.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainRequest<'a> {
    #[serde(rename = "jsonrpc")]
    _jsonrpc: &'a str,
    id: RequestId,
    #[serde(borrow)]
    method: std::borrow::Cow<'a, str>,
    params: PlainParams,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainParams {
    name: String,
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
    #[serde(rename = "_meta", default)]
    meta: Option<PlainMeta>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainMeta {
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(default)]
    tracestate: Option<String>,
}

/// The id, the parameters and the `_meta` of a plain `tools/call` (see the module's
/// documentation); `None` for anything else.
fn plain_call(body: &[u8]) -> Option<(RequestId, CallToolRequestParams, Map<String, Value>)> {
    let request: PlainRequest<'_> = serde_json::from_slice(body).ok()?;
    if request.method != "tools/call" {
        return None;
    }
    let PlainParams {
        name,
        arguments,
        meta,
    } = request.params;
    let mut meta_map = Map::new();
    if let Some(PlainMeta {
        traceparent,
        tracestate,
    }) = meta
    {
        if let Some(t) = traceparent {
            meta_map.insert("traceparent".to_owned(), Value::String(t));
        }
        if let Some(t) = tracestate {
            meta_map.insert("tracestate".to_owned(), Value::String(t));
        }
    }
    let mut params = CallToolRequestParams::new(name);
    params.arguments = arguments;
    Some((request.id, params, meta_map))
}

#[cfg(test)]
mod tests;
