use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Tier;

/// What the gateway does with an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The action may run now.
    Allow,
    /// The action waits for an authorised human; no answer before the deadline denies.
    Ask,
    /// The action is refused.
    Deny,
}

impl Verdict {
    /// The verdict's stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Ask => "ask",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gateway-wide posture, set by an operator or the observer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Posture {
    /// Rules apply as written.
    #[default]
    Normal,
    /// Autonomous and preapproved actions need approval.
    Conservative,
    /// Every action is denied.
    Frozen,
}

impl Posture {
    /// The posture's stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Posture::Normal => "normal",
            Posture::Conservative => "conservative",
            Posture::Frozen => "frozen",
        }
    }
}

impl fmt::Display for Posture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a decision came out the way it did: a stable label for metrics and audit records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The strictest matching rule decided.
    Rule,
    /// No rule matched; the charter's default posture decided.
    DefaultPosture,
    /// A preapproved rule matched but its scope (count, spend, expiry) was exhausted.
    ScopeExceeded,
    /// The on-behalf-of principal may not direct the agent at the matched tier.
    PrincipalAuthority,
    /// The conservative posture turned an autonomous or preapproved action into approval.
    ConservativePosture,
    /// The session was revoked.
    SessionRevoked,
    /// The tool is frozen.
    ToolFrozen,
    /// The gateway posture is frozen.
    PostureFrozen,
    /// Something went wrong while deciding; errors deny.
    EvaluationError,
}

impl Reason {
    /// The reason's stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rule => "rule",
            Reason::DefaultPosture => "default_posture",
            Reason::ScopeExceeded => "scope_exceeded",
            Reason::PrincipalAuthority => "principal_authority",
            Reason::ConservativePosture => "conservative_posture",
            Reason::SessionRevoked => "session_revoked",
            Reason::ToolFrozen => "tool_frozen",
            Reason::PostureFrozen => "posture_frozen",
            Reason::EvaluationError => "evaluation_error",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where something was written in a charter: file, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceLocation {
    /// The charter file, as it was given to the compiler.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A rule that determined a decision, with where it is written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RuleRef {
    /// The rule's id.
    pub id: Arc<str>,
    /// The rule's tier.
    pub tier: Tier,
    /// Where the rule starts in the charter.
    pub location: SourceLocation,
}

/// The BLAKE3 content hash of a compiled charter's sources.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CharterHash(pub [u8; 32]);

impl CharterHash {
    /// Lower-case hex, prefixed with the algorithm: `blake3:…`.
    pub fn to_prefixed_hex(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(7 + 64);
        s.push_str("blake3:");
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl fmt::Display for CharterHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_prefixed_hex())
    }
}

impl fmt::Debug for CharterHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CharterHash({})", self.to_prefixed_hex())
    }
}

impl Serialize for CharterHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_prefixed_hex())
    }
}

/// What an approval for this decision requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApprovalSpec {
    /// How long the action may wait for approval before it is denied, in seconds.
    pub timeout_seconds: u64,
    /// How many distinct approvers must approve.
    pub quorum: u32,
}

/// The outcome of deciding one action, with everything needed to explain and replay it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The tier the action landed in after every adjustment (scope, authority, posture).
    pub tier: Tier,
    /// What the gateway does.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// A sentence with the specifics of the reason, when there are any (which scope ran out,
    /// which error occurred).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The rules that determined the tier; empty when no rule matched.
    pub rules: Vec<RuleRef>,
    /// The posture the decision was taken under.
    pub posture: Posture,
    /// The content hash of the charter that decided.
    pub charter: CharterHash,
    /// Errors met while evaluating rules; a non-empty list in a restrictive rule means deny.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What an approval needs, when the verdict is [`Verdict::Ask`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
    /// Where the argument values judged by provenance (`in_task`, `provenance`) were found,
    /// for the rules that determined the decision (and, when it asks, for the approver).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<crate::ArgProvenance>,
}

impl Decision {
    /// A one-line human explanation of the decision.
    pub fn summary(&self) -> String {
        let what = match self.reason {
            Reason::Rule => format!("{} by rule {}", self.tier, rule_list(&self.rules)),
            Reason::DefaultPosture => "no rule matches; the default posture applies".to_owned(),
            Reason::ScopeExceeded => format!(
                "preapproved scope of {} exceeded; escalated to approval",
                rule_list(&self.rules)
            ),
            Reason::PrincipalAuthority => format!(
                "the principal may not direct {}; escalated to approval",
                rule_list(&self.rules)
            ),
            Reason::ConservativePosture => format!(
                "conservative posture: {} needs approval",
                rule_list(&self.rules)
            ),
            Reason::SessionRevoked => "the session is revoked".to_owned(),
            Reason::ToolFrozen => "the tool is frozen".to_owned(),
            Reason::PostureFrozen => "the gateway posture is frozen".to_owned(),
            Reason::EvaluationError => "an error occurred while deciding; errors deny".to_owned(),
        };
        match &self.detail {
            Some(d) => format!("{}: {what} ({d})", self.verdict),
            None => format!("{}: {what}", self.verdict),
        }
    }
}

fn rule_list(rules: &[RuleRef]) -> String {
    if rules.is_empty() {
        return "(none)".to_owned();
    }
    rules
        .iter()
        .map(|r| format!("`{}` ({})", r.id, r.location))
        .collect::<Vec<_>>()
        .join(", ")
}
