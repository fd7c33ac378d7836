//! What `show` and `list` print about issue 13's additions: earlier refusals of the same
//! action, reversed denials, and where the judged argument values were found.

use serde::Deserialize;
use serde_json::Value;

use super::VoteView;

/// An earlier refusal of the same action.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct EarlierView {
    pub(super) id: String,
    pub(super) status: String,
    pub(super) at: String,
}

/// Where one judged argument value was found.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ProvenanceView {
    rule: String,
    argument: String,
    value: String,
    trusted: Option<Value>,
    found: Vec<FoundView>,
    incomplete: bool,
}

/// A part of a value found in untrusted content.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FoundView {
    part: String,
    seq: u64,
    labels: Vec<String>,
}

/// A reversed denial.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ReversalView {
    pub(super) denial: VoteView,
    pub(super) by: VoteView,
}

/// A trusted source as a phrase (`the task`, `instruction 12`, `approval A (iban)`).
fn trusted_phrase(t: &Value) -> String {
    match t.get("kind").and_then(Value::as_str) {
        Some("task") => "the task".to_owned(),
        Some("instruction") => match t.get("seq").and_then(Value::as_u64) {
            Some(seq) => format!("instruction (ledger record {seq})"),
            None => "an instruction".to_owned(),
        },
        Some("approval") => format!(
            "approval {} ({})",
            t.get("approval").and_then(Value::as_str).unwrap_or("?"),
            t.get("argument").and_then(Value::as_str).unwrap_or("?")
        ),
        _ => t.to_string(),
    }
}

/// One provenance line: `iban = "NL…" (rule r): found in untrusted content: …`.
pub(super) fn provenance_line(p: &ProvenanceView) -> String {
    let from = match (&p.trusted, p.found.is_empty()) {
        (Some(t), _) => format!("stated in {}", trusted_phrase(t)),
        (None, false) => {
            let found: Vec<String> = p
                .found
                .iter()
                .map(|f| format!("{:?} in record {} ({})", f.part, f.seq, f.labels.join(", ")))
                .collect();
            format!("found in untrusted content: {}", found.join("; "))
        }
        (None, true) => "stated nowhere, found nowhere".to_owned(),
    };
    let incomplete = if p.incomplete {
        " [index incomplete]"
    } else {
        ""
    };
    format!(
        "{} = {} (rule {}): {from}{incomplete}",
        p.argument,
        Value::from(p.value.as_str()),
        p.rule
    )
}
