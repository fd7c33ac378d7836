//! The action gate's vocabulary: how an action reached the gateway, what the governor
//! answers (an [`Allowed`] action to forward, or a [`Refused`] one with its [`RefusalReason`]),
//! and how a forwarded action ended ([`ActionOutcome`]). The governor produces these; the
//! protocol front ends (MCP, the decide API) only read them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Decision;

/// Whether a tool the model proposed (an intent's tool) names the tool the agent attempted:
/// equal, equal to the name the agent called it by, or equal once the server prefix
/// (`server.` or `server__`) is taken off both — `fs.read_file`, `fs__read_file` and
/// `read_file` all name `fs.read_file`. The one rule the observer and the console's timeline
/// match intents to attempts by.
pub fn intent_names_tool(intent: &str, tool: &str, called_as: Option<&str>) -> bool {
    if intent == tool || called_as == Some(intent) {
        return true;
    }
    let short = |s: &str| -> String {
        let s = s.rsplit('.').next().unwrap_or(s);
        s.rsplit("__").next().unwrap_or(s).to_owned()
    };
    short(intent) == short(tool)
}

/// How an action reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An MCP `tools/call` or `resources/read`.
    Mcp,
    /// The decide API.
    DecideApi,
}

impl Via {
    /// The stable name recorded in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Mcp => "mcp",
            Via::DecideApi => "decide_api",
        }
    }
}

/// An action the governor allowed; the caller forwards it (with `args`) and then reports the
/// outcome.
#[derive(Debug, Clone)]
pub struct Allowed {
    /// The action id (UUID v7), also in the ledger.
    pub action_id: String,
    /// The decision.
    pub decision: Decision,
    /// The arguments to forward: those that were decided (paths resolved for local servers).
    pub args: Value,
    /// When the action was allowed, to measure its duration.
    pub started: Instant,
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The decision denied it.
    Denied,
    /// It needed approval, and none came before the deadline.
    ApprovalTimedOut,
    /// An approver denied it.
    ApprovalDenied,
    /// It needs approval and nobody could give it (no principal with the authority), or the
    /// request could not be stored.
    ApprovalUnavailable,
    /// It still waits for approval: the caller stopped waiting (decide API long-poll), the
    /// client went away, or the gateway is shutting down. The same call, retried, picks up
    /// the decision.
    ApprovalPending,
    /// The session expired.
    SessionExpired,
    /// The ledger could not record the attempt.
    LedgerUnavailable,
    /// The charter's inventory does not name the tool: refused before any decision, whatever
    /// the rules say.
    NotInventoried,
    /// The arguments are larger than one record may capture: they could not be recorded, so
    /// the action is not forwarded.
    ArgumentsTooLarge,
    /// The session has used its quota of bytes recorded: its further calls are refused.
    CaptureQuotaExhausted,
    /// The shared state store (PostgreSQL) could not be read or written on the decision
    /// path: the action is refused, never allowed unchecked.
    StoreUnavailable,
}

impl RefusalReason {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Denied => "denied",
            RefusalReason::ApprovalTimedOut => "approval_timed_out",
            RefusalReason::ApprovalDenied => "approval_denied",
            RefusalReason::ApprovalUnavailable => "approval_unavailable",
            RefusalReason::ApprovalPending => "approval_pending",
            RefusalReason::SessionExpired => "session_expired",
            RefusalReason::LedgerUnavailable => "ledger_unavailable",
            RefusalReason::NotInventoried => "not_inventoried",
            RefusalReason::ArgumentsTooLarge => "arguments_too_large",
            RefusalReason::CaptureQuotaExhausted => "capture_quota_exhausted",
            RefusalReason::StoreUnavailable => "store_unavailable",
        }
    }
}

/// A refused action.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The action id, when the attempt was recorded.
    pub action_id: Option<String>,
    /// Why.
    pub reason: RefusalReason,
    /// The decision, when one was made.
    pub decision: Option<Decision>,
    /// A sentence for the agent.
    pub message: String,
    /// The approval request involved, if any.
    pub approval: Option<PendingApproval>,
}

/// The approval request an action waits on (or waited on).
#[derive(Debug, Clone)]
pub struct PendingApproval {
    /// The request id.
    pub id: String,
    /// Its deadline (RFC 3339).
    pub deadline: String,
    /// Its status when the call stopped waiting.
    pub status: ApprovalStatus,
    /// The principals who may approve it (as the request was raised), sorted.
    pub approvers: Vec<String>,
    /// Distinct approvers needed.
    pub quorum: u32,
}

/// How a forwarded action ended.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    /// `ok`, `tool_error` (the tool ran and reported an error) or `upstream_error` (the
    /// upstream failed or did not answer).
    pub status: &'static str,
    /// Size of the result, in bytes.
    pub size_bytes: usize,
    /// The error, if any.
    pub error: Option<String>,
    /// The result text the data sources' patterns are matched against.
    pub text: String,
    /// The result's content as the agent receives it, to be captured in the ledger (bounded
    /// and redacted by the governor).
    pub content: Vec<ContentPart>,
}

/// A part of a result's content, as captured in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentPart {
    /// Text: an MCP text part or resource text, or a decide-API output.
    Text(String),
    /// Anything else (an image, audio, a blob, an embedded resource): recorded by its type and
    /// size only.
    Other {
        /// The part's type (`image`, `audio`, `blob`, …).
        kind: String,
        /// Its size in bytes (as JSON, or the blob's encoded length).
        bytes: usize,
    },
}

/// Reports progress while a call waits for approval: `(waited seconds, total seconds,
/// message)`.
pub type ProgressFn =
    dyn Fn(f64, f64, String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// Where a request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for approvers.
    Pending,
    /// The quorum approved; the action may run once, before the deadline.
    Granted,
    /// An approver denied it.
    Denied,
    /// The deadline passed before it was granted, or before a grant was used.
    TimedOut,
    /// A grant released its action. Final.
    Used,
    /// A live reload put in force a charter that denies the action: the request (or its
    /// unused grant) can no longer release anything. Final.
    Voided,
}

impl ApprovalStatus {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Granted => "granted",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::TimedOut => "timed_out",
            ApprovalStatus::Used => "used",
            ApprovalStatus::Voided => "voided",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<ApprovalStatus> {
        Some(match s {
            "pending" => ApprovalStatus::Pending,
            "granted" => ApprovalStatus::Granted,
            "denied" => ApprovalStatus::Denied,
            "timed_out" => ApprovalStatus::TimedOut,
            "used" => ApprovalStatus::Used,
            "voided" => ApprovalStatus::Voided,
            _ => return None,
        })
    }

    /// Whether the request can still change (pending, or granted and not yet used).
    pub fn is_open(self) -> bool {
        matches!(self, ApprovalStatus::Pending | ApprovalStatus::Granted)
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod intent_tests {
    use super::intent_names_tool;

    #[test]
    fn intents_name_tools_in_every_spelling() {
        assert!(intent_names_tool("read_file", "fs.read_file", None));
        assert!(intent_names_tool("fs.read_file", "fs.read_file", None));
        assert!(intent_names_tool(
            "fs__read_file",
            "fs.read_file",
            Some("fs__read_file")
        ));
        assert!(!intent_names_tool("write_file", "fs.read_file", None));
        assert!(!intent_names_tool(
            "fs.read_file",
            "db.query",
            Some("db__query")
        ));
    }
}
