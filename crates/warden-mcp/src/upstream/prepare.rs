//! The upstream servers prepared, before anything is spawned or connected: each stdio child's
//! environment and kernel confinement, each Streamable HTTP server's credentials and OAuth
//! grant, resolved by [`Upstreams::prepare`].

use std::ffi::OsString;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use warden_charter::{CompiledCharter, Transport};
use warden_core::redact::Secrets;

use super::direct::{Direct, Wire};
use super::transport::PrincipalPool;
use super::{HANDSHAKE_TIMEOUT, State, Upstream, Upstreams};
use crate::child_env::{self, UnsetVariables};
use crate::credentials::{CredentialError, HttpCredentials};
use crate::http_client::{AuthClient, reqwest_client};
use crate::oauth::OAuthTokens;
use crate::sandbox::{self, Outcome, Plan, SandboxUnavailable, Support};

/// The upstream servers, their stdio children's environments and confinement resolved, not
/// yet started.
#[derive(Debug)]
pub struct PreparedUpstreams {
    pub(super) servers: Vec<Arc<Upstream>>,
    pub(super) handshake_timeout: Duration,
    pub(super) secrets: Secrets,
}

impl PreparedUpstreams {
    /// Uses `timeout` instead of [`HANDSHAKE_TIMEOUT`] for connecting and for listing.
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Redacts `secrets` from the stderr lines of the children (logged and kept).
    #[must_use]
    pub fn redacting(mut self, secrets: Secrets) -> Self {
        self.secrets = secrets;
        self
    }

    /// Keeps only the servers `keep` says to (a live reload starts those the new charter
    /// adds or changes, and leaves the others running).
    #[must_use]
    pub fn only(mut self, keep: impl Fn(&str) -> bool) -> Self {
        self.servers.retain(|s| keep(&s.id));
        self
    }

    /// These servers and `other`'s, for a gateway governing several agents: a server id names
    /// one upstream for the whole gateway, started once. A server both prepare is kept once
    /// when both prepared it alike (transport, environment, kernel confinement); prepared
    /// differently, it is refused ([`PrepareError::Shared`]) rather than started under one
    /// agent's terms for another.
    pub fn merge(mut self, other: PreparedUpstreams) -> Result<Self, PrepareError> {
        for server in other.servers {
            match self.servers.iter().find(|s| s.id == server.id) {
                None => self.servers.push(server),
                Some(kept)
                    if kept.transport == server.transport
                        && kept.env == server.env
                        && kept.sandbox == server.sandbox => {}
                Some(_) => {
                    return Err(PrepareError::Shared {
                        server: server.id.clone(),
                    });
                }
            }
        }
        Ok(self)
    }

    /// The ids of the servers prepared, in charter order.
    pub fn ids(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.id.clone()).collect()
    }

    /// Every credential value of the Streamable HTTP servers, for the gateway's redaction.
    pub fn secret_values(&self) -> Vec<String> {
        self.servers
            .iter()
            .flat_map(|s| s.credentials.secret_values().iter().cloned())
            .collect()
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
    /// A Streamable HTTP server's credentials cannot be resolved.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// Two agents' charters declare one server id, and it comes out differently prepared for
    /// them (command, environment or kernel confinement, which follows each charter's rules).
    #[error(
        "server `{server}` is declared by several agents' charters and prepared differently for them (command, environment, or the kernel confinement their rules give it); give each agent its own server id"
    )]
    Shared {
        /// The server.
        server: String,
    },
    /// An HTTP client for a server's OAuth grant cannot be built.
    #[error("server `{server}`: {reason}")]
    Client {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
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
        let mut envs = child_env::resolve_all(charter, &lookup)?;
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
            let credentials = HttpCredentials::resolve(&s.id, &s.http_auth, &lookup)?;
            let oauth = match &credentials.oauth {
                Some(settings) => Some(Arc::new(OAuthTokens::new(settings.clone()).map_err(
                    |reason| PrepareError::Client {
                        server: s.id.clone(),
                        reason,
                    },
                )?)),
                None => None,
            };
            let direct = match &s.transport {
                Transport::StreamableHttp { url } => {
                    let client_error = |reason| PrepareError::Client {
                        server: s.id.clone(),
                        reason,
                    };
                    // A server behind a proxy named in the environment: no direct client, its
                    // calls take its connection (reqwest honours the proxy).
                    match Wire::new(url, &credentials.shared, oauth.clone())
                        .map_err(client_error)?
                    {
                        Some(wire) => {
                            let client =
                                reqwest_client(&credentials.shared).map_err(client_error)?;
                            Some(Direct::new(
                                wire,
                                AuthClient::new(client, oauth.clone()),
                                url,
                            ))
                        }
                        None => None,
                    }
                }
                _ => None,
            };
            servers.push(Arc::new(Upstream {
                id: s.id.clone(),
                transport: s.transport.clone(),
                env,
                sandbox,
                credentials,
                oauth,
                direct,
                principals: PrincipalPool::default(),
                stderr: Arc::default(),
                state: RwLock::new(State::Connecting),
                tools: RwLock::new(Vec::new()),
                resources: RwLock::new(Vec::new()),
                connected: tokio::sync::Notify::new(),
            }));
        }
        Ok(PreparedUpstreams {
            servers,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            secrets: Secrets::default(),
        })
    }
}
