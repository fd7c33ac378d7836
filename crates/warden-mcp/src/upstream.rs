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
//! kernel confinement ([`crate::sandbox`]). Its stderr is logged, redacted and bounded
//! ([`crate::stderr`]). A Streamable HTTP server's credentials ([`crate::credentials`]) are
//! resolved there too, and a call on behalf of a principal carries that principal's
//! credentials where the charter names them ([`transport`]).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ReadResourceRequestParams,
    ReadResourceResult, Resource, Tool,
};
use rmcp::service::{Peer, RoleClient};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_charter::Transport;
use warden_core::redact::Secrets;

use crate::child_env::ChildEnv;
use crate::credentials::{Choice, HttpCredentials};
use crate::oauth::OAuthTokens;
use crate::sandbox::Plan;
use crate::stderr::{self, StderrTail};
use direct::Direct;

mod direct;
mod prepare;
mod transport;

pub use prepare::{PrepareError, PreparedUpstreams};
pub use transport::MAX_PRINCIPAL_CONNECTIONS;
use transport::{PrincipalPool, connect};

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
    /// The server takes per-principal credentials, the charter names none for this
    /// principal, and it does not fall back to the server-wide ones.
    #[error(
        "server `{server}` has no credentials for principal `{principal}`; the charter names none for it under `credentials.per_principal`"
    )]
    NoCredentials {
        /// The server.
        server: String,
        /// The principal.
        principal: String,
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
    /// The server's credentials (Streamable HTTP servers; empty for the others).
    credentials: HttpCredentials,
    /// The server's OAuth tokens, when it has a client credentials grant.
    oauth: Option<Arc<OAuthTokens>>,
    /// The direct `tools/call` client (Streamable HTTP servers), with the server-wide
    /// credentials.
    direct: Option<Direct>,
    /// The connections of principals with credentials of their own.
    principals: PrincipalPool,
    /// The last stderr lines of its child (stdio servers).
    stderr: Arc<StderrTail>,
    state: RwLock<State>,
    tools: RwLock<Vec<Tool>>,
    resources: RwLock<Vec<Resource>>,
    connected: tokio::sync::Notify,
}

/// Every upstream server: the set changes when a live reload starts a server the new charter
/// adds and stops one it removes ([`Upstreams::add`], [`Upstreams::stop`]).
#[derive(Debug, Default, Clone)]
pub struct Upstreams {
    inner: Arc<Inner>,
}

/// The servers, and what starting one later needs.
#[derive(Debug, Default)]
struct Inner {
    servers: RwLock<HashMap<String, Running>>,
    handshake: Duration,
    /// The tracker every supervisor runs on.
    tasks: TaskTracker,
    /// Stops every server (the last phase of shutdown); each server's own token is a child.
    cancel: CancellationToken,
    /// Redacted from the children's stderr.
    secrets: Secrets,
}

/// A server and the token that stops its supervisor (and its connection) alone.
#[derive(Debug, Clone)]
struct Running {
    upstream: Arc<Upstream>,
    stop: CancellationToken,
}

/// A server that was not connected at the end of the initial wait of [`Upstreams::start`].
#[derive(Debug, Clone)]
pub struct DownServer {
    /// The server.
    pub id: String,
    /// Why it is down (or `still connecting`).
    pub reason: String,
    /// Whether it is still connecting (no attempt has failed yet) rather than down.
    pub connecting: bool,
    /// The last lines its child wrote to stderr, redacted (stdio servers).
    pub stderr: Vec<String>,
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

    /// The peer for a call on behalf of `principal`: the server's own connection, or the
    /// principal's where the server takes per-principal credentials. The server must be up.
    async fn peer_for(
        &self,
        principal: &str,
        handshake: Duration,
    ) -> Result<Peer<RoleClient>, UpstreamError> {
        let shared = self.peer()?;
        match (self.credentials.choice(principal), &self.transport) {
            (Choice::Shared, _) => Ok(shared),
            (Choice::Refused, _) => Err(UpstreamError::NoCredentials {
                server: self.id.clone(),
                principal: principal.to_owned(),
            }),
            (Choice::Principal(headers), Transport::StreamableHttp { url }) => self
                .principals
                .peer(principal, url, headers, self.oauth.as_ref(), handshake)
                .await
                .map_err(|reason| UpstreamError::Unavailable {
                    server: self.id.clone(),
                    reason,
                }),
            (Choice::Principal(_), _) => Ok(shared),
        }
    }

    async fn supervise(
        self: Arc<Self>,
        cancel: CancellationToken,
        handshake: Duration,
        tasks: TaskTracker,
        secrets: Secrets,
    ) {
        let mut failures: u32 = 0;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            self.set(State::Connecting);
            let mut reader = None;
            let sink = |pipe: tokio::process::ChildStderr| {
                reader = Some(tasks.spawn(stderr::relay(
                    self.id.clone(),
                    pipe,
                    secrets.clone(),
                    self.stderr.clone(),
                )));
            };
            let attempt = connect(
                &self.transport,
                &self.env,
                self.sandbox.as_ref(),
                &self.credentials.shared,
                self.oauth.as_ref(),
                sink,
            );
            let connected = tokio::select! {
                c = tokio::time::timeout(handshake, attempt) => {
                    c.unwrap_or_else(|_| Err(format!("the connection did not finish within {handshake:?}")))
                }
                () = cancel.cancelled() => return,
            };
            if connected.is_err()
                && let Some(reader) = reader
            {
                // The child is gone: let its last words reach the log (and the report of
                // `warden up`) before the server is marked down.
                let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
            }
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
                    if let Some(direct) = &self.direct {
                        direct.reset();
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
                            if let Some(direct) = &self.direct {
                                direct.close(Duration::from_secs(1)).await;
                            }
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
    /// Starts a supervisor for every prepared server, and waits up to `initial_wait` for them
    /// to connect (a server that is slower keeps connecting in the background).
    pub async fn start(
        prepared: PreparedUpstreams,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
        initial_wait: Duration,
    ) -> Upstreams {
        let upstreams = Upstreams {
            inner: Arc::new(Inner {
                servers: RwLock::new(HashMap::new()),
                handshake: prepared.handshake_timeout,
                tasks: tasks.clone(),
                cancel: cancel.clone(),
                secrets: prepared.secrets.clone(),
            }),
        };
        upstreams.add(prepared, initial_wait).await;
        upstreams
    }

    /// Starts a supervisor for every prepared server (on the tracker and under the token
    /// [`Upstreams::start`] was given) and waits up to `initial_wait` for them to connect. A
    /// server of the same id already running is stopped first and replaced: its calls in
    /// flight fail cleanly (the connection is closed), and calls after this go to the new one.
    pub async fn add(&self, prepared: PreparedUpstreams, initial_wait: Duration) {
        let mut started = Vec::new();
        for up in prepared.servers {
            let stop = self.inner.cancel.child_token();
            self.inner.tasks.spawn(up.clone().supervise(
                stop.clone(),
                self.inner.handshake,
                self.inner.tasks.clone(),
                self.inner.secrets.clone(),
            ));
            let running = Running {
                upstream: up.clone(),
                stop,
            };
            let replaced = self
                .inner
                .servers
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(up.id.clone(), running);
            if let Some(old) = replaced {
                old.stop.cancel();
                tracing::info!(server = %up.id, "Upstream server restarted with its new definition.");
            }
            started.push(up);
        }
        let deadline = tokio::time::Instant::now() + initial_wait;
        for up in started {
            while matches!(up.state.read().map(|s| s.clone()), Ok(State::Connecting)) {
                let notified = up.connected.notified();
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break;
                }
            }
        }
    }

    /// Stops the server `id` and forgets it: calls after this are refused as to an unknown
    /// server, calls in flight to it fail cleanly (its connection is closed, a stdio child
    /// ends). Whether it was running.
    pub fn stop(&self, id: &str) -> bool {
        let removed = self
            .inner
            .servers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        match removed {
            Some(running) => {
                running.stop.cancel();
                tracing::info!(server = %id, "Upstream server stopped: the charter no longer names it.");
                true
            }
            None => false,
        }
    }

    /// The ids of the servers running (connected or not), sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.servers().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// A snapshot of the servers.
    fn servers(&self) -> HashMap<String, Arc<Upstream>> {
        self.inner
            .servers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, r)| (id.clone(), r.upstream.clone()))
            .collect()
    }

    /// A server by id.
    pub fn get(&self, id: &str) -> Option<Arc<Upstream>> {
        self.inner
            .servers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .map(|r| r.upstream.clone())
    }

    /// The servers that are not connected, by id, with why and their last stderr lines.
    /// Read at the end of [`Upstreams::start`]'s initial wait, a server that is down failed
    /// (at least) its first attempt.
    pub fn down(&self) -> Vec<DownServer> {
        let mut out: Vec<DownServer> = self
            .servers()
            .values()
            .filter_map(|up| {
                let state = up.state.read().map(|s| s.clone());
                let (reason, connecting) = match state {
                    Ok(State::Up(_)) => return None,
                    Ok(State::Connecting) => ("still connecting".to_owned(), true),
                    Ok(State::Down(reason)) => (reason, false),
                    Err(_) => ("lock poisoned".to_owned(), false),
                };
                Some(DownServer {
                    id: up.id.clone(),
                    reason,
                    connecting,
                    stderr: up.stderr.lines(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Every server's tools, as `(server, tool)`.
    pub fn tools(&self) -> Vec<(String, Tool)> {
        let mut out = Vec::new();
        for (id, up) in &self.servers() {
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
        for (id, up) in &self.servers() {
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

    fn upstream(&self, server: &str) -> Result<Arc<Upstream>, UpstreamError> {
        self.get(server)
            .ok_or_else(|| UpstreamError::UnknownServer(server.to_owned()))
    }

    /// Calls a tool on a server on behalf of `principal` (whose credentials it carries, where
    /// the server takes per-principal credentials), with `meta` as the request's `_meta`
    /// (warden's own context for a server that is an agent; `None` for a tool server).
    pub async fn call_tool(
        &self,
        server: &str,
        principal: &str,
        tool: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        meta: Option<serde_json::Map<String, serde_json::Value>>,
        timeout: Duration,
    ) -> Result<CallToolResult, UpstreamError> {
        let up = self.upstream(server)?;
        let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        // Only warden's own context travels as `_meta` (the agent's is never forwarded).
        params.meta = meta.map(|m| rmcp::model::RequestMetaObject(rmcp::model::MetaObject(m)));
        // A Streamable HTTP server that is up, called with its server-wide credentials: one
        // POST from this task ([`direct`]), not a round trip through the connection's worker.
        if let Some(direct) = &up.direct
            && up.is_up()
            && matches!(up.credentials.choice(principal), Choice::Shared)
        {
            match direct.call(server, params, timeout).await {
                Ok(answer) => return answer,
                Err(given_back) => params = given_back,
            }
        }
        let peer = up.peer_for(principal, self.inner.handshake).await?;
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

    /// Reads a resource from a server on behalf of `principal` (as [`Upstreams::call_tool`]).
    pub async fn read_resource(
        &self,
        server: &str,
        principal: &str,
        uri: &str,
        timeout: Duration,
    ) -> Result<ReadResourceResult, UpstreamError> {
        let up = self.upstream(server)?;
        let peer = up.peer_for(principal, self.inner.handshake).await?;
        let fut = peer.read_resource(ReadResourceRequestParams::new(uri.to_owned()));
        settle(server, timeout, tokio::time::timeout(timeout, fut).await)
    }
}

#[cfg(test)]
mod tests;
