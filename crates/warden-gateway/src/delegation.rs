//! Delegation that only narrows: an agent holding a session opens a child session for another
//! agent of the set. The child acts for the same principal, expires no later than its parent,
//! starts with its parent's labels and provenance, and is decided under its own charter and
//! every ancestor's (the governor's intersection, `crate::governor::delegated`).
//!
//! [`delegate`] is the one way a child is opened: the agent plane's `POST /v1/sessions/delegate`
//! and the MCP gate (an agent exposed as an MCP server) both call it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use warden_audit::{NewRecord, RecordKind};
use warden_session::{ChildError, OpenedSession, Session};

use crate::app_state::AppState;

mod route;
pub use route::MAX_DELEGATE_BODY;
pub(crate) use route::delegate_route;

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
    /// `not_accepted`, `depth`, `fan_out`, `invalid` (see [`code`]), or `ledger_unavailable`
    /// when the child could not be recorded.
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

/// Refusal codes, as recorded in `delegation_refused`.
pub mod code {
    /// The parent is revoked or expired, or has a revoked (or no longer known) ancestor.
    pub const PARENT_INACTIVE: &str = "parent_inactive";
    /// The agent asked for is not an agent of the set.
    pub const UNKNOWN_AGENT: &str = "unknown_agent";
    /// The agent asked for is the parent's own or already on the chain.
    pub const CYCLE: &str = "cycle";
    /// The parent's charter does not name the agent in `delegation.to`.
    pub const NOT_PERMITTED: &str = "not_permitted";
    /// The child's charter does not name the parent's agent in `delegation.from`.
    pub const NOT_ACCEPTED: &str = "not_accepted";
    /// The chain would be longer than a charter along it allows (`max_depth`).
    pub const DEPTH: &str = "depth";
    /// The parent has as many live children as its charter allows (`max_children`).
    pub const FAN_OUT: &str = "fan_out";
    /// The task or the lifetime is not acceptable.
    pub const INVALID: &str = "invalid";
    /// The ledger could not record the child (not recorded as `delegation_refused`: the
    /// ledger is unavailable); the child was revoked.
    pub const LEDGER_UNAVAILABLE: &str = "ledger_unavailable";
}

/// Longest agent id quoted in a refusal (the rest is cut): the id comes from the caller.
const MAX_SHOWN_AGENT: usize = 128;

fn refusal(code: &'static str, message: String) -> DelegationRefusal {
    DelegationRefusal { code, message }
}

/// Opens a child session of `parent` for `request.agent` when every check passes, in this
/// order (the first failing one refuses, recorded as `delegation_refused` with its code):
/// the parent is active and so is every ancestor (`parent_inactive`); the agent is one of the
/// set (`unknown_agent`); it is neither the parent's agent nor on the chain (`cycle`); the
/// parent's charter names it in `delegation.to` (`not_permitted`); its charter names the
/// parent's agent in `delegation.from` (`not_accepted`); the child's depth (the parent's
/// chain length + 1) is within `max_depth` of its charter and of every charter along the
/// chain (`depth`); the parent has fewer live children than its charter's `max_children`
/// (`fan_out`, checked again atomically as the child is stored); the task (at most
/// [`warden_session::MAX_TASK_BYTES`], not empty) and lifetime (more than zero, at most
/// [`warden_session::MAX_TTL`]) are acceptable (`invalid`).
///
/// The child is recorded (`session_delegated`) before this returns; a child the ledger could
/// not record is revoked and refused (`ledger_unavailable`). The token is never recorded.
pub async fn delegate(
    state: &AppState,
    parent: &Arc<Session>,
    request: Delegate,
    via: DelegationVia,
) -> Result<Delegated, DelegationRefusal> {
    let result = open(state, parent, &request, via).await;
    if let Err(refused) = &result
        && refused.code != code::LEDGER_UNAVAILABLE
    {
        record_refusal(state, parent, &request.agent, via, refused).await;
    }
    result
}

async fn open(
    state: &AppState,
    parent: &Arc<Session>,
    request: &Delegate,
    via: DelegationVia,
) -> Result<Delegated, DelegationRefusal> {
    let now = state.governor.now();
    let agent = request.agent.as_str();
    if parent.is_revoked()
        || parent.is_expired(now)
        || state.sessions.ancestor_inactive(parent, now)
    {
        return Err(refusal(
            code::PARENT_INACTIVE,
            "the delegating session (or one of its ancestors) is revoked or expired".to_owned(),
        ));
    }
    let set = state.charter.load();
    let Some(child_charter) = set.get(agent) else {
        return Err(refusal(
            code::UNKNOWN_AGENT,
            format!("`{}` is not an agent of this gateway", shown(agent)),
        ));
    };
    if agent == parent.agent || parent.chain.iter().any(|l| l.agent == agent) {
        return Err(refusal(
            code::CYCLE,
            format!(
                "`{agent}` is already on this session's delegation chain; a delegation cannot come back to an agent"
            ),
        ));
    }
    let Some(parent_charter) = set.get(&parent.agent) else {
        return Err(refusal(
            code::NOT_PERMITTED,
            format!(
                "agent `{}` has no charter in force at this gateway",
                parent.agent
            ),
        ));
    };
    if !parent_charter.delegation.to.iter().any(|a| a == agent) {
        return Err(refusal(
            code::NOT_PERMITTED,
            format!(
                "the charter of `{}` does not permit delegating to `{agent}` (its `delegation.to`)",
                parent.agent
            ),
        ));
    }
    if !child_charter
        .delegation
        .from
        .iter()
        .any(|a| *a == parent.agent)
    {
        return Err(refusal(
            code::NOT_ACCEPTED,
            format!(
                "the charter of `{agent}` does not accept delegations from `{}` (its `delegation.from`)",
                parent.agent
            ),
        ));
    }
    let depth = parent.chain.len().saturating_add(1);
    let along = std::iter::once(agent)
        .chain(std::iter::once(parent.agent.as_str()))
        .chain(parent.chain.iter().map(|l| l.agent.as_str()));
    for a in along {
        // An agent on the chain without a charter in force allows no depth (fail closed).
        let max = set.get(a).map_or(0, |c| {
            usize::try_from(c.delegation.max_depth).unwrap_or(usize::MAX)
        });
        if depth > max {
            return Err(refusal(
                code::DEPTH,
                format!(
                    "the delegation chain would be {depth} long; the charter of `{a}` allows at most {max}"
                ),
            ));
        }
    }
    let max_children = parent_charter.delegation.max_children;
    let live = state.sessions.live_children(&parent.id, now);
    if live >= usize::try_from(max_children).unwrap_or(usize::MAX) {
        return Err(fan_out(&parent.agent, max_children));
    }
    let task = match &request.task {
        None => parent.task.clone(),
        Some(t) if t.trim().is_empty() => {
            return Err(refusal(code::INVALID, "`task` is empty".to_owned()));
        }
        Some(t) if t.len() > warden_session::MAX_TASK_BYTES => {
            return Err(refusal(
                code::INVALID,
                format!(
                    "`task` is longer than {} bytes",
                    warden_session::MAX_TASK_BYTES
                ),
            ));
        }
        Some(t) => t.clone(),
    };
    if let Some(ttl) = request.ttl
        && (ttl.is_zero() || ttl > warden_session::MAX_TTL)
    {
        return Err(refusal(
            code::INVALID,
            "`ttl` must be more than zero and at most 30d".to_owned(),
        ));
    }
    let (opened, child) = match state
        .sessions
        .open_child(parent, agent, &task, request.ttl, now, max_children)
        .await
    {
        Ok(o) => o,
        Err(ChildError::FanOut { .. }) => return Err(fan_out(&parent.agent, max_children)),
        Err(ChildError::ParentInactive) => {
            return Err(refusal(
                code::PARENT_INACTIVE,
                "the delegating session is revoked or expired".to_owned(),
            ));
        }
        Err(ChildError::Store(e)) => {
            tracing::error!(error = %e, "A child session could not be stored; the delegation is refused.");
            return Err(refusal(
                code::INVALID,
                "the child session could not be stored".to_owned(),
            ));
        }
    };
    let record = NewRecord::new(
        Some(&child.id),
        RecordKind::SessionDelegated,
        json!({
            "session": child.id,
            "parent": parent.id,
            "agent": child.agent,
            "by": parent.agent,
            "principal": child.principal,
            "chain": child.chain,
            "depth": child.depth(),
            "via": via.as_str(),
            "expires_at": opened.expires_at,
            "task": child.task,
            "charter": child_charter.hash,
        }),
    );
    if let Err(e) = state.governor.ledger().append(record).await {
        // Fail closed: a child the ledger does not know about must not work.
        tracing::error!(error = %e, "The ledger cannot record a child session; it is revoked.");
        let _ = state.sessions.revoke(&child.id, now).await;
        return Err(refusal(
            code::LEDGER_UNAVAILABLE,
            "the child session could not be recorded".to_owned(),
        ));
    }
    Ok(Delegated {
        opened,
        session: child,
    })
}

fn fan_out(agent: &str, max: u32) -> DelegationRefusal {
    refusal(
        code::FAN_OUT,
        format!(
            "the session already has as many live child sessions as the charter of `{agent}` allows ({max})"
        ),
    )
}

/// The caller's agent id, cut to [`MAX_SHOWN_AGENT`] characters.
fn shown(agent: &str) -> String {
    agent.chars().take(MAX_SHOWN_AGENT).collect()
}

/// Records a refused delegation (a failure is logged: the delegation is refused anyway).
pub(crate) async fn record_refusal(
    state: &AppState,
    parent: &Session,
    agent: &str,
    via: DelegationVia,
    refused: &DelegationRefusal,
) {
    let record = NewRecord::new(
        Some(&parent.id),
        RecordKind::DelegationRefused,
        json!({
            "agent": shown(agent),
            "by": parent.agent,
            "chain": parent.chain_of_child(),
            "via": via.as_str(),
            "refusal": refused.code,
            "reason": refused.message,
        }),
    );
    if let Err(e) = state.governor.ledger().append(record).await {
        tracing::error!(error = %e, "The ledger cannot record a refused delegation; it is refused all the same.");
    }
}
