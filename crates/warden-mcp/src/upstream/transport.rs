//! Opening a connection to an upstream server: the stdio child (its stderr handed to the
//! caller), or the Streamable HTTP client with the server's credentials; and the connections
//! a server with per-principal credentials opens for each principal.
//!
//! Per-principal connections: one MCP client connection per (server, principal), opened on a
//! principal's first call with its headers and kept for the next, at most
//! [`MAX_PRINCIPAL_CONNECTIONS`] per server (the least recently used is closed to make room).
//! The server's own connection (its server-wide headers) lists its tools and resources.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use rmcp::service::{Peer, RoleClient, RunningService, ServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::process::ChildStderr;
use warden_charter::Transport;

use crate::child_env::ChildEnv;
use crate::http_client::{AuthClient, reqwest_client};
use crate::oauth::OAuthTokens;
use crate::sandbox::{self, Plan};

/// Connections kept per server with per-principal credentials.
pub const MAX_PRINCIPAL_CONNECTIONS: usize = 64;

pub(super) type Running = RunningService<RoleClient, ()>;

/// Connects to the server; a stdio child's stderr goes to `stderr_sink` as soon as the child
/// is spawned (before the MCP initialisation, which a failing server never finishes).
pub(super) async fn connect(
    transport: &Transport,
    env: &ChildEnv,
    sandbox: Option<&Plan>,
    headers: &HeaderMap,
    oauth: Option<&Arc<OAuthTokens>>,
    stderr_sink: impl FnOnce(ChildStderr),
) -> Result<Running, String> {
    match transport {
        Transport::Stdio { command, .. } => {
            let (program, args) = command.split_first().ok_or("empty command")?;
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args).kill_on_drop(true);
            env.apply(&mut cmd);
            let (child, stderr) = sandbox::spawn(cmd, sandbox)
                .await
                .map_err(|e| format!("cannot spawn `{program}`: {e}"))?;
            if let Some(stderr) = stderr {
                stderr_sink(stderr);
            }
            ().serve(child)
                .await
                .map_err(|e| format!("initialisation failed: {e}"))
        }
        Transport::StreamableHttp { url } => http(url, headers, oauth).await,
        Transport::DecideApi => Err("the server has no transport".to_owned()),
    }
}

/// A Streamable HTTP connection to `url` with `headers` (and the OAuth token, if any).
async fn http(
    url: &url::Url,
    headers: &HeaderMap,
    oauth: Option<&Arc<OAuthTokens>>,
) -> Result<Running, String> {
    // rmcp's default client keeps no idle connections (a TCP handshake per call, about a
    // quarter of a millisecond here); pool them, and follow no redirects at all.
    let client = AuthClient::new(reqwest_client(headers)?, oauth.cloned());
    let config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
    let t = StreamableHttpClientTransport::with_client(client, config);
    ().serve(t)
        .await
        .map_err(|e| format!("initialisation failed: {e}"))
}

/// The per-principal connections of one server, least recently used first.
#[derive(Default)]
pub(super) struct PrincipalPool {
    entries: tokio::sync::Mutex<VecDeque<(String, Running)>>,
}

impl std::fmt::Debug for PrincipalPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalPool").finish_non_exhaustive()
    }
}

impl PrincipalPool {
    /// The connection of `principal`: the open one, or a new one with `headers`, connected
    /// within `handshake`.
    pub(super) async fn peer(
        &self,
        principal: &str,
        url: &url::Url,
        headers: &HeaderMap,
        oauth: Option<&Arc<OAuthTokens>>,
        handshake: Duration,
    ) -> Result<Peer<RoleClient>, String> {
        {
            let mut entries = self.entries.lock().await;
            if let Some(at) = entries.iter().position(|(p, _)| p == principal)
                && let Some((p, running)) = entries.remove(at)
                && !running.is_closed()
                && !running.peer().is_transport_closed()
            {
                let peer = running.peer().clone();
                entries.push_back((p, running));
                return Ok(peer);
            }
        }
        let running = tokio::time::timeout(handshake, http(url, headers, oauth))
            .await
            .map_err(|_| format!("the connection did not finish within {handshake:?}"))??;
        let peer = running.peer().clone();
        let mut entries = self.entries.lock().await;
        entries.retain(|(p, _)| p != principal);
        while entries.len() >= MAX_PRINCIPAL_CONNECTIONS {
            entries.pop_front();
        }
        entries.push_back((principal.to_owned(), running));
        Ok(peer)
    }
}
