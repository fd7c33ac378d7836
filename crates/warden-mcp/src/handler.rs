//! The MCP endpoint agents connect to (Streamable HTTP at `/mcp`).
//!
//! Built on `rmcp`'s server, which negotiates the protocol version (2024-11-05 up to
//! 2026-07-28), frames responses and refuses malformed or unknown requests with JSON-RPC
//! errors. What this handler adds:
//!
//! - `tools/list`: the upstream tools, named `server__tool` (a function name model providers
//!   accept: the charter's `server.tool` with `__` for the dot), only those in the charter's
//!   inventory that this session could ever be allowed to call;
//! - `tools/call`: a tool named `server__tool` or, as before, `server.tool`, decided and
//!   recorded under the charter's `server.tool` (with `called_as`, the name the agent sent,
//!   when it differs), through the [`ToolGate`] — a refusal is a tool result with
//!   `isError: true` and the reason, so the model can read it; an upstream failure is a
//!   JSON-RPC error, and its result is recorded;
//! - `resources/list` and `resources/read`: the charter's identity and context as
//!   `warden://charter`, and upstream resources, whose reads are decided as the tool
//!   `server.resources/read` with the argument `uri`;
//! - `prompts/list` answers with no prompts, `completion/complete` with no completions, and
//!   everything else (logging, subscriptions, tasks, custom methods) is refused with
//!   "method not found". Nothing is passed through blindly.

use std::sync::Arc;
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomRequest,
    CustomResult, Implementation, InitializeRequestParams, InitializeResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResultType,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::{Value, json};
use warden_charter::{
    CompiledCharter, RESOURCE_READ_TOOL, agent_tool_name, charter_tool_name, is_function_name,
};
use warden_core::TraceContext;
use warden_core::gate::{ActionOutcome, Allowed};
use warden_core::redact::Secrets;
use warden_session::Session;

use crate::gate::{CallDelegation, CallRefused, DELEGATION_META_KEY, ToolGate};
use crate::outcome::settle_answer;
use crate::upstream::{UpstreamError, Upstreams};

/// The URI of the charter resource.
pub const CHARTER_URI: &str = "warden://charter";

/// The MCP handler for one request (rmcp makes one per request in stateless mode).
pub struct AgentMcp<G> {
    gate: Arc<G>,
    upstreams: Upstreams,
    upstream_timeout: Duration,
    secrets: Secrets,
}

/// Who makes a `tools/call`, and what it carries besides its parameters.
pub(crate) struct CallContext {
    /// The authenticated session.
    pub(crate) session: Arc<Session>,
    /// The call's W3C trace context (its `_meta`, else the HTTP headers).
    pub(crate) trace: Option<TraceContext>,
    /// Cancelled when the client goes away: a wait for approval stops.
    pub(crate) cancel: tokio_util::sync::CancellationToken,
}

impl<G> Clone for AgentMcp<G> {
    fn clone(&self) -> Self {
        Self {
            gate: self.gate.clone(),
            upstreams: self.upstreams.clone(),
            secrets: self.secrets.clone(),
            upstream_timeout: self.upstream_timeout,
        }
    }
}

impl<G: ToolGate> AgentMcp<G> {
    /// A handler that authorizes through `gate` and forwards to `upstreams`, giving each
    /// upstream call up to `upstream_timeout`.
    pub fn new(gate: Arc<G>, upstreams: Upstreams, upstream_timeout: Duration) -> Self {
        Self {
            gate,
            upstreams,
            upstream_timeout,
            secrets: Secrets::default(),
        }
    }

    /// Replaces each of `secrets` by `[REDACTED]` in every upstream answer (and upstream error)
    /// before it is recorded or relayed: a tool server that echoes a credential it was given
    /// never hands it to the agent or the ledger.
    #[must_use]
    pub fn redacting(mut self, secrets: Secrets) -> Self {
        self.secrets = secrets;
        self
    }

    /// Records how a forwarded action ended (status, size, the labels its text carries) and
    /// answers: the upstream's result, or a JSON-RPC error for an upstream failure. A result
    /// the ledger cannot record is withheld.
    async fn settle<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        session: &Arc<Session>,
        tool: &str,
        allowed: &Allowed,
        result: Result<T, UpstreamError>,
        status: impl Fn(&T) -> &'static str,
    ) -> Result<T, McpError> {
        let (outcome, answer) = match result {
            Ok(r) => {
                let (outcome, r) = settle_answer(&self.secrets, r, status)?;
                (outcome, Ok(r))
            }
            Err(e) => (
                ActionOutcome {
                    status: "upstream_error",
                    size_bytes: 0,
                    error: Some(self.secrets.redact_str(&e.to_string()).into_owned()),
                    text: String::new(),
                    content: Vec::new(),
                },
                Err(upstream_error(&self.secrets.redact_str(&e.to_string()))),
            ),
        };
        if let Err(e) = self
            .gate
            .record_result(session, tool, allowed, &outcome)
            .await
        {
            tracing::error!(error = %e, "The ledger cannot record a result; it is withheld.");
            return Err(McpError::internal_error(
                "the result could not be recorded in the ledger, so it is withheld",
                None,
            ));
        }
        answer
    }
}

impl<G: ToolGate> AgentMcp<G> {
    /// Decides, records and forwards one `tools/call` of `call.session` (the core of
    /// [`ServerHandler::call_tool`], shared with the lean path, which has no rmcp request
    /// context): the same decision, records and answer whichever path the request took.
    pub(crate) async fn govern_call(
        &self,
        request: CallToolRequestParams,
        call: CallContext,
        progress: &warden_core::gate::ProgressFn,
    ) -> Result<CallToolResponse, McpError> {
        let CallContext {
            session,
            trace,
            cancel,
        } = call;
        let sent = request.name.to_string();
        // `fs__read_text_file` (as listed) and `fs.read_text_file` (the charter's name) are
        // one tool: decided and recorded as the latter, with the name the agent sent.
        let name = charter_tool_name(&sent).into_owned();
        let called_as = (name != sent).then_some(sent.as_str());
        let args = Value::Object(request.arguments.unwrap_or_default());
        // A name no upstream server can take is refused (and recorded) without waiting for a
        // decision that could only ask a human about a call that cannot run.
        let routable = name
            .split_once('.')
            .filter(|(server, _)| self.upstreams.get(server).is_some());
        let Some((server, tool)) = routable else {
            let why = "no upstream server offers this tool; tools are named `server__tool`, as `tools/list` shows them";
            let refused = self
                .gate
                .record_unroutable(&session, &name, called_as, &args, why)
                .await;
            return Err(McpError::invalid_params(
                refused.message,
                Some(json!({ "warden": "unknown_tool" })),
            ));
        };
        let allowed = match self
            .gate
            .authorize(
                &session,
                &name,
                called_as,
                trace.as_ref(),
                args,
                cancel,
                progress,
            )
            .await
        {
            Ok(a) => a,
            Err(refused) => return Ok(refusal_result(refused.message).into()),
        };
        // A server that is an agent: the call is a delegation. The child session is opened
        // now (refused: the call is not forwarded), its context travels as the call's
        // `_meta`, and it ends once the result is recorded (or, dropped, when the call is
        // cancelled). The agent's own `_meta` is never forwarded: no `io.warden/*` key it
        // sent reaches any upstream.
        let delegation = match self.gate.delegate_for_call(&session, server).await {
            Ok(d) => d,
            Err(refused) => {
                return self
                    .delegation_refused(&session, &name, &allowed, refused)
                    .await;
            }
        };
        let meta = delegation.as_ref().map(|d| {
            let mut meta = serde_json::Map::new();
            meta.insert(DELEGATION_META_KEY.to_owned(), d.meta());
            meta
        });
        let arguments = allowed.args.as_object().cloned().unwrap_or_default();
        let result = self
            .upstreams
            .call_tool(
                server,
                &session.principal,
                tool,
                arguments,
                meta,
                self.upstream_timeout,
            )
            .await;
        let settled = self
            .settle(&session, &name, &allowed, result, |r: &CallToolResult| {
                if r.is_error == Some(true) {
                    "tool_error"
                } else {
                    "ok"
                }
            })
            .await;
        if let Some(delegation) = delegation {
            delegation.end().await;
        }
        settled.map(|mut r| {
            // An upstream on an older protocol sends no `resultType`; a client on 2026-07-28
            // rejects a result without it (rmcp strips it again for older clients).
            r.result_type.get_or_insert(ResultType::COMPLETE);
            r.into()
        })
    }

    /// Answers an allowed call whose delegation was refused: the result recorded (status
    /// `delegation_refused`, the sentence as its error) and the refusal returned as a tool
    /// error the model can read, naming the refusal's code.
    async fn delegation_refused(
        &self,
        session: &Arc<Session>,
        tool: &str,
        allowed: &Allowed,
        refused: CallRefused,
    ) -> Result<CallToolResponse, McpError> {
        let message = format!("delegation refused ({}): {}", refused.code, refused.message);
        let outcome = ActionOutcome {
            status: "delegation_refused",
            size_bytes: 0,
            error: Some(message.clone()),
            text: String::new(),
            content: Vec::new(),
        };
        if let Err(e) = self
            .gate
            .record_result(session, tool, allowed, &outcome)
            .await
        {
            tracing::error!(error = %e, "The ledger cannot record a refused delegation's call.");
        }
        let mut result = refusal_result(message);
        let mut meta = serde_json::Map::new();
        meta.insert("io.warden/refusal".to_owned(), json!(refused.code));
        result.meta = Some(rmcp::model::MetaObject(meta));
        Ok(result.into())
    }
}

/// The W3C trace context of a request: from its `_meta` when that holds a valid one (it
/// wins for that call), else from the HTTP request's `traceparent` and `tracestate` headers.
/// Invalid values, a header sent twice, and values that are not strings are ignored.
fn trace_of(ctx: &RequestContext<RoleServer>) -> Option<TraceContext> {
    TraceContext::from_meta(&ctx.meta.0.0).or_else(|| {
        let headers = &ctx.extensions.get::<http::request::Parts>()?.headers;
        TraceContext::from_headers(
            headers.get_all("traceparent").iter().map(|v| v.as_bytes()),
            headers.get_all("tracestate").iter().map(|v| v.as_bytes()),
        )
    })
}

/// The instructions of an agent's session: who it is, its boundaries, and that warden decides.
fn instructions(charter: &CompiledCharter) -> String {
    let id = &charter.identity;
    let sentence = |s: &str| s.trim().trim_end_matches('.').to_owned();
    let mut instructions = format!(
        "You are {}: {}. You serve {}.",
        id.name,
        sentence(&id.purpose),
        sentence(&id.serves)
    );
    for b in &id.boundaries {
        instructions.push_str("\nBoundary: ");
        instructions.push_str(b);
    }
    instructions.push_str(
        "\nEvery tool call passes warden's policy; the charter is the resource `warden://charter`.",
    );
    instructions
}

fn session_of(ctx: &RequestContext<RoleServer>) -> Result<Arc<Session>, McpError> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Arc<Session>>())
        .cloned()
        .ok_or_else(|| McpError::internal_error("no authenticated session on this request", None))
}

/// Sends MCP progress notifications for a call waiting for approval, if the client gave a
/// progress token.
fn progress_reporter(
    ctx: &RequestContext<RoleServer>,
) -> impl Fn(f64, f64, String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
+ Send
+ Sync
+ 'static {
    let token = ctx.meta.get_progress_token();
    let peer = ctx.peer.clone();
    move |waited: f64, total: f64, message: String| {
        let peer = peer.clone();
        let token = token.clone();
        Box::pin(async move {
            if let Some(token) = token {
                let param = ProgressNotificationParam::new(token, waited)
                    .with_total(total)
                    .with_message(message);
                if let Err(e) = peer.notify_progress(param).await {
                    tracing::debug!(error = %e, "A progress notification could not be sent.");
                }
            }
        })
    }
}

fn refusal_result(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn upstream_error(e: &str) -> McpError {
    McpError::internal_error(
        format!("upstream error: {e}"),
        Some(json!({ "warden": "upstream_error" })),
    )
}

/// MCP methods rmcp knows, whose params did not parse: these are invalid params, not unknown
/// methods.
const KNOWN_METHODS: [&str; 12] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "resources/subscribe",
];

impl<G: ToolGate> ServerHandler for AgentMcp<G> {
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        if KNOWN_METHODS.contains(&request.method.as_str()) {
            Err(McpError::invalid_params(
                format!("invalid params for `{}`", request.method),
                None,
            ))
        } else {
            Err(McpError::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                format!("method `{}` is not supported by warden", request.method),
                None,
            ))
        }
    }

    fn get_info(&self) -> ServerConfig {
        // The instructions name the session's agent: added by `initialize`, which knows it.
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("warden", env!("CARGO_PKG_VERSION")))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        let charter = session_of(&context)
            .ok()
            .and_then(|s| self.gate.charter(&s.agent));
        if let Some(charter) = charter {
            result.instructions = Some(instructions(&charter));
        }
        Ok(result)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let session = session_of(&ctx)?;
        let Some(charter) = self.gate.charter(&session.agent) else {
            return Ok(ListToolsResult::with_all_items(Vec::new()));
        };
        let principal = charter.authority.principal(&session.principal);
        let tools: Vec<Tool> = self
            .upstreams
            .tools()
            .into_iter()
            .filter_map(|(server, mut tool)| {
                let name = format!("{server}.{}", tool.name);
                let agent_name = agent_tool_name(&server, &tool.name);
                // The compiler made every inventoried tool's agent name a valid function
                // name; checked again, as a name a provider refuses breaks the agent's turn.
                (charter.is_inventoried(&name)
                    && is_function_name(&agent_name)
                    && self.gate.could_ever_allow(&charter, &name, principal))
                .then(|| {
                    tool.name = agent_name.into();
                    tool
                })
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let session = session_of(&ctx)?;
        // While the call waits for approval: progress notifications (when the client asked
        // for them with a progress token), and a stop when the client goes away, so a grant
        // is never used for a call nobody will receive.
        let progress = progress_reporter(&ctx);
        let call = CallContext {
            session,
            trace: trace_of(&ctx),
            cancel: ctx.ct.clone(),
        };
        self.govern_call(request, call, &progress).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let session = session_of(&ctx)?;
        let Some(charter) = self.gate.charter(&session.agent) else {
            return Ok(ListResourcesResult::with_all_items(Vec::new()));
        };
        let principal = charter.authority.principal(&session.principal);
        let mut resources = vec![Resource::new(CHARTER_URI, "charter")];
        resources.extend(
            self.upstreams
                .resources()
                .into_iter()
                .filter(|(server, _)| {
                    self.gate.could_ever_allow(
                        &charter,
                        &format!("{server}.{RESOURCE_READ_TOOL}"),
                        principal,
                    )
                })
                .map(|(_, r)| r),
        );
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let session = session_of(&ctx)?;
        if request.uri == CHARTER_URI {
            let Some(charter) = self.gate.charter(&session.agent) else {
                return Err(McpError::resource_not_found(
                    "the session's agent has no charter in force",
                    None,
                ));
            };
            let doc = json!({
                "identity": charter.identity,
                "context": charter.context,
                "charter": charter.hash,
                "session": { "id": session.id, "principal": session.principal, "task": session.task },
            });
            let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            return Ok(
                ReadResourceResult::new(vec![ResourceContents::text(text, CHARTER_URI)]).into(),
            );
        }
        let Some(server) = self.upstreams.server_for_resource(&request.uri) else {
            return Err(McpError::resource_not_found(
                format!("no server offers `{}`", request.uri),
                None,
            ));
        };
        let tool = format!("{server}.resources/read");
        let args = json!({ "uri": request.uri });
        let progress = progress_reporter(&ctx);
        let allowed = match self
            .gate
            .authorize(
                &session,
                &tool,
                None,
                trace_of(&ctx).as_ref(),
                args,
                ctx.ct.clone(),
                &progress,
            )
            .await
        {
            Ok(a) => a,
            Err(refused) => {
                return Err(McpError::invalid_request(
                    refused.message,
                    Some(json!({ "warden": refused.reason.as_str() })),
                ));
            }
        };
        // Forward exactly what was decided: the gate may have resolved a `file:` URI (and
        // refuses one that no longer resolves the same way just before it returns).
        let uri = allowed
            .args
            .get("uri")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let result = match uri {
            Some(uri) => {
                self.upstreams
                    .read_resource(&server, &session.principal, &uri, self.upstream_timeout)
                    .await
            }
            None => Err(UpstreamError::Unavailable {
                server: server.clone(),
                reason: "the decided arguments hold no `uri`".to_owned(),
            }),
        };
        self.settle(
            &session,
            &tool,
            &allowed,
            result,
            |_: &ReadResourceResult| "ok",
        )
        .await
        .map(|mut r| {
            // As for a tool's result: `resultType` for clients on 2026-07-28.
            r.result_type.get_or_insert(ResultType::COMPLETE);
            r.into()
        })
    }
}
