//! The vocabulary of argument provenance: where a value an agent sends was found.
//!
//! The principal's own words — the session's task, the instructions added for the principal
//! during the session, and values an approver confirmed for the session — are *trusted text*
//! ([`TrustedSource`]). Results of actions that carry a label the charter declares untrusted
//! are *untrusted content*, each known by the ledger sequence of its `action_result` record.
//! A decision that judged an argument by its provenance explains it ([`ArgProvenance`]), and
//! the explanation is recorded with the decision and shown to approvers.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a piece of trusted text came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrustedSource {
    /// The session's task, set when it was opened.
    Task,
    /// An instruction an operator added for the principal during the session (recorded as
    /// `trust_added` at this ledger sequence, when known).
    Instruction {
        /// The ledger sequence of its `trust_added` record.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// A value an approver confirmed "for this session" when approving a request.
    Approval {
        /// The approval request.
        approval: String,
        /// The argument whose value was remembered.
        argument: String,
    },
}

impl std::fmt::Display for TrustedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustedSource::Task => f.write_str("the session's task"),
            TrustedSource::Instruction { seq: Some(seq) } => {
                write!(f, "an instruction (ledger #{seq})")
            }
            TrustedSource::Instruction { seq: None } => f.write_str("an instruction"),
            TrustedSource::Approval { approval, argument } => {
                write!(f, "`{argument}` confirmed by approval {approval}")
            }
        }
    }
}

/// One meaningful part of a value found in untrusted content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundIn {
    /// The part, normalised (ellipsized when long).
    pub part: String,
    /// What kind of part: `whole`, `email`, `url`, `host`, `iban`, `account`, `number`,
    /// `phrase`.
    pub kind: String,
    /// The ledger sequence of the `action_result` whose content contains it.
    pub seq: u64,
    /// The untrusted labels that content carries.
    pub labels: Vec<Arc<str>>,
}

/// Where one argument value that a rule judged by provenance (`in_task`, `provenance`) was
/// found: in trusted text, in untrusted content, or nowhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgProvenance {
    /// The rule that judged it.
    pub rule: Arc<str>,
    /// The argument, as the rule names it (dotted for nested objects).
    pub argument: String,
    /// The value judged (an element, for a list), ellipsized when long.
    pub value: String,
    /// The trusted source that states the whole value, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted: Option<TrustedSource>,
    /// The untrusted content each meaningful part not stated in trusted text was found in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub found: Vec<FoundIn>,
    /// The session's untrusted index was incomplete (over its bound, or not rebuilt): the
    /// value counted as untrusted unless trusted text states it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}
