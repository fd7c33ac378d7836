//! Explaining one typed action: the checks and the decision `warden explain` and the console's
//! explain page share, so both answer exactly what the gateway would decide for those inputs
//! (with no preapproved-scope usage, and no controls beyond the posture).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;
use warden_charter::CompiledCharter;
use warden_core::{Decision, Posture};
use warden_provenance::SessionProvenance;

use crate::{Controls, NoScopeUsage, Request, decide};

/// Typed inputs that cannot be decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplainError {
    /// The arguments are not JSON (the parser's message).
    ArgsNotJson(String),
    /// The arguments are JSON, but not an object.
    ArgsNotObject,
    /// The charter has no such principal.
    UnknownUser {
        /// The user given.
        user: String,
        /// The charter's principals, sorted, comma-separated.
        known: String,
    },
    /// The charter declares no such data label.
    UnknownLabel(String),
}

impl fmt::Display for ExplainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExplainError::ArgsNotJson(e) => write!(f, "the arguments are not valid JSON: {e}"),
            ExplainError::ArgsNotObject => f.write_str("the arguments must be a JSON object"),
            ExplainError::UnknownUser { user, known } => write!(
                f,
                "unknown user `{user}`; the charter's principals are: {known}"
            ),
            ExplainError::UnknownLabel(l) => write!(f, "unknown label `{l}`"),
        }
    }
}

impl std::error::Error for ExplainError {}

/// The arguments, which must be a JSON object.
pub fn parse_args(text: &str) -> Result<Value, ExplainError> {
    match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ExplainError::ArgsNotObject),
        Err(e) => Err(ExplainError::ArgsNotJson(e.to_string())),
    }
}

/// `Ok` when `user` is absent or one of the charter's principals.
pub fn check_user(charter: &CompiledCharter, user: Option<&str>) -> Result<(), ExplainError> {
    match user {
        Some(u) if charter.authority.principal(u).is_none() => {
            let mut known: Vec<&str> = charter.authority.principals.keys().map(|k| &**k).collect();
            known.sort_unstable();
            Err(ExplainError::UnknownUser {
                user: u.to_owned(),
                known: known.join(", "),
            })
        }
        _ => Ok(()),
    }
}

/// The charter's labels named by `labels` (empty names skipped); an undeclared one is an
/// error.
pub fn resolve_labels<S: AsRef<str>>(
    charter: &CompiledCharter,
    labels: &[S],
) -> Result<Vec<Arc<str>>, ExplainError> {
    let mut out = Vec::new();
    for l in labels.iter().map(AsRef::as_ref).filter(|l| !l.is_empty()) {
        match charter.data.labels.iter().find(|x| ***x == *l) {
            Some(x) => out.push(x.clone()),
            None => return Err(ExplainError::UnknownLabel(l.to_owned())),
        }
    }
    Ok(out)
}

/// What is decided: the action and its session's situation.
#[derive(Debug, Clone, Copy)]
pub struct Typed<'a> {
    /// The tool, `server.tool`.
    pub tool: &'a str,
    /// The arguments (an object, from [`parse_args`]).
    pub args: &'a Value,
    /// The principal (checked with [`check_user`]).
    pub user: Option<&'a str>,
    /// The session's labels (from [`resolve_labels`]).
    pub labels: &'a [Arc<str>],
    /// The session's provenance.
    pub provenance: &'a SessionProvenance,
    /// The posture.
    pub posture: Posture,
    /// The time of the decision.
    pub now: OffsetDateTime,
}

/// The decision on a typed action: [`decide`] with no preapproved-scope usage and no
/// control but the posture. A tool outside the inventory is decided by the rules alone (the
/// gateway refuses it before deciding: see `CompiledCharter::is_inventoried`).
pub fn explain(charter: &CompiledCharter, typed: &Typed<'_>) -> Decision {
    decide(
        charter,
        &Request {
            tool: typed.tool,
            args: typed.args,
            principal: typed.user,
            labels: typed.labels,
            provenance: typed.provenance,
            controls: Controls {
                posture: typed.posture,
                ..Controls::default()
            },
            usage: &NoScopeUsage,
            now: typed.now,
        },
    )
}
