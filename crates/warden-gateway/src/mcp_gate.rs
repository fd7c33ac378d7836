//! The MCP endpoint's [`ToolGate`]: the governor decides and records, what the endpoint lists
//! is what some rule could ever allow, and a call to a tool of a server that is an agent of
//! the set is a delegation ([`McpGate::delegate_for_call`]): a child session for that agent,
//! opened for the one call and revoked once its result is recorded.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_charter::{CompiledCharter, DefaultPosture, Principal};
use warden_core::gate::{ActionOutcome, Allowed, ProgressFn, Refused, Via};
use warden_core::record::RecordError;
use warden_core::{Tier, TraceContext};
use warden_mcp::{CallRefused, ToolGate};
use warden_session::Session;

use crate::app_state::AppState;
use crate::governor::Waiting;

mod delegation;

pub use delegation::McpDelegation;

/// The gate of the agent plane's MCP endpoint: the application state's governor, and the
/// delegation an agent's tool needs (which reaches the sessions and the ledger).
pub struct McpGate {
    state: Arc<AppState>,
    /// Where the revocation of a child whose call was dropped mid-way runs.
    tasks: TaskTracker,
}

impl std::fmt::Debug for McpGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpGate").finish_non_exhaustive()
    }
}

impl McpGate {
    /// The gate over `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self {
            state,
            tasks: TaskTracker::new(),
        }
    }
}

impl ToolGate for McpGate {
    type Delegation = McpDelegation;

    fn charter(&self, agent: &str) -> Option<Arc<CompiledCharter>> {
        self.state.governor.charter_for(agent)
    }

    fn could_ever_allow(
        &self,
        charter: &CompiledCharter,
        tool: &str,
        principal: Option<&Principal>,
    ) -> bool {
        could_ever_allow(charter, tool, principal)
    }

    async fn authorize(
        &self,
        session: &Arc<Session>,
        tool: &str,
        called_as: Option<&str>,
        trace: Option<&TraceContext>,
        args: Value,
        cancel: CancellationToken,
        progress: &ProgressFn,
    ) -> Result<Allowed, Refused> {
        let waiting = Waiting {
            max_wait: None,
            cancel: Some(cancel),
            progress: Some(progress),
            called_as,
            trace,
        };
        self.state
            .governor
            .authorize_waiting(session, tool, args, Via::Mcp, waiting)
            .await
    }

    async fn delegate_for_call(
        &self,
        session: &Arc<Session>,
        server: &str,
    ) -> Result<Option<McpDelegation>, CallRefused> {
        delegation::open(&self.state, &self.tasks, session, server).await
    }

    async fn record_result(
        &self,
        session: &Arc<Session>,
        tool: &str,
        allowed: &Allowed,
        outcome: &ActionOutcome,
    ) -> Result<(), RecordError> {
        // The upstream call ran from the decision to now (its server: the tool's prefix).
        let server = tool.split_once('.').map_or(tool, |(server, _)| server);
        let failed = outcome.status == "upstream_error";
        let governor = &self.state.governor;
        governor
            .telemetry
            .upstream_call(server, allowed.started.elapsed(), failed);
        governor
            .record_result(session, tool, allowed, outcome)
            .await
            .map(drop)
            .map_err(RecordError::from_store)
    }

    fn record_unroutable(
        &self,
        session: &Arc<Session>,
        tool: &str,
        called_as: Option<&str>,
        args: &Value,
        why: &str,
    ) -> impl Future<Output = Refused> + Send {
        // A name no server offers: a refusal, counted under `tool="other"` unless inventoried.
        let agent = &session.agent;
        let tier = Tier::Prohibited.as_str();
        let governor = &self.state.governor;
        governor
            .telemetry
            .decision("deny", tier, "unroutable", tool, agent);
        governor.record_unroutable(session, tool, called_as, args, why)
    }
}

/// Whether `tool` could ever be allowed for `principal`: a tool is hidden when the inventory
/// does not name it (the governor refuses it), when an unconditional prohibited rule covers
/// it, or when no rule could allow it and unmatched actions are denied.
pub fn could_ever_allow(
    charter: &CompiledCharter,
    tool: &str,
    principal: Option<&Principal>,
) -> bool {
    if !charter.is_inventoried(tool) {
        return false;
    }
    let mut permissive = false;
    for rule in charter.rules_for(tool) {
        let principal_matches = rule
            .principal
            .as_ref()
            .is_none_or(|m| warden_pdp::principal_matches(m, principal));
        if !principal_matches {
            continue;
        }
        let unconditional = rule.args.is_empty() && rule.labels.is_none() && rule.when.is_none();
        if rule.tier == Tier::Prohibited && unconditional {
            return false;
        }
        if rule.tier != Tier::Prohibited {
            permissive = true;
        }
    }
    permissive || charter.default_posture == DefaultPosture::Ask
}
