//! Charter test cases: YAML files that state an action, the session's situation and the
//! decision expected, checked by deciding exactly as the gateway does (`warden test`).
//!
//! Pure: [`parse`] takes a compiled charter and a case file's text, [`run`] decides one case
//! with [`crate::decide`] (no second evaluator) and compares. Reading the files is the
//! caller's job; the bounds for it are [`MAX_CASE_FILES`] and [`MAX_CASE_FILE_BYTES`]. The
//! format is documented in `docs/charter-tests.md`.
//!
//! Every case carries the `file:line:col` of its item, and every error names the position of
//! the offending key or value: a case file with an unknown field, a malformed value, or a
//! name the charter does not declare (principal, label, rule, tool) is rejected as a whole.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;
use time::OffsetDateTime;
use warden_charter::amount::Amount;
use warden_charter::{CompiledCharter, Source};
use warden_core::{Decision, Posture, Reason, RuleRef, SourceLocation, Tier, Verdict};

use crate::explain::{check_user, resolve_labels};
use crate::{Controls, RuleUsage};

/// Most case files one run reads (as many as a charter directory may hold).
pub const MAX_CASE_FILES: usize = warden_charter::MAX_FILES;
/// Largest case file accepted, in bytes (as large as a charter file may be).
pub const MAX_CASE_FILE_BYTES: u64 = warden_charter::MAX_FILE_BYTES;
/// Most cases one file may hold.
pub const MAX_CASES_PER_FILE: usize = 4096;
/// The reason a case expects for a tool the inventory does not name: the gateway refuses it
/// before any rule (`verdict: deny`, tier `prohibited`, no rules).
pub const NOT_INVENTORIED: &str = "not_inventoried";

/// A case file that cannot be run, at the position of the offending key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseError {
    /// Where, in the case file.
    pub location: SourceLocation,
    /// What is wrong (lowercase, no final period).
    pub message: String,
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for CaseError {}

/// The reason a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedReason {
    /// A reason of the decision.
    Decided(Reason),
    /// The gateway's refusal of a tool the inventory does not name.
    NotInventoried,
}

impl ExpectedReason {
    /// The reason's stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedReason::Decided(r) => r.as_str(),
            ExpectedReason::NotInventoried => NOT_INVENTORIED,
        }
    }
}

/// What a case expects; only `verdict` is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The verdict.
    pub verdict: Verdict,
    /// The tier after every adjustment, when given.
    pub tier: Option<Tier>,
    /// The ids of the determining rules, as a set (order ignored), when given.
    pub rules: Option<Vec<String>>,
    /// The reason, when given.
    pub reason: Option<ExpectedReason>,
}

/// An untrusted result the session read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadResult {
    labels: Vec<Arc<str>>,
    content: String,
}

/// One checked test case: every name in it is declared by the charter it was parsed against.
#[derive(Debug, Clone)]
pub struct Case {
    /// The case's name (unique in its file).
    pub name: String,
    /// Where the case starts.
    pub location: SourceLocation,
    /// The tool, `server.tool`.
    pub tool: String,
    /// What is expected.
    pub expect: Expect,
    args: serde_json::Value,
    principal: Option<String>,
    labels: Vec<Arc<str>>,
    task: Option<String>,
    instructions: Vec<String>,
    results: Vec<ReadResult>,
    controls: Controls,
    usage: HashMap<String, RuleUsage>,
    at: Option<OffsetDateTime>,
}

impl Case {
    /// The tool call's arguments (a JSON object).
    pub fn args(&self) -> &serde_json::Value {
        &self.args
    }

    /// The principal the session acts for, when the case names one.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }
}

/// What running one case gave.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The verdict reached.
    pub verdict: Verdict,
    /// The tier reached.
    pub tier: Tier,
    /// The reason's label (a [`Reason`], or [`NOT_INVENTORIED`]).
    pub reason: &'static str,
    /// The determining rules, with their locations in the charter.
    pub rules: Vec<RuleRef>,
    /// The decision, unless the gateway would have refused the tool before deciding.
    pub decision: Option<Decision>,
    /// Each way the outcome differs from the expectation (empty: the case passed).
    pub failures: Vec<String>,
}

impl Outcome {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    cases: Vec<Spanned<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Spanned<String>,
    tool: Spanned<String>,
    #[serde(default)]
    args: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    principal: Option<Spanned<String>>,
    #[serde(default)]
    labels: Vec<Spanned<String>>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    instructions: Vec<String>,
    #[serde(default)]
    results: Vec<RawResult>,
    #[serde(default)]
    posture: Posture,
    #[serde(default)]
    tool_frozen: bool,
    #[serde(default)]
    session_revoked: bool,
    #[serde(default)]
    usage: Option<Spanned<BTreeMap<String, RawUsage>>>,
    #[serde(default)]
    at: Option<Spanned<String>>,
    expect: RawExpect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResult {
    labels: Vec<Spanned<String>>,
    content: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUsage {
    #[serde(default)]
    session: u32,
    #[serde(default)]
    day: u32,
    #[serde(default)]
    session_spend: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    day_spend: Option<Spanned<serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    verdict: Verdict,
    #[serde(default)]
    tier: Option<Tier>,
    #[serde(default)]
    rules: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    reason: Option<Spanned<String>>,
}

/// Parses and checks one case file against `charter`: every case, or every error found (a
/// syntax error stops at the first; otherwise each case is checked on its own).
pub fn parse(charter: &CompiledCharter, source: &Source) -> Result<Vec<Case>, Vec<CaseError>> {
    let at = |line: u64, column: u64| SourceLocation {
        file: source.name.clone(),
        line: u32::try_from(line).unwrap_or(u32::MAX).max(1),
        column: u32::try_from(column).unwrap_or(u32::MAX).max(1),
    };
    if source.text.len() > usize::try_from(MAX_CASE_FILE_BYTES).unwrap_or(usize::MAX) {
        return Err(vec![CaseError {
            location: at(1, 1),
            message: format!("case file is larger than the limit of {MAX_CASE_FILE_BYTES} bytes"),
        }]);
    }
    if source.text.trim().is_empty() {
        return Err(vec![CaseError {
            location: at(1, 1),
            message: "case file is empty; it holds `cases:`, a list of test cases".to_owned(),
        }]);
    }
    let options = serde_saphyr::options! {
        strict_booleans: true,
        budget: serde_saphyr::budget! {
            max_documents: 1,
            max_depth: 64,
        },
    };
    let raw: RawFile = serde_saphyr::from_str_with_options(&source.text, options).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let message = e.without_snippet().to_string();
        let message = message.lines().next().unwrap_or_default().trim();
        // The position leads the error already.
        let message = match message.rfind(" at line ") {
            Some(i) if message.get(i..).is_some_and(|t| t.contains(", column ")) => {
                message.get(..i).unwrap_or(message)
            }
            _ => message,
        };
        vec![CaseError {
            location: at(line, column),
            message: format!("invalid case file: {message}"),
        }]
    })?;
    if raw.cases.is_empty() {
        return Err(vec![CaseError {
            location: at(1, 1),
            message: "`cases` is empty; a case file holds at least one case".to_owned(),
        }]);
    }
    if raw.cases.len() > MAX_CASES_PER_FILE {
        return Err(vec![CaseError {
            location: at(1, 1),
            message: format!("a case file holds at most {MAX_CASES_PER_FILE} cases"),
        }]);
    }
    let mut cases = Vec::with_capacity(raw.cases.len());
    let mut errors = Vec::new();
    let mut names: HashMap<String, SourceLocation> = HashMap::new();
    for item in raw.cases {
        let location = at(item.referenced.line(), item.referenced.column());
        let raw_case = item.value;
        let name_at = at(
            raw_case.name.referenced.line(),
            raw_case.name.referenced.column(),
        );
        if let Some(first) = names.get(&raw_case.name.value) {
            errors.push(CaseError {
                location: name_at,
                message: format!(
                    "case `{}` is named twice in this file (first at line {})",
                    raw_case.name.value, first.line
                ),
            });
            continue;
        }
        names.insert(raw_case.name.value.clone(), location.clone());
        match check(charter, raw_case, location, &at) {
            Ok(case) => cases.push(case),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// Checks one case's names against the charter.
fn check(
    charter: &CompiledCharter,
    raw: RawCase,
    location: SourceLocation,
    at: &dyn Fn(u64, u64) -> SourceLocation,
) -> Result<Case, CaseError> {
    let here = |line: u64, column: u64, message: String| CaseError {
        location: at(line, column),
        message: format!("case `{}`: {message}", raw.name.value),
    };
    let reason = match &raw.expect.reason {
        None => None,
        Some(r) => Some(
            parse_reason(&r.value)
                .map_err(|m| here(r.referenced.line(), r.referenced.column(), m))?,
        ),
    };
    let tool = &raw.tool;
    let inventoried =
        charter.is_inventoried(&tool.value) || CompiledCharter::is_model_tool(&tool.value);
    if !inventoried && reason != Some(ExpectedReason::NotInventoried) {
        return Err(here(
            tool.referenced.line(),
            tool.referenced.column(),
            format!(
                "tool `{}` is not in the charter's inventory; the gateway refuses it before any rule, so a case about it expects `verdict: deny` and `reason: not_inventoried`",
                tool.value
            ),
        ));
    }
    if inventoried && reason == Some(ExpectedReason::NotInventoried) {
        return Err(here(
            tool.referenced.line(),
            tool.referenced.column(),
            format!(
                "tool `{}` is in the charter's inventory, so it is never refused as `not_inventoried`",
                tool.value
            ),
        ));
    }
    let args = match raw.args {
        None => serde_json::Value::Object(serde_json::Map::new()),
        Some(a) => match a.value {
            v @ serde_json::Value::Object(_) => v,
            serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
            _ => {
                return Err(here(
                    a.referenced.line(),
                    a.referenced.column(),
                    "`args` must be a mapping (the tool call's JSON object)".to_owned(),
                ));
            }
        },
    };
    if let Some(p) = &raw.principal {
        check_user(charter, Some(&p.value))
            .map_err(|e| here(p.referenced.line(), p.referenced.column(), e.to_string()))?;
    }
    let mut labels = Vec::new();
    let declared = |l: &Spanned<String>| {
        resolve_labels(charter, std::slice::from_ref(&l.value))
            .map_err(|e| here(l.referenced.line(), l.referenced.column(), e.to_string()))
    };
    for l in &raw.labels {
        labels.extend(declared(l)?);
    }
    let mut results = Vec::with_capacity(raw.results.len());
    for r in raw.results {
        let mut result_labels = Vec::new();
        for l in &r.labels {
            result_labels.extend(declared(l)?);
        }
        // INVARIANT: reading a result adds its labels to the session, as in the gateway.
        labels.extend(result_labels.iter().cloned());
        results.push(ReadResult {
            labels: result_labels,
            content: r.content,
        });
    }
    labels.sort();
    labels.dedup();
    let mut usage = HashMap::new();
    if let Some(u) = raw.usage {
        let (line, column) = (u.referenced.line(), u.referenced.column());
        for (rule, used) in u.value {
            if charter.rule(&rule).is_none() {
                return Err(here(
                    line,
                    column,
                    format!("`usage` names `{rule}`, which is no rule of the charter"),
                ));
            }
            let spend = |v: Option<Spanned<serde_json::Value>>| -> Result<Amount, CaseError> {
                match v {
                    None => Ok(Amount::default()),
                    Some(v) => Amount::from_json(&v.value).map_err(|e| {
                        here(
                            v.referenced.line(),
                            v.referenced.column(),
                            format!("spend of `{rule}`: {e}"),
                        )
                    }),
                }
            };
            let session_spend = spend(used.session_spend)?;
            let day_spend = spend(used.day_spend)?;
            // The day's count and spend include the session's, as the gateway's counters do.
            usage.insert(
                rule.clone(),
                RuleUsage {
                    session_count: used.session,
                    day_count: used.day.max(used.session),
                    session_spend,
                    day_spend: if day_spend < session_spend {
                        session_spend
                    } else {
                        day_spend
                    },
                },
            );
        }
    }
    let at_time = match &raw.at {
        None => None,
        Some(t) => Some(
            OffsetDateTime::parse(&t.value, &time::format_description::well_known::Rfc3339)
                .map_err(|e| {
                    here(
                        t.referenced.line(),
                        t.referenced.column(),
                        format!("`at` is not an RFC 3339 time: {e}"),
                    )
                })?,
        ),
    };
    let rules = match raw.expect.rules {
        None => None,
        Some(list) => {
            let mut ids = Vec::with_capacity(list.value.len());
            for id in list.value {
                if charter.rule(&id.value).is_none() {
                    return Err(here(
                        id.referenced.line(),
                        id.referenced.column(),
                        format!(
                            "`expect.rules` names `{}`, which is no rule of the charter",
                            id.value
                        ),
                    ));
                }
                ids.push(id.value);
            }
            ids.sort();
            ids.dedup();
            Some(ids)
        }
    };
    Ok(Case {
        name: raw.name.value,
        location,
        tool: raw.tool.value,
        expect: Expect {
            verdict: raw.expect.verdict,
            tier: raw.expect.tier,
            rules,
            reason,
        },
        args,
        principal: raw.principal.map(|p| p.value),
        labels,
        task: raw.task,
        instructions: raw.instructions,
        results,
        controls: Controls {
            posture: raw.posture,
            session_revoked: raw.session_revoked,
            tool_frozen: raw.tool_frozen,
        },
        usage,
        at: at_time,
    })
}

/// A reason label, or why it is none.
fn parse_reason(text: &str) -> Result<ExpectedReason, String> {
    if text == NOT_INVENTORIED {
        return Ok(ExpectedReason::NotInventoried);
    }
    serde_json::from_value::<Reason>(serde_json::Value::String(text.to_owned()))
        .map(ExpectedReason::Decided)
        .map_err(|_| {
            format!(
                "unknown reason `{text}`; expected one of: rule, default_posture, scope_exceeded, principal_authority, conservative_posture, session_revoked, tool_frozen, posture_frozen, evaluation_error, not_inventoried"
            )
        })
}

mod run;
pub use run::run;

#[cfg(test)]
mod tests;
