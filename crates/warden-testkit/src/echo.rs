//! The echo MCP server: the tool `echo`, that returns its `text` argument, and the tool
//! `shout`, that returns it in capitals (the test charters leave `shout` out of their
//! inventory: a tool an upstream offers that the charter does not name). Stateless Streamable
//! HTTP with JSON responses, so it adds as little as an MCP server can.
//!
//! [`spawn_authenticated`] starts one that requires `Authorization: Bearer <token>` with a
//! token of its [`AuthLog`] (else it answers 401), records the token of every tool call, and
//! offers a third tool, `whoami`, that returns the `Authorization` header it was called with.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::response::IntoResponse as _;
use rmcp::ErrorData as McpError;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

/// The echo handler; counts the calls it served.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    calls: Arc<AtomicU64>,
    auth: Option<Arc<AuthLog>>,
}

/// The tokens an authenticating echo server accepts, and the `Authorization` header of each
/// tool call it served.
#[derive(Debug, Default)]
pub struct AuthLog {
    accepted: Mutex<HashSet<String>>,
    calls: Mutex<Vec<String>>,
    refused: AtomicU64,
}

impl AuthLog {
    /// Accepts `token` from now on.
    pub fn accept(&self, token: &str) {
        if let Ok(mut accepted) = self.accepted.lock() {
            accepted.insert(token.to_owned());
        }
    }

    /// The `Authorization` header of every tool call served, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Requests refused for a missing or unknown token.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    fn accepts(&self, header: Option<&str>) -> bool {
        let token = header.and_then(|h| h.strip_prefix("Bearer "));
        token.is_some_and(|t| self.accepted.lock().is_ok_and(|a| a.contains(t)))
    }
}

fn text_tool(name: &'static str, description: &'static str) -> Tool {
    let schema = serde_json::json!({
        "type": "object",
        "properties": { "text": { "type": "string" } },
        "required": ["text"]
    });
    let schema = match schema {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    Tool::new(name, description, Arc::new(schema))
}

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = vec![
            text_tool("echo", "Returns its `text` argument."),
            text_tool("shout", "Returns its `text` argument in capitals."),
        ];
        if self.auth.is_some() {
            tools.push(text_tool(
                "whoami",
                "Returns the `Authorization` header of the call.",
            ));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let authorization = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.headers.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if let Some(log) = &self.auth
            && let Ok(mut calls) = log.calls.lock()
        {
            calls.push(authorization.clone());
        }
        let shout = match &*request.name {
            "echo" => false,
            "shout" => true,
            "whoami" if self.auth.is_some() => {
                return Ok(CallToolResult::success(vec![ContentBlock::text(authorization)]).into());
            }
            other => {
                return Err(McpError::invalid_params(format!("no tool `{other}`"), None));
            }
        };
        let text = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("text"))
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned();
        let text = if shout { text.to_uppercase() } else { text };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

/// An axum router serving the echo server at `/mcp`.
pub fn router() -> axum::Router {
    router_counting(Arc::default())
}

/// The same, counting every `tools/call` it receives in `calls`.
pub fn router_counting(calls: Arc<AtomicU64>) -> axum::Router {
    router_with(calls, None)
}

fn router_with(calls: Arc<AtomicU64>, auth: Option<Arc<AuthLog>>) -> axum::Router {
    let auth_for_handler = auth.clone();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    let service = StreamableHttpService::new(
        move || {
            Ok(Echo {
                calls: calls.clone(),
                auth: auth_for_handler.clone(),
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    match auth {
        None => router,
        Some(log) => router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let log = log.clone();
                async move {
                    let header = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok());
                    if log.accepts(header) {
                        next.run(req).await
                    } else {
                        log.refused.fetch_add(1, Ordering::SeqCst);
                        axum::http::StatusCode::UNAUTHORIZED.into_response()
                    }
                }
            },
        )),
    }
}

/// Serves the echo server on an ephemeral loopback port; returns its `/mcp` URL and the call
/// counter. The server runs until the runtime stops.
pub async fn spawn() -> std::io::Result<(String, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let calls = Arc::new(AtomicU64::new(0));
    let app = router_counting(calls.clone());
    #[expect(
        clippy::disallowed_methods,
        reason = "a test peer: it serves until the test's runtime stops, with no shutdown to drain it"
    )]
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/mcp"), calls))
}

/// Serves an echo server that requires a bearer token `log` accepts (see the module's
/// documentation) on an ephemeral loopback port; returns its `/mcp` URL and the call counter.
pub async fn spawn_authenticated(log: Arc<AuthLog>) -> std::io::Result<(String, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let calls = Arc::new(AtomicU64::new(0));
    let app = router_with(calls.clone(), Some(log));
    #[expect(
        clippy::disallowed_methods,
        reason = "a test peer: it serves until the test's runtime stops, with no shutdown to drain it"
    )]
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/mcp"), calls))
}

/// Calls made so far.
pub fn count(calls: &AtomicU64) -> u64 {
    calls.load(Ordering::SeqCst)
}
