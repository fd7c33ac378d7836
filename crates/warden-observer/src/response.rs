//! What the observer concludes: signals from its detectors, and the responses (alerts and
//! interventions) it asks the gateway's control API for.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What an intervention applies to. Serialised flat, as the control API takes it:
/// `{"scope": "session", "target": "<id>"}`; `{"scope": "gateway"}` has no target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", content = "target", rename_all = "snake_case")]
pub enum Scope {
    /// The whole gateway.
    Gateway,
    /// Every session of this agent.
    Agent(String),
    /// Every session acting for this principal.
    Principal(String),
    /// One session.
    Session(String),
}

/// A response, mildest first (the order escalation follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Record an alert (and send it to the alert webhook); change nothing.
    Alert,
    /// The conservative posture: autonomous and preapproved actions need approval.
    Conservative,
    /// Freeze one tool.
    FreezeTool,
    /// Revoke the session(s).
    RevokeSession,
    /// The frozen posture: every action is denied.
    Frozen,
}

impl Action {
    /// The action's stable name (as the control API and the records spell it).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Conservative => "conservative",
            Action::FreezeTool => "freeze_tool",
            Action::RevokeSession => "revoke_session",
            Action::Frozen => "frozen",
        }
    }
}

/// One detector's finding, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// The detector's id in the charter (`ledger_integrity` for a broken chain).
    pub detector: String,
    /// The detector's kind (`intent_mismatch`, `new_resource_burst`, `rate`, `denial_storm`,
    /// `sensitive_then_send`, `token_spike`, `ledger_integrity`).
    pub kind: String,
    /// The session it is about, if one.
    pub session: Option<String>,
    /// The agent it is about.
    pub agent: Option<String>,
    /// The principal the session acts for, when known.
    pub principal: Option<String>,
    /// The tool it is about, if one (the tool a `freeze_tool` response freezes).
    pub tool: Option<String>,
    /// The ledger records that show it (sequence numbers, ascending).
    pub evidence: Vec<u64>,
    /// What it was held against (the baseline, threshold and window), for the alert to explain.
    pub baseline: serde_json::Value,
    /// One sentence a person can read.
    pub detail: String,
    /// The time of the record that raised it (ledger time).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

/// What the observer asks for: an alert, or an intervention through the control API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// What to do.
    pub action: Action,
    /// Where it applies.
    #[serde(flatten)]
    pub scope: Scope,
    /// The tool to freeze (for [`Action::FreezeTool`]).
    pub tool: Option<String>,
    /// Why, in one sentence (becomes the control's `reason`).
    pub reason: String,
    /// Every ledger record the signals cite (sequence numbers, ascending, deduplicated).
    pub evidence: Vec<u64>,
    /// The detector or correlation rule that decided it (the charter id).
    pub detector: String,
    /// The signals that led to it.
    pub signals: Vec<Signal>,
    /// How long the control should last, if the charter bounds it (seconds).
    pub expires_in_secs: Option<u64>,
}
