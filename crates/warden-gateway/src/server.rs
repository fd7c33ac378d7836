//! Start-up, the two listeners, and shutdown in phases.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_audit::{Ledger, LedgerConfig, NewRecord, RecordKind};
use warden_charter::{CompiledCharter, Diagnostics};
use warden_core::Clock;

use crate::approvals::{Approvals, OnRequest, SWEEP_INTERVAL};
use crate::approvals_api;
use crate::budgets::TokenBudgets;
use crate::config::Config;
use crate::control::Controls;
use crate::decide_api::{self, PendingResults, api_error};
use crate::governor::Governor;
use crate::mcp::AgentMcp;
use crate::model_proxy::{self, ModelProxy};
use crate::model_turns::ModelTurns;
use crate::operator;
use crate::sessions::{OperatorRole, SessionStore};
use crate::tokens::{self, Plane};
use crate::upstream::Upstreams;
use crate::usage::UsageStore;
use crate::webhook::{Notifier, WebhookConfig, WebhookFormat};

/// How long start-up waits for upstream servers to connect before serving anyway.
const UPSTREAM_INITIAL_WAIT: Duration = Duration::from_secs(15);
/// The file the first operator token is written to, in the data directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";
/// The file holding the secret that signs approval links and webhook bodies (created at first
/// start, mode 0600).
pub const APPROVAL_KEY_FILE: &str = "approval.key";

/// Reads the approval signing secret, creating it at first start.
fn approval_signer(data_dir: &Path) -> anyhow::Result<warden_approval::Signer> {
    use base64::Engine as _;
    let path = data_dir.join(APPROVAL_KEY_FILE);
    if !path.exists() {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        write_secret(&path, &text).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .with_context(|| format!("`{}` is not a base64url secret", path.display()))?;
    warden_approval::Signer::new(&key).with_context(|| format!("`{}`", path.display()))
}

/// State shared by every request.
pub struct Shared {
    /// The governor.
    pub governor: Governor,
    /// The upstream servers.
    pub upstreams: Upstreams,
    /// Sessions and operator tokens.
    pub sessions: SessionStore,
    /// The configuration.
    pub config: Config,
    /// Decide-API actions awaiting their result.
    pub pending: PendingResults,
    /// Interventions in force.
    pub controls: Arc<Controls>,
    /// The model proxy.
    pub models: ModelProxy,
}

/// Why the gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The charter does not compile.
    #[error("the charter does not compile")]
    Charter(Diagnostics),
    /// Anything else (data directory, ledger, state store, sockets).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The gateway.
#[derive(Debug)]
pub struct Gateway;

/// A running gateway: its addresses, and the handle to stop it.
pub struct RunningGateway {
    /// The agent plane's bound address.
    pub agent_addr: SocketAddr,
    /// The operator plane's bound address.
    pub operator_addr: SocketAddr,
    /// Shared state (for in-process callers such as `warden up`).
    pub shared: Arc<Shared>,
    /// The first operator token, when this start created it.
    pub bootstrap_operator_token: Option<String>,
    stop: CancellationToken,
    mcp_cancel: CancellationToken,
    servers: TaskTracker,
    background: TaskTracker,
    background_cancel: CancellationToken,
    model_tasks: TaskTracker,
    grace: Duration,
}

impl std::fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGateway")
            .field("agent_addr", &self.agent_addr)
            .field("operator_addr", &self.operator_addr)
            .finish()
    }
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")
}

/// Authenticates agent-plane requests: the session token as `Authorization: Bearer` (or
/// `x-api-key`). Operator tokens are refused here.
async fn agent_auth(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
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
        && len > shared.config.max_body_bytes
    {
        return jsonrpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            &format!(
                "request body of {len} bytes is larger than the limit of {} bytes",
                shared.config.max_body_bytes
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
    match shared.sessions.authenticate(&token) {
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
async fn jsonrpc_guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if req.method() != http::Method::POST {
        return next.run(req).await;
    }
    let limit = shared.config.max_body_bytes;
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

fn agent_router(shared: Arc<Shared>, cancel: CancellationToken) -> Router {
    let listen_host = shared.config.agent_listen.ip().to_string();
    let mcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_cancellation_token(cancel)
        .with_max_request_body_bytes(shared.config.max_body_bytes)
        .with_allowed_hosts([
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            listen_host,
        ]);
    let handler_state = shared.clone();
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
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            jsonrpc_guard,
        ));
    let protected = Router::new()
        .merge(mcp)
        .route("/v1/decide", post(decide_api::decide))
        .route("/v1/chat/completions", post(model_proxy::chat_completions))
        .route("/v1/messages", post(model_proxy::messages))
        .route("/v1/models", get(model_proxy::models))
        // An agent never reaches the approval channel; the attempt is recorded.
        .route(
            "/v1/approvals",
            axum::routing::any(approvals_api::agent_refused),
        )
        .route(
            "/v1/approvals/{*rest}",
            axum::routing::any(approvals_api::agent_refused),
        )
        .route("/v1/actions/{id}/result", post(decide_api::result))
        .layer(DefaultBodyLimit::max(shared.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(shared.clone(), agent_auth));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .fallback(|| async {
            api_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint on the agent plane",
            )
        })
        .with_state(shared)
}

fn operator_router(shared: Arc<Shared>) -> Router {
    let protected = Router::new()
        .route(
            "/v1/sessions",
            post(operator::open_session).get(operator::list_sessions),
        )
        .route("/v1/sessions/{id}/revoke", post(operator::revoke_session))
        .route("/v1/operator-tokens", post(approvals_api::issue_token))
        .route("/v1/approvals", get(approvals_api::list))
        .route("/v1/approvals/{id}", get(approvals_api::show))
        .route("/v1/approvals/{id}/approve", post(approvals_api::approve))
        .route("/v1/approvals/{id}/deny", post(approvals_api::deny))
        .layer(DefaultBodyLimit::max(shared.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            operator::authenticate,
        ));
    // Signed links carry their own credential (the signature); no bearer token.
    let links = Router::new()
        .route(
            "/v1/approvals/{id}/link/{action}",
            get(approvals_api::link_page).post(approvals_api::link_decide),
        )
        .layer(DefaultBodyLimit::max(16 * 1024));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(links)
        .merge(protected)
        .fallback(|| async {
            api_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint on the operator plane",
            )
        })
        .with_state(shared)
}

impl Gateway {
    /// Compiles the charter, opens the stores, connects the upstreams, binds both listeners
    /// and serves. The charter and config are checked before any socket is bound.
    pub async fn start(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<RunningGateway, StartError> {
        let compiled = warden_charter::load(&config.charter).map_err(StartError::Charter)?;
        for w in compiled.warnings.warnings() {
            tracing::warn!(diagnostic = %w, "Charter warning.");
        }
        let charter: Arc<CompiledCharter> = Arc::new(compiled.charter);
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory `{}`",
                config.data_dir.display()
            )
        })?;
        let ledger_config = LedgerConfig {
            max_size_bytes: config.ledger_max_bytes,
            ..LedgerConfig::default()
        };
        let ledger = Ledger::open(&config.data_dir, clock.clone(), ledger_config)
            .await
            .with_context(|| {
                format!("cannot open the ledger in `{}`", config.data_dir.display())
            })?;
        ledger
            .append(NewRecord {
                session: None,
                kind: RecordKind::CharterLoaded,
                payload: json!({
                    "charter": charter.hash,
                    "agent": charter.identity.id,
                    "files": charter.files,
                    "rules": charter.rules.len(),
                }),
            })
            .await
            .context("cannot write to the ledger")?;
        let sessions = SessionStore::open(&config.data_dir)
            .await
            .context("cannot open the state store")?;
        let mut bootstrap_operator_token = None;
        if sessions
            .operator_token_count()
            .await
            .context("state store")?
            == 0
        {
            let token = sessions
                .create_operator_token("bootstrap", OperatorRole::Admin, clock.now())
                .await
                .context("cannot create the first operator token")?;
            let path: PathBuf = config.data_dir.join(OPERATOR_TOKEN_FILE);
            write_secret(&path, &token).with_context(|| {
                format!(
                    "cannot write the first operator token to `{}`",
                    path.display()
                )
            })?;
            tracing::info!(path = %path.display(), "First operator token written (mode 0600).");
            bootstrap_operator_token = Some(token);
        }
        let usage = UsageStore::open(sessions.pool())
            .await
            .context("cannot open the scope counters")?;
        let controls = Arc::new(Controls::default());
        let background = TaskTracker::new();
        let background_cancel = CancellationToken::new();
        let upstreams = Upstreams::start(
            &charter,
            &background,
            &background_cancel,
            UPSTREAM_INITIAL_WAIT,
        )
        .await;
        let stop = CancellationToken::new();
        let approval_store = warden_approval::ApprovalStore::open(sessions.pool(), clock.now())
            .await
            .context("cannot open the approval store")?;
        let signer = approval_signer(&config.data_dir)?;
        let on_request: Option<OnRequest> = match &config.approval_webhook {
            None => None,
            Some(hook) => {
                let format = if hook.slack {
                    WebhookFormat::Slack
                } else {
                    WebhookFormat::Json
                };
                let notifier = Notifier::start(
                    WebhookConfig::new(hook.url.clone(), format, config.public_url.clone()),
                    signer.clone(),
                    ledger.clone(),
                    clock.clone(),
                    &background,
                    stop.clone(),
                )
                .context("approval webhook")?;
                Some(Arc::new(move |req: &warden_approval::ApprovalRequest| {
                    notifier.notify(req);
                }))
            }
        };
        let approvals = Arc::new(Approvals::new(
            approval_store,
            signer,
            charter.clone(),
            ledger.clone(),
            clock.clone(),
            on_request,
            config.approval_progress_interval,
        ));
        // The sweeper times out requests past their deadline; it stops with the listeners.
        let sweeper = approvals.clone();
        let sweeper_stop = stop.clone();
        background.spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(SWEEP_INTERVAL) => { sweeper.sweep().await; }
                    () = sweeper_stop.cancelled() => break,
                }
            }
        });
        let governor = Governor::new(
            charter.clone(),
            ledger.clone(),
            usage,
            sessions.clone(),
            controls.clone(),
            approvals,
            Arc::new(ModelTurns::default()),
            clock,
            stop.clone(),
        );
        let budgets = TokenBudgets::open(sessions.pool(), charter.inventory.token_budgets.clone())
            .await
            .context("cannot open the token budgets")?;
        let model_tasks = TaskTracker::new();
        let models = ModelProxy::new(
            &charter,
            budgets,
            model_tasks.clone(),
            config.provider_keys.as_ref(),
        )
        .context("cannot set up the model proxy")?;
        let shared = Arc::new(Shared {
            governor,
            upstreams,
            sessions,
            config: config.clone(),
            pending: PendingResults::default(),
            controls,
            models,
        });
        let agent_listener = tokio::net::TcpListener::bind(config.agent_listen)
            .await
            .with_context(|| format!("cannot bind the agent plane to {}", config.agent_listen))?;
        let operator_listener = tokio::net::TcpListener::bind(config.operator_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot bind the operator plane to {}",
                    config.operator_listen
                )
            })?;
        let agent_addr = agent_listener.local_addr().context("agent listener")?;
        let operator_addr = operator_listener
            .local_addr()
            .context("operator listener")?;
        let servers = TaskTracker::new();
        // The MCP service gets its own token, cancelled only after the drain: cancelling it first
        // would cut in-flight calls off with a bare 500 instead of their (denied) answers.
        let mcp_cancel = CancellationToken::new();
        let app = agent_router(shared.clone(), mcp_cancel.clone());
        let s = stop.clone();
        servers.spawn(async move {
            // No Nagle: a stream's chunks (and small answers) go out at once instead of
            // waiting for the client's delayed ACK (~40 ms).
            let listener = agent_listener.tap_io(|t| {
                let _ = t.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "The agent plane failed.");
            }
        });
        let app = operator_router(shared.clone());
        let s = stop.clone();
        servers.spawn(async move {
            let listener = operator_listener.tap_io(|t| {
                let _ = t.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "The operator plane failed.");
            }
        });
        servers.close();
        let _ = shared
            .governor
            .ledger()
            .append(NewRecord {
                session: None,
                kind: RecordKind::GatewayStarted,
                payload: json!({ "agent_plane": agent_addr.to_string(), "operator_plane": operator_addr.to_string() }),
            })
            .await;
        tracing::info!(agent = %agent_addr, operator = %operator_addr, "Gateway listening.");
        Ok(RunningGateway {
            agent_addr,
            operator_addr,
            shared,
            bootstrap_operator_token,
            stop,
            mcp_cancel,
            servers,
            background,
            background_cancel,
            model_tasks,
            grace: config.shutdown_grace,
        })
    }
}

impl RunningGateway {
    /// Stops the gateway, in phases:
    /// 1. stop accepting connections, and
    /// 2. answer every call waiting for approval at once (refused for now; its request stays
    ///    open in the state store, decidable after a restart), and stop the sweeper and the
    ///    webhook (the governor's token), so that
    /// 3. in-flight requests drain, within the shutdown grace;
    /// 4. record the stop and flush the ledger;
    /// 5. disconnect the upstream servers and close the stores.
    pub async fn shutdown(self) {
        // Phases 1 and 2: one token stops the listeners and answers the calls waiting for approval.
        self.stop.cancel();
        // Phase 3.
        if tokio::time::timeout(self.grace, self.servers.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_seconds = self.grace.as_secs(),
                "Shutdown grace expired; in-flight requests were cut off."
            );
        }
        self.mcp_cancel.cancel();
        // Model calls still relaying or recording finish before the ledger closes.
        self.model_tasks.close();
        if tokio::time::timeout(self.grace, self.model_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Model calls were still being recorded when the grace expired.");
        }
        // Phase 4.
        let ledger = self.shared.governor.ledger().clone();
        let _ = ledger
            .append(NewRecord {
                session: None,
                kind: RecordKind::GatewayStopped,
                payload: json!({}),
            })
            .await;
        if let Err(e) = ledger.shutdown().await {
            tracing::error!(error = %e, "The ledger did not flush cleanly.");
        }
        // Phase 5.
        self.background_cancel.cancel();
        self.background.close();
        if tokio::time::timeout(Duration::from_secs(5), self.background.wait())
            .await
            .is_err()
        {
            tracing::warn!("Upstream servers did not disconnect within 5s.");
        }
        self.shared.sessions.close().await;
        tracing::info!("Gateway stopped.");
    }

    /// Serves until SIGINT or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!("Signal received; shutting down.");
        self.shutdown().await;
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
