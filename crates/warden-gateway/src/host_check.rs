//! The `Host` check of both planes (protection against DNS rebinding): a request whose
//! `Host` header (and absolute-form target, if any) names a host the plane does not answer to
//! is refused with `403 host_not_allowed`, before any other layer sees it, on every route.
//!
//! A plane answers to `localhost`, `127.0.0.1`, `::1`, its own listen address (unless that is
//! a wildcard address such as `0.0.0.0`) and the names of its `*_allowed_hosts` setting. The
//! port is not compared. A request with no host at all (HTTP/1.0 without `Host`) is refused
//! too: the check fails closed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The longest host name quoted back in a refusal.
const MAX_QUOTED_HOST: usize = 253;

/// Which plane a check guards (it picks the refusal's shape and the setting it names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlaneKind {
    /// The agent plane: refusals in the route's protocol (MCP, provider, API).
    Agent,
    /// The operator plane: refusals in the operator API's shape.
    Operator,
}

/// The host names one plane answers to.
#[derive(Debug)]
pub(crate) struct AllowedHosts {
    plane: PlaneKind,
    exact: HashSet<String>,
    /// `.example.com` for an entry `*.example.com`.
    suffixes: Vec<String>,
}

impl AllowedHosts {
    /// The loopback names, `listen`'s address unless it is a wildcard one, and `configured`
    /// (entries already normalized by the config).
    pub(crate) fn new(plane: PlaneKind, listen: SocketAddr, configured: &[String]) -> Self {
        let mut exact: HashSet<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !listen.ip().is_unspecified() {
            exact.insert(listen.ip().to_string());
        }
        let mut suffixes = Vec::new();
        for entry in configured {
            match entry.strip_prefix('*') {
                Some(suffix) => suffixes.push(suffix.to_owned()),
                None => {
                    exact.insert(entry.clone());
                }
            }
        }
        AllowedHosts {
            plane,
            exact,
            suffixes,
        }
    }

    /// Whether `host` (a `Host` header value: `name`, `name:port`, `[v6]:port`) is allowed.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        self.exact.contains(&name)
            || self
                .suffixes
                .iter()
                .any(|s| name.len() > s.len() && name.ends_with(s.as_str()))
    }

    fn refuse(&self, path: &str, host: Option<&str>) -> Response {
        let (plane, setting, flag, var) = match self.plane {
            PlaneKind::Agent => (
                "agent",
                "agent_allowed_hosts",
                "--agent-allowed-hosts",
                "WARDEN_AGENT_ALLOWED_HOSTS",
            ),
            PlaneKind::Operator => (
                "operator",
                "operator_allowed_hosts",
                "--operator-allowed-hosts",
                "WARDEN_OPERATOR_ALLOWED_HOSTS",
            ),
        };
        let message = match host {
            Some(h) => {
                let quoted: String = h.chars().take(MAX_QUOTED_HOST).collect();
                format!(
                    "host `{quoted}` is not allowed on the {plane} plane; if this plane is meant to be reached by that name, add it to `{setting}` (`{flag}`, `{var}`)"
                )
            }
            None => format!(
                "the request names no host (`Host` header) and the {plane} plane answers only to the names of `{setting}` and loopback"
            ),
        };
        match self.plane {
            PlaneKind::Agent => {
                crate::routes::refuse_for(path, StatusCode::FORBIDDEN, "host_not_allowed", &message)
            }
            PlaneKind::Operator => {
                warden_operator::ApiError::new(StatusCode::FORBIDDEN, "host_not_allowed", message)
                    .into_response()
            }
        }
    }
}

/// The host part of a `Host` value, lowercase, without brackets or a final dot; `None` if it
/// is not a valid authority.
fn host_name(value: &str) -> Option<String> {
    let authority = http::uri::Authority::try_from(value.trim()).ok()?;
    if authority.as_str().contains('@') {
        // `user@host` is not a `Host` value.
        return None;
    }
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Middleware: refuses a request unless its `Host` header, and its target's authority when
/// the target is in absolute form, are allowed on the plane.
pub(crate) async fn check_host(
    State(allowed): State<Arc<AllowedHosts>>,
    req: Request,
    next: Next,
) -> Response {
    let header = match req.headers().get(http::header::HOST) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s) => Some(s),
            Err(_) => return allowed.refuse(req.uri().path(), Some("(not text)")),
        },
    };
    let target = req.uri().authority().map(http::uri::Authority::as_str);
    let named: Vec<&str> = header.into_iter().chain(target).collect();
    if named.is_empty() {
        return allowed.refuse(req.uri().path(), None);
    }
    if let Some(refused) = named.iter().find(|h| !allowed.allows(h)) {
        tracing::debug!(host = %refused, "A request for a host the plane does not answer to was refused.");
        return allowed.refuse(req.uri().path(), Some(refused));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn hosts(configured: &[&str], listen: &str) -> AllowedHosts {
        let configured: Vec<String> = configured
            .iter()
            .map(|e| crate::config::deployment::normalize_entry(e).unwrap())
            .collect();
        AllowedHosts::new(PlaneKind::Agent, listen.parse().unwrap(), &configured)
    }

    #[test]
    fn loopback_and_the_listen_address_are_always_allowed() {
        let h = hosts(&[], "10.0.0.5:8700");
        for ok in [
            "localhost",
            "localhost:8700",
            "LOCALHOST",
            "127.0.0.1:1",
            "[::1]:8700",
            "10.0.0.5:8700",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "10.0.0.6",
            "0.0.0.0",
            "",
            "localhost.evil.example",
            "a@localhost",
            "local host",
        ] {
            assert!(!h.allows(refused), "{refused}");
        }
        assert!(!hosts(&[], "0.0.0.0:8700").allows("0.0.0.0"));
    }

    #[test]
    fn configured_names_and_wildcards() {
        let h = hosts(
            &["Warden.Example.com", "*.agents.example.com", "[fd00::1]"],
            "127.0.0.1:0",
        );
        for ok in [
            "warden.example.com",
            "warden.example.com.:443",
            "a.agents.example.com",
            "b.c.agents.example.com:8700",
            "[fd00::1]:8700",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for refused in [
            "agents.example.com",
            "xagents.example.com",
            "example.com",
            "warden.example.com.evil",
        ] {
            assert!(!h.allows(refused), "{refused}");
        }
    }
}
