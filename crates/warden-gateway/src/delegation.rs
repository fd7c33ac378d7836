//! Delegation that only narrows: an agent holding a session opens a child session for another
//! agent of the set. The child acts for the same principal, expires no later than its parent,
//! starts with its parent's labels and provenance, and is decided under its own charter and
//! every ancestor's (the governor's intersection, `crate::governor::delegated`).
//!
//! [`delegate`] is the one way a child is opened: the agent plane's `POST /v1/sessions/delegate`
//! and the MCP gate (an agent exposed as an MCP server) both call it.

use std::sync::Arc;
use std::time::Duration;

use warden_session::{OpenedSession, Session};

use crate::app_state::AppState;

/// What a delegation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegate {
    /// The agent the child session is for (an agent id of the set).
    pub agent: String,
    /// The child's task (`None`: the parent's task).
    pub task: Option<String>,
    /// The child's lifetime (`None`: until the parent expires); never past the parent's expiry.
    pub ttl: Option<Duration>,
}

/// How the delegation was asked for (recorded as `via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegationVia {
    /// The agent plane's `POST /v1/sessions/delegate`.
    Api,
    /// A call to a tool of a server that is an agent of the set.
    Mcp,
}

impl DelegationVia {
    /// The value recorded as `via`.
    pub fn as_str(self) -> &'static str {
        match self {
            DelegationVia::Api => "api",
            DelegationVia::Mcp => "mcp",
        }
    }
}

/// A child session, opened and recorded (`session_delegated` is durable before this is
/// returned).
#[derive(Debug)]
pub struct Delegated {
    /// The child's id, token (shown once) and expiry.
    pub opened: OpenedSession,
    /// The child session.
    pub session: Arc<Session>,
}

/// A refused delegation (recorded as `delegation_refused`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationRefusal {
    /// The stable code: `parent_inactive`, `unknown_agent`, `cycle`, `not_permitted`,
    /// `not_accepted`, `depth`, `fan_out` or `invalid`.
    pub code: &'static str,
    /// A sentence for the caller.
    pub message: String,
}

impl std::fmt::Display for DelegationRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for DelegationRefusal {}

/// Opens a child session of `parent` for `request.agent`, when every check passes. Refuses
/// everything for now (the checks come next).
pub async fn delegate(
    state: &AppState,
    parent: &Arc<Session>,
    request: Delegate,
    via: DelegationVia,
) -> Result<Delegated, DelegationRefusal> {
    let _ = (state, parent, request, via);
    Err(DelegationRefusal {
        code: "invalid",
        message: "delegation is not available yet".to_owned(),
    })
}
