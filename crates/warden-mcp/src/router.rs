//! The `/mcp` route: rmcp's Streamable HTTP service over [`AgentMcp`], behind the JSON-RPC
//! guard.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use warden_core::redact::Secrets;

use crate::gate::ToolGate;
use crate::guard::{BodyLimit, jsonrpc_guard};
use crate::handler::AgentMcp;
use crate::lean::lean_tools_call;
use crate::upstream::Upstreams;

/// Everything the `/mcp` endpoint needs.
pub struct McpEndpoint<G> {
    /// Where every call and resource read is authorized and its outcome recorded.
    pub gate: Arc<G>,
    /// The upstream servers calls are forwarded to.
    pub upstreams: Upstreams,
    /// How long a call to an upstream server may take.
    pub upstream_timeout: Duration,
    /// The largest request body read, in bytes; a larger one is refused with HTTP 413.
    pub max_body_bytes: usize,
    /// The `Host` header values served (protection against DNS rebinding); any other host is
    /// refused.
    pub allowed_hosts: Vec<String>,
    /// Cancelled at shutdown: the service ends its open streams.
    pub shutdown: CancellationToken,
    /// The gateway's secrets, replaced by `[REDACTED]` in every upstream answer before it is
    /// recorded or relayed to the agent.
    pub secrets: Secrets,
}

/// A router serving `/mcp`: stateless Streamable HTTP with JSON answers (no sessions), each
/// POST first read and checked by the JSON-RPC guard; a plain `tools/call` then takes the lean
/// path (`crate::lean`), everything else rmcp's service.
///
/// The router authenticates nothing: the caller wraps it in its authentication layer, which
/// must put the request's `Arc<Session>` in the request extensions. Placed inside that
/// layer, the guard reads only an authenticated body.
pub fn router<G: ToolGate, S: Clone + Send + Sync + 'static>(
    endpoint: McpEndpoint<G>,
) -> Router<S> {
    let McpEndpoint {
        gate,
        upstreams,
        upstream_timeout,
        max_body_bytes,
        allowed_hosts,
        shutdown,
        secrets,
    } = endpoint;
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_cancellation_token(shutdown)
        .with_max_request_body_bytes(max_body_bytes)
        .with_allowed_hosts(allowed_hosts);
    let handler = AgentMcp::new(gate, upstreams, upstream_timeout).redacting(secrets);
    let lean = Arc::new(handler.clone());
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new()
        .nest_service("/mcp", service)
        // Inside the guard: a plain `tools/call` is answered from the guard's parse.
        .layer(middleware::from_fn_with_state(lean, lean_tools_call::<G>))
        .layer(middleware::from_fn_with_state(
            BodyLimit(max_body_bytes),
            jsonrpc_guard,
        ))
}
