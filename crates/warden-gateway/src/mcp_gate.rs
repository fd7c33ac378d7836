//! The governor as the MCP endpoint's [`ToolGate`], and what the endpoint lists: a tool is
//! listed only if some rule could ever allow it.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use warden_charter::{CompiledCharter, DefaultPosture, Principal};
use warden_core::gate::{ActionOutcome, Allowed, ProgressFn, Refused, Via};
use warden_core::record::RecordError;
use warden_core::{Tier, TraceContext};
use warden_mcp::ToolGate;
use warden_session::Session;

use crate::governor::{Governor, Waiting};

impl ToolGate for Governor {
    fn charter(&self, agent: &str) -> Option<Arc<CompiledCharter>> {
        self.charter_for(agent)
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
        self.authorize_waiting(session, tool, args, Via::Mcp, waiting)
            .await
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
        self.telemetry
            .upstream_call(server, allowed.started.elapsed(), failed);
        Governor::record_result(self, session, tool, allowed, outcome)
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
        self.telemetry
            .decision("deny", tier, "unroutable", tool, agent);
        Governor::record_unroutable(self, session, tool, called_as, args, why)
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
