//! Upstream MCP servers, reached with the official Rust SDK (`rmcp`).
//!
//! Each server of the charter's inventory gets a supervisor task: it connects (spawning the
//! stdio child process, or opening the Streamable HTTP client), lists the server's tools and
//! resources, and — when the connection ends (the child crashed, the server went away) —
//! marks the server down and reconnects with exponential backoff, up to 30 s between tries.
//! Calls to a server that is down fail at once with [`UpstreamError::Unavailable`].
//!
//! A stdio child starts with the environment of [`crate::child_env`], never the gateway's
//! own; it is resolved by [`Upstreams::prepare`], before anything is spawned, and so is its
//! kernel confinement ([`crate::sandbox`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ReadResourceRequestParams,
    ReadResourceResult, Resource, Tool,
};
use rmcp::service::{Peer, RoleClient, RunningService, ServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_charter::{CompiledCharter, Transport};

use crate::child_env::{self, ChildEnv, UnsetVariables};
use crate::sandbox::{self, Outcome, Plan, SandboxUnavailable, Support};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long connecting to a server (spawn or connect, and the MCP initialisation) may take,
/// and, separately, listing its tools and resources; past either the attempt fails and is
/// retried with backoff, so a server that never answers does not hold its supervisor.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an upstream call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The server is not in the inventory, or has no transport (decide API only).
    #[error("server `{0}` is not reachable through the gateway")]
    UnknownServer(String),
    /// The server is down (not yet connected, crashed, restarting).
    #[error("server `{server}` is unavailable: {reason}")]
    Unavailable {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// The call took longer than the upstream timeout.
    #[error("server `{server}` did not answer within {seconds}s")]
    Timeout {
        /// The server.
        server: String,
        /// The timeout.
        seconds: u64,
    },
    /// The server answered with an error, or the connection broke during the call.
    #[error("server `{server}` failed: {message}")]
    Failed {
        /// The server.
        server: String,
        /// The error.
        message: String,
    },
}

#[derive(Debug, Clone)]
enum State {
    Connecting,
    Up(Peer<RoleClient>),
    Down(String),
}

/// One upstream server.
#[derive(Debug)]
pub struct Upstream {
    /// Server id.
    pub id: String,
    transport: Transport,
    /// The child's environment (stdio servers; empty for the others).
    env: ChildEnv,
    /// The child's kernel confinement (stdio servers that are confined).
    sandbox: Option<Plan>,
    state: RwLock<State>,
    tools: RwLock<Vec<Tool>>,
    resources: RwLock<Vec<Resource>>,
    connected: tokio::sync::Notify,
}

/// Every upstream server.
#[derive(Debug, Default, Clone)]
pub struct Upstreams {
    servers: Arc<HashMap<String, Arc<Upstream>>>,
}

/// The upstream servers, their stdio children's environments and confinement resolved, not
/// yet started.
#[derive(Debug)]
pub struct PreparedUpstreams {
    servers: Vec<Arc<Upstream>>,
    handshake_timeout: Duration,
}

impl PreparedUpstreams {
    /// Uses `timeout` instead of [`HANDSHAKE_TIMEOUT`] for connecting and for listing.
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}

impl PreparedUpstreams {
    /// The kernel confinement of the server `id`: `None` when it runs unconfined.
    pub fn sandbox(&self, id: &str) -> Option<&Plan> {
        self.servers
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.sandbox.as_ref())
    }
}

/// Why the upstream servers could not be prepared; nothing has been spawned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PrepareError {
    /// A `${NAME}` of a server's `env` is not set.
    #[error(transparent)]
    Env(#[from] UnsetVariables),
    /// A server requires kernel confinement that this kernel cannot give.
    #[error(transparent)]
    Sandbox(#[from] SandboxUnavailable),
}

async fn connect(
    transport: &Transport,
    env: &ChildEnv,
    sandbox: Option<&Plan>,
) -> Result<RunningService<RoleClient, ()>, String> {
    match transport {
        Transport::Stdio { command, .. } => {
            let (program, args) = command.split_first().ok_or("empty command")?;
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args).kill_on_drop(true);
            env.apply(&mut cmd);
            let child = sandbox::spawn(cmd, sandbox)
                .await
                .map_err(|e| format!("cannot spawn `{program}`: {e}"))?;
            ().serve(child)
                .await
                .map_err(|e| format!("initialisation failed: {e}"))
        }
        Transport::StreamableHttp { url } => {
            // rmcp's default client keeps no idle connections (a TCP handshake per call, about
            // a quarter of a millisecond here); pool them, and follow no redirects at all.
            let client = reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(30))
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            let t = StreamableHttpClientTransport::with_client(client, config);
            ().serve(t)
                .await
                .map_err(|e| format!("initialisation failed: {e}"))
        }
        Transport::DecideApi => Err("the server has no transport".to_owned()),
    }
}

impl Upstream {
    fn set(&self, s: State) {
        if let Ok(mut state) = self.state.write() {
            *state = s;
        }
    }

    fn peer(&self) -> Result<Peer<RoleClient>, UpstreamError> {
        let state = self
            .state
            .read()
            .map(|s| s.clone())
            .unwrap_or(State::Down("lock poisoned".into()));
        match state {
            State::Up(peer) => Ok(peer),
            State::Connecting => Err(UpstreamError::Unavailable {
                server: self.id.clone(),
                reason: "still connecting".to_owned(),
            }),
            State::Down(reason) => Err(UpstreamError::Unavailable {
                server: self.id.clone(),
                reason,
            }),
        }
    }

    /// Whether the server is connected.
    pub fn is_up(&self) -> bool {
        matches!(self.state.read().map(|s| s.clone()), Ok(State::Up(_)))
    }

    async fn supervise(self: Arc<Self>, cancel: CancellationToken, handshake: Duration) {
        let mut failures: u32 = 0;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            self.set(State::Connecting);
            let connected = tokio::select! {
                c = tokio::time::timeout(handshake, connect(&self.transport, &self.env, self.sandbox.as_ref())) => {
                    c.unwrap_or_else(|_| Err(format!("the connection did not finish within {handshake:?}")))
                }
                () = cancel.cancelled() => return,
            };
            // Listing is bounded too: a server that never answers it is dropped and retried.
            let listed = match connected {
                Ok(running) => {
                    let peer = running.peer().clone();
                    let list = async {
                        let tools = peer.list_all_tools().await.unwrap_or_default();
                        let resources = peer.list_all_resources().await.unwrap_or_default();
                        (tools, resources)
                    };
                    match tokio::time::timeout(handshake, list).await {
                        Ok(lists) => Ok((running, peer, lists)),
                        Err(_) => Err(format!(
                            "listing its tools and resources did not finish within {handshake:?}"
                        )),
                    }
                }
                Err(reason) => Err(reason),
            };
            match listed {
                Ok((running, peer, (tools, resources))) => {
                    if let Ok(mut t) = self.tools.write() {
                        *t = tools;
                    }
                    if let Ok(mut r) = self.resources.write() {
                        *r = resources;
                    }
                    self.set(State::Up(peer));
                    self.connected.notify_waiters();
                    tracing::info!(server = %self.id, "Upstream server connected.");
                    failures = 0;
                    let token = running.cancellation_token();
                    tokio::select! {
                        _ = running.waiting() => {
                            tracing::warn!(server = %self.id, "Upstream server connection ended; reconnecting.");
                            self.set(State::Down("the connection ended (the server exited or crashed)".to_owned()));
                        }
                        () = cancel.cancelled() => {
                            token.cancel();
                            self.set(State::Down("the gateway is shutting down".to_owned()));
                            return;
                        }
                    }
                }
                Err(reason) => {
                    tracing::warn!(server = %self.id, %reason, "Upstream server could not be reached.");
                    self.set(State::Down(reason));
                    self.connected.notify_waiters();
                    failures = failures.saturating_add(1);
                }
            }
            let backoff = Duration::from_millis(250)
                .saturating_mul(1u32 << failures.min(7))
                .min(MAX_BACKOFF);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = cancel.cancelled() => return,
            }
        }
    }
}

/// Maps a timed upstream request to an [`UpstreamError`].
fn settle<T>(
    server: &str,
    timeout: Duration,
    r: Result<Result<T, rmcp::ServiceError>, tokio::time::error::Elapsed>,
) -> Result<T, UpstreamError> {
    match r {
        Err(_) => Err(UpstreamError::Timeout {
            server: server.to_owned(),
            seconds: timeout.as_secs(),
        }),
        Ok(Err(e)) => Err(UpstreamError::Failed {
            server: server.to_owned(),
            message: e.to_string(),
        }),
        Ok(Ok(v)) => Ok(v),
    }
}

impl Upstreams {
    /// Prepares every server of the charter that has a transport, resolving each stdio
    /// server's environment through `lookup` (the gateway's environment:
    /// `|name| std::env::var_os(name)`) and its kernel confinement on this kernel
    /// ([`sandbox::landlock_support`]). Fails, naming the server and the variable, when a
    /// `${NAME}` of a server's `env` is not set, and naming the server when it requires a
    /// confinement the kernel cannot give: nothing has been spawned then. A server that runs
    /// unconfined although it could be confined (`sandbox: { mode: off }`, or no Landlock) is
    /// logged as a warning.
    pub fn prepare(
        charter: &CompiledCharter,
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<PreparedUpstreams, PrepareError> {
        Self::prepare_with(charter, lookup, &sandbox::landlock_support())
    }

    /// [`Upstreams::prepare`] with the kernel's Landlock support given rather than probed.
    pub fn prepare_with(
        charter: &CompiledCharter,
        lookup: impl Fn(&str) -> Option<OsString>,
        support: &Support,
    ) -> Result<PreparedUpstreams, PrepareError> {
        let mut envs = child_env::resolve_all(charter, lookup)?;
        let mut servers = Vec::new();
        for s in &charter.inventory.servers {
            if s.transport == Transport::DecideApi {
                continue;
            }
            let env = envs.remove(&s.id).unwrap_or_default();
            let sandbox = match sandbox::outcome(charter, s, &env, support)? {
                Outcome::Confined(plan) => {
                    tracing::info!(server = %s.id, write = ?plan.write, "Upstream server confined by the kernel (Landlock).");
                    Some(plan)
                }
                Outcome::Unconfined(warning) => {
                    if let Some(w) = warning {
                        tracing::warn!(server = %s.id, "{w}");
                    }
                    None
                }
            };
            servers.push(Arc::new(Upstream {
                id: s.id.clone(),
                transport: s.transport.clone(),
                env,
                sandbox,
                state: RwLock::new(State::Connecting),
                tools: RwLock::new(Vec::new()),
                resources: RwLock::new(Vec::new()),
                connected: tokio::sync::Notify::new(),
            }));
        }
        Ok(PreparedUpstreams {
            servers,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
    }

    /// Starts a supervisor for every prepared server, and waits up to `initial_wait` for them
    /// to connect (a server that is slower keeps connecting in the background).
    pub async fn start(
        prepared: PreparedUpstreams,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
        initial_wait: Duration,
    ) -> Upstreams {
        let mut servers = HashMap::new();
        for up in prepared.servers {
            tasks.spawn(
                up.clone()
                    .supervise(cancel.clone(), prepared.handshake_timeout),
            );
            servers.insert(up.id.clone(), up);
        }
        let upstreams = Upstreams {
            servers: Arc::new(servers),
        };
        let deadline = tokio::time::Instant::now() + initial_wait;
        for up in upstreams.servers.values() {
            while matches!(up.state.read().map(|s| s.clone()), Ok(State::Connecting)) {
                let notified = up.connected.notified();
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break;
                }
            }
        }
        upstreams
    }

    /// A server by id.
    pub fn get(&self, id: &str) -> Option<&Arc<Upstream>> {
        self.servers.get(id)
    }

    /// Every server's tools, as `(server, tool)`.
    pub fn tools(&self) -> Vec<(String, Tool)> {
        let mut out = Vec::new();
        for (id, up) in self.servers.iter() {
            if let Ok(tools) = up.tools.read() {
                out.extend(tools.iter().map(|t| (id.clone(), t.clone())));
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
        out
    }

    /// Every server's resources, as `(server, resource)`.
    pub fn resources(&self) -> Vec<(String, Resource)> {
        let mut out = Vec::new();
        for (id, up) in self.servers.iter() {
            if let Ok(r) = up.resources.read() {
                out.extend(r.iter().map(|x| (id.clone(), x.clone())));
            }
        }
        out
    }

    /// The server that listed the resource `uri`.
    pub fn server_for_resource(&self, uri: &str) -> Option<String> {
        self.resources()
            .into_iter()
            .find(|(_, r)| r.uri == uri)
            .map(|(s, _)| s)
    }

    fn upstream(&self, server: &str) -> Result<&Arc<Upstream>, UpstreamError> {
        self.servers
            .get(server)
            .ok_or_else(|| UpstreamError::UnknownServer(server.to_owned()))
    }

    /// Calls a tool on a server.
    pub async fn call_tool(
        &self,
        server: &str,
        tool: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        timeout: Duration,
    ) -> Result<CallToolResult, UpstreamError> {
        let up = self.upstream(server)?;
        let peer = up.peer()?;
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        let response = settle(
            server,
            timeout,
            tokio::time::timeout(timeout, peer.call_tool_once(params)).await,
        )?;
        match response {
            CallToolResponse::Complete(result) => Ok(result),
            _ => Err(UpstreamError::Failed {
                server: server.to_owned(),
                message: "the server asked for input or a task, which the gateway does not relay"
                    .to_owned(),
            }),
        }
    }

    /// Reads a resource from a server.
    pub async fn read_resource(
        &self,
        server: &str,
        uri: &str,
        timeout: Duration,
    ) -> Result<ReadResourceResult, UpstreamError> {
        let up = self.upstream(server)?;
        let peer = up.peer()?;
        let fut = peer.read_resource(ReadResourceRequestParams::new(uri.to_owned()));
        settle(server, timeout, tokio::time::timeout(timeout, fut).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10, point 15: a server that never finishes the MCP initialisation is marked down
    /// after the handshake timeout (and retried), instead of "connecting" for ever.
    #[tokio::test]
    async fn issue_10_a_server_that_never_initialises_is_marked_down() {
        let up = Arc::new(Upstream {
            id: "mute".to_owned(),
            transport: Transport::Stdio {
                command: vec!["/bin/sleep".to_owned(), "60".to_owned()],
                env: Vec::new(),
            },
            env: ChildEnv::default(),
            sandbox: None,
            state: RwLock::new(State::Connecting),
            tools: RwLock::new(Vec::new()),
            resources: RwLock::new(Vec::new()),
            connected: tokio::sync::Notify::new(),
        });
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(
            up.clone()
                .supervise(cancel.clone(), Duration::from_millis(200)),
        );
        let down = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Err(UpstreamError::Unavailable { reason, .. }) = up.peer()
                    && reason.contains("did not finish")
                {
                    break reason;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
        assert!(down.is_ok(), "still connecting after the handshake timeout");
    }
}
