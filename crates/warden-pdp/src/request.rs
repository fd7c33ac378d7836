use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;
use warden_charter::amount::Amount;
use warden_core::Posture;
use warden_provenance::SessionProvenance;

/// Everything one decision depends on besides the charter.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The tool, namespaced as `server.tool`.
    pub tool: &'a str,
    /// The arguments (normally a JSON object).
    pub args: &'a serde_json::Value,
    /// The principal the agent acts for, when known.
    pub principal: Option<&'a str>,
    /// Data labels the session has accumulated.
    pub labels: &'a [Arc<str>],
    /// The session's trusted text and the index of the untrusted content it read
    /// ([`SessionProvenance::empty`] outside a session).
    pub provenance: &'a SessionProvenance,
    /// Operator and observer controls in force.
    pub controls: Controls,
    /// Preapproved-scope usage so far.
    pub usage: &'a dyn ScopeUsage,
    /// The time of the decision (for scope expiry).
    pub now: OffsetDateTime,
}

/// Interventions in force for this decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Controls {
    /// The gateway posture.
    pub posture: Posture,
    /// The session has been revoked.
    pub session_revoked: bool,
    /// The tool has been frozen.
    pub tool_frozen: bool,
}

/// How much of a preapproved rule's scope has been used, before this action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleUsage {
    /// Uses in this session.
    pub session_count: u32,
    /// Uses today (UTC), across sessions.
    pub day_count: u32,
    /// Spent in this session.
    pub session_spend: Amount,
    /// Spent today (UTC), across sessions.
    pub day_spend: Amount,
}

/// Where preapproved-scope usage comes from (the gateway's counters, or nothing).
pub trait ScopeUsage {
    /// How much the preapproved rule `rule_id` was used so far.
    fn rule(&self, rule_id: &str) -> RuleUsage;
}

/// No usage yet.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoScopeUsage;

impl ScopeUsage for NoScopeUsage {
    fn rule(&self, _rule_id: &str) -> RuleUsage {
        RuleUsage::default()
    }
}

impl<S: std::hash::BuildHasher> ScopeUsage for HashMap<String, RuleUsage, S> {
    fn rule(&self, rule_id: &str) -> RuleUsage {
        self.get(rule_id).copied().unwrap_or_default()
    }
}

/// The value at a dotted argument path, if present.
pub fn lookup<'v>(args: &'v serde_json::Value, path: &[String]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(args, |v, key| v.as_object()?.get(key))
}

/// What one use of rule `rule` spends from its scope's budget: the amount at the scope's
/// `spend.argument` in `args`, or zero when the rule has no spend budget or the argument is
/// not an amount (an amount the decision could not read never allowed the action).
pub fn spend_of(
    charter: &warden_charter::CompiledCharter,
    rule: &str,
    args: &serde_json::Value,
) -> Amount {
    charter
        .rule(rule)
        .and_then(|rule| rule.scope.as_ref())
        .and_then(|s| s.spend.as_ref())
        .and_then(|spend| lookup(args, &spend.path))
        .and_then(|v| Amount::from_json(v).ok())
        .unwrap_or(Amount::ZERO)
}
