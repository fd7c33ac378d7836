//! An approval request and the action it is bound to.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
pub use warden_core::ApprovalStatus as Status;
use warden_core::RuleRef;
use warden_core::canonical::{canonical_json, hex};
use warden_core::provenance::ArgProvenance;

/// The identity of one exact action: BLAKE3 over the canonical JSON of the session, the tool
/// and the arguments as decided. An approval releases only an action with the same hash.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionHash(String);

impl ActionHash {
    /// The hash of `tool` called with `arguments` in `session`.
    pub fn of(session: &str, tool: &str, arguments: &Value) -> ActionHash {
        let doc = json!({ "session": session, "tool": tool, "arguments": arguments });
        let digest = blake3::hash(canonical_json(&doc).as_bytes());
        ActionHash(format!("blake3:{}", hex(digest.as_bytes())))
    }

    /// The hash as text (`blake3:…`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ActionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ActionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One approver's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The approver: a principal of the charter.
    pub approver: String,
    /// Their reason, if they gave one.
    pub reason: Option<String>,
    /// How they decided: `api` (CLI or API) or `link` (a signed webhook link).
    pub channel: String,
    /// For a link, the delivery target it was sent to (a keyed hash of the webhook URL): one
    /// target casts at most one approving vote on a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For the API, the id of the operator credential used: a vote whose credential has been
    /// revoked since no longer counts when the grant is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Whether the approver asked to remember the values the request's rules name in
    /// `approval.remember` for the session (only on approving votes; `false` on old bodies).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remember: bool,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An earlier request of the same session for the same action that was refused: what an
/// approver sees as the action's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Earlier {
    /// The earlier request's id.
    pub id: String,
    /// How it ended: `denied` or `timed_out`.
    pub status: Status,
    /// When it was decided (denied or timed out); its request time if that is not known.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Most earlier refusals a request carries.
pub const MAX_EARLIER: usize = 8;

/// A denial that was reversed: the denial, and the reversal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reversal {
    /// The denial that was reversed.
    pub denial: Vote,
    /// Who reversed it, why and when.
    pub by: Vote,
}

/// What a live reload did to a request raised under the charter it replaced: the request's
/// action decided again under the charter put in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redecision {
    /// The charter the request was bound to before.
    pub from: String,
    /// The charter put in force, which decided it again.
    pub charter: String,
    /// `kept` (it still asks: rebound to `charter`), `voided` (denied now) or `released`
    /// (allowed now without approval).
    pub outcome: String,
    /// The new decision, in a sentence.
    pub why: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What the gateway knows when it asks for approval.
#[derive(Clone, Debug)]
pub struct NewApproval {
    /// The request id (UUID v7).
    pub id: String,
    /// The action attempt that raised it.
    pub action: String,
    /// Session, agent, on-behalf-of principal and task.
    pub session: String,
    /// The agent.
    pub agent: String,
    /// The principal the agent acts for.
    pub principal: String,
    /// The session's task.
    pub task: String,
    /// `server.tool`.
    pub tool: String,
    /// The arguments as decided (canonical, paths resolved).
    pub arguments: Value,
    /// The decision's reason label (`rule`, `default_posture`, `scope_exceeded`, ...).
    pub reason: String,
    /// Why it needs approval, in a sentence.
    pub why: String,
    /// The rules that determined the decision.
    pub rules: Vec<RuleRef>,
    /// The rule ids an approver needs authority for (`default` for the default posture).
    pub authority_for: Vec<String>,
    /// The principals who may approve it.
    pub approvers: Vec<String>,
    /// Distinct approvers needed.
    pub quorum: u32,
    /// The content hash of the charter in force.
    pub charter: String,
    /// When it was requested.
    pub requested_at: OffsetDateTime,
    /// When it times out.
    pub deadline: OffsetDateTime,
    /// The session's recent model turns that led to the call (from the model proxy).
    pub model_turns: Vec<Value>,
}

/// An approval request: bound to one exact action, decided by authorised humans, used once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// Request id (UUID v7).
    pub id: String,
    /// Status.
    pub status: Status,
    /// The exact action.
    pub action_hash: ActionHash,
    /// The attempt that raised the request.
    pub action: String,
    /// The session.
    pub session: String,
    /// The agent.
    pub agent: String,
    /// The principal the agent acts for.
    pub principal: String,
    /// The session's task.
    pub task: String,
    /// The tool.
    pub tool: String,
    /// The arguments, as decided.
    pub arguments: Value,
    /// The decision's reason label.
    pub reason: String,
    /// Why it needs approval.
    pub why: String,
    /// The rules that determined the decision, with their charter locations.
    pub rules: Vec<RuleRef>,
    /// The rule ids an approver needs authority for.
    pub authority_for: Vec<String>,
    /// The principals who may approve it (computed from the charter when it was requested).
    pub approvers: Vec<String>,
    /// Distinct approvers needed.
    pub quorum: u32,
    /// The content hash of the charter it was raised under: its authority and quorum hold
    /// only while that charter is in force (`None` for requests stored before requests were
    /// bound to their charter; those are never used).
    #[serde(default)]
    pub charter: Option<String>,
    /// When it was requested.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// The deadline.
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    /// Approvals so far, one per distinct approver.
    pub approvals: Vec<Vote>,
    /// The denial, if denied.
    pub denial: Option<Vote>,
    /// When the request was decided (granted, denied or timed out).
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// When the grant was used, and by which attempt.
    #[serde(with = "time::serde::rfc3339::option")]
    pub used_at: Option<OffsetDateTime>,
    /// The attempt the grant released.
    pub used_by: Option<String>,
    /// The session's recent model turns that led to the call: prompt and completion excerpts
    /// and the tool calls the model proposed (empty when the agent does not use the model
    /// proxy).
    #[serde(default)]
    pub model_turns: Vec<Value>,
    /// The arguments (dotted names) the determining rules allow an approver to remember for the
    /// session (their `approval.remember`); empty: nobody may approve with `remember`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remember: Vec<String>,
    /// Earlier refusals of the same action in the same session, newest first.
    #[serde(default)]
    pub earlier: Vec<Earlier>,
    /// The decision's provenance (empty when no rule judged an argument by provenance).
    #[serde(default)]
    pub provenance: Vec<ArgProvenance>,
    /// Denials of this request that were reversed, oldest first (at most one per deadline in
    /// practice: a reversal needs a denial, and each reversal clears the votes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reversals: Vec<Reversal>,
    /// What live reloads did to it, oldest first (empty unless a reload re-decided it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redecisions: Vec<Redecision>,
    /// The agent whose charter asked, when it is not `agent`'s: a delegated action decided
    /// under an ancestor's charter too is approved by the approvers of the charter whose
    /// decision was binding (its authority, quorum and separation of duties, and the charter
    /// hash `charter` is that one's). `None`: `agent`'s own charter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under: Option<String>,
    /// The delegation chain of the requesting session (its ancestors, root first; empty for a
    /// session an operator opened).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<ChainLink>,
}

/// One ancestor of a delegated session, as an approval request names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The ancestor session.
    pub session: String,
    /// Its agent.
    pub agent: String,
}

impl ApprovalRequest {
    /// A pending request.
    pub fn new(n: NewApproval) -> ApprovalRequest {
        ApprovalRequest {
            action_hash: ActionHash::of(&n.session, &n.tool, &n.arguments),
            id: n.id,
            status: Status::Pending,
            action: n.action,
            session: n.session,
            agent: n.agent,
            principal: n.principal,
            task: n.task,
            tool: n.tool,
            arguments: n.arguments,
            reason: n.reason,
            why: n.why,
            rules: n.rules,
            authority_for: n.authority_for,
            approvers: n.approvers,
            quorum: n.quorum.max(1),
            charter: Some(n.charter),
            requested_at: n.requested_at,
            deadline: n.deadline,
            approvals: Vec::new(),
            denial: None,
            decided_at: None,
            used_at: None,
            used_by: None,
            model_turns: n.model_turns,
            remember: Vec::new(),
            earlier: Vec::new(),
            provenance: Vec::new(),
            reversals: Vec::new(),
            redecisions: Vec::new(),
            under: None,
            chain: Vec::new(),
        }
    }

    /// The agent whose charter governs this request's approval: [`under`](Self::under) when
    /// set, else the requesting agent.
    pub fn deciding_agent(&self) -> &str {
        self.under.as_deref().unwrap_or(&self.agent)
    }

    /// The request raised by a delegated session: its `chain`, and `under` the agent whose
    /// charter asked (left `None` when that is the requesting agent).
    #[must_use]
    pub fn delegated(mut self, under: &str, chain: Vec<ChainLink>) -> ApprovalRequest {
        if under != self.agent {
            self.under = Some(under.to_owned());
        }
        self.chain = chain;
        self
    }

    /// The charter that released this request, when a reload released it (allowed without
    /// approval under the charter put in force) and it is still bound to that charter: its
    /// grant needs no approving vote.
    pub fn released_under(&self) -> Option<&str> {
        let last = self.redecisions.last()?;
        (self.status == Status::Granted
            && last.outcome == "released"
            && self.charter.as_deref() == Some(last.charter.as_str()))
        .then_some(last.charter.as_str())
    }

    /// The last reload's re-decision, if any.
    pub fn last_redecision(&self) -> Option<&Redecision> {
        self.redecisions.last()
    }

    /// The request with what teaches its approver: the arguments the determining rules allow
    /// to remember for the session (their `approval.remember`, deduplicated), the earlier
    /// refusals of the same action (at most [`MAX_EARLIER`] kept) and the decision's
    /// provenance.
    #[must_use]
    pub fn with_context(
        mut self,
        remember: Vec<String>,
        earlier: Vec<Earlier>,
        provenance: Vec<ArgProvenance>,
    ) -> ApprovalRequest {
        let mut remember = remember;
        remember.sort();
        remember.dedup();
        self.remember = remember;
        self.earlier = earlier.into_iter().take(MAX_EARLIER).collect();
        self.provenance = provenance;
        self
    }

    /// Whether a grant of this request makes its remembered values trusted: it names
    /// arguments to remember, and every approving vote asked to remember.
    pub fn remembers(&self) -> bool {
        !self.remember.is_empty()
            && !self.approvals.is_empty()
            && self.approvals.iter().all(|v| v.remember)
    }

    /// The values to trust when the grant is used (`(argument, text)`, in the order of
    /// `remember`): each named argument's value in the decided arguments — a string as itself,
    /// a number as its JSON text, each string or number element of a list. Missing arguments
    /// and other types are skipped. Empty unless [`remembers`](Self::remembers).
    pub fn remembered(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.remembers() {
            return out;
        }
        for name in &self.remember {
            let mut at = Some(&self.arguments);
            for part in name.split('.') {
                at = at.and_then(|v| v.get(part));
            }
            let values: Vec<&Value> = match at {
                Some(Value::Array(items)) => items.iter().collect(),
                Some(v) => vec![v],
                None => Vec::new(),
            };
            for v in values {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                if !text.trim().is_empty() {
                    out.push((name.clone(), text));
                }
            }
        }
        out
    }
}
