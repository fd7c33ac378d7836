//! A call to a tool of a server that is an agent of the set: the delegation it needs.
//!
//! The calling session's charter names the server's `agent`; the gate opens a child session
//! for that agent ([`crate::delegation::delegate`], `via: mcp`), which the forwarded call
//! carries as its `_meta` `io.warden/delegation` (the child's token, id, agent and chain), and
//! revokes the child once the call's result is recorded. The child lives no longer than one
//! upstream call may take, so a child whose revocation was lost expires on its own.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::task::TaskTracker;
use warden_audit::{NewRecord, RecordKind};
use warden_mcp::{CallDelegation, CallRefused};
use warden_session::Session;

use crate::app_state::AppState;
use crate::delegation::{Delegate, DelegationVia, delegate};

/// The child session of one call to an agent's tool. Its token is in [`CallDelegation::meta`]
/// only: it is never formatted (no `Debug` of it), logged or recorded. Dropped without
/// [`CallDelegation::end`] (the call was cancelled), it revokes the child all the same, on the
/// gate's task tracker.
pub struct McpDelegation {
    state: Arc<AppState>,
    tasks: TaskTracker,
    child: Arc<Session>,
    meta: Value,
    ended: bool,
}

impl std::fmt::Debug for McpDelegation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpDelegation")
            .field("child", &self.child.id)
            .field("agent", &self.child.agent)
            .finish_non_exhaustive()
    }
}

/// The delegation a call to `server` needs: `None` when the calling session's charter does
/// not declare `server` as an agent (a tool server, or no charter in force: the governor
/// has already refused such a session's calls).
pub(super) async fn open(
    state: &Arc<AppState>,
    tasks: &TaskTracker,
    session: &Arc<Session>,
    server: &str,
) -> Result<Option<McpDelegation>, CallRefused> {
    let agent = state.governor.charter_for(&session.agent).and_then(|c| {
        c.inventory
            .servers
            .iter()
            .find(|s| s.id == server)
            .and_then(|s| s.agent.clone())
    });
    let Some(agent) = agent else {
        return Ok(None);
    };
    let request = Delegate {
        agent,
        task: None,
        // One call's worth: the upstream call cannot outlive its timeout, and neither should
        // the credential it carries.
        ttl: Some(state.config.upstream_timeout),
    };
    let delegated = delegate(state, session, request, DelegationVia::Mcp)
        .await
        .map_err(|refusal| CallRefused {
            code: refusal.code,
            message: refusal.message,
        })?;
    let child = delegated.session;
    let meta = json!({
        "token": delegated.opened.token,
        "session": child.id,
        "agent": child.agent,
        "chain": child.chain,
    });
    Ok(Some(McpDelegation {
        state: state.clone(),
        tasks: tasks.clone(),
        child,
        meta,
        ended: false,
    }))
}

impl CallDelegation for McpDelegation {
    fn meta(&self) -> Value {
        self.meta.clone()
    }

    async fn end(mut self) {
        self.ended = true;
        revoke(&self.state, &self.child, "call_ended").await;
    }
}

impl Drop for McpDelegation {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let state = self.state.clone();
        let child = self.child.clone();
        self.tasks.spawn(async move {
            revoke(&state, &child, "call_cancelled").await;
        });
    }
}

/// Revokes the child of a finished call and records it (`session_revoked`, `reason`, its
/// `parent`). A revocation the store cannot persist still holds in memory; a revocation the
/// ledger cannot record is logged (the session stays revoked).
async fn revoke(state: &AppState, child: &Session, reason: &str) {
    let now = state.governor.now();
    match state.sessions.revoke(&child.id, now).await {
        Ok(false) => return, // Already revoked (a cascade from its parent, an operator).
        Ok(true) => {}
        Err(e) => {
            tracing::warn!(error = %e, session = %child.id, "A delegated session's revocation could not be persisted; it is revoked in memory.");
        }
    }
    let parent = child.chain.last().map(|l| l.session.clone());
    let record = NewRecord {
        session: Some(child.id.clone()),
        kind: RecordKind::SessionRevoked,
        payload: json!({ "session": child.id, "by": "warden", "reason": reason, "parent": parent }),
    };
    if let Err(e) = state.governor.ledger().append(record).await {
        tracing::error!(error = %e, "The ledger cannot record a delegated session's revocation; the session stays revoked.");
    }
}
