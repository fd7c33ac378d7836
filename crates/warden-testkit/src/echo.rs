//! The echo MCP server: the tool `echo`, that returns its `text` argument, and the tool
//! `shout`, that returns it in capitals (the test charters leave `shout` out of their
//! inventory: a tool an upstream offers that the charter does not name). Stateless Streamable
//! HTTP with JSON responses, so it adds as little as an MCP server can.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
        Ok(ListToolsResult::with_all_items(vec![
            text_tool("echo", "Returns its `text` argument."),
            text_tool("shout", "Returns its `text` argument in capitals."),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let shout = match &*request.name {
            "echo" => false,
            "shout" => true,
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
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    let service = StreamableHttpService::new(
        move || {
            Ok(Echo {
                calls: calls.clone(),
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    );
    axum::Router::new().nest_service("/mcp", service)
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

/// Calls made so far.
pub fn count(calls: &AtomicU64) -> u64 {
    calls.load(Ordering::SeqCst)
}
