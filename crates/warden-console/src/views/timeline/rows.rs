//! One ledger record as a timeline row: pure, from the record (and the charter, for rule
//! locations) to what the template shows. Every value is text the template escapes; long
//! values are clipped with the whole kept for `<details>`.

use std::collections::HashMap;

use serde_json::Value;
use warden_audit::Record;
use warden_charter::CompiledCharter;

pub use super::fields::Field;
use super::fields::{field, pick, str_at, text_of};

/// A rule that determined a decision, with where it is written (`file:line:col`, or `?` when
/// the record names only the rule and the charter in force no longer has it).
#[derive(Debug, Clone)]
pub struct RuleLine {
    /// The rule's id.
    pub id: String,
    /// Its tier.
    pub tier: String,
    /// Where it is written.
    pub location: String,
}

/// A link of a row: evidence of an alert, the intent an attempt came from.
#[derive(Debug, Clone)]
pub struct Link {
    /// Where it goes.
    pub href: String,
    /// What it says.
    pub text: String,
}

/// One record of a session's timeline.
#[derive(Debug, Clone)]
pub struct Row {
    /// The record's sequence number (the row's anchor is `seq-N`).
    pub seq: u64,
    /// The record's time (UTC, to the millisecond).
    pub time: String,
    /// The record's kind.
    pub kind: String,
    /// The kind's family, for the stylesheet (`model`, `action`, `decision`, ...).
    pub class: &'static str,
    /// One line saying what happened.
    pub title: String,
    /// The details.
    pub fields: Vec<Field>,
    /// The determining rules of a decision.
    pub rules: Vec<RuleLine>,
    /// Links to other records.
    pub links: Vec<Link>,
    /// For an attempt: it matched no intent of the model (in a session whose model calls go
    /// through the proxy).
    pub no_intent: bool,
}

/// How an attempt relates to the model's intents: the intent it came from, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentMatch {
    /// The intent (`model_intent` record) the attempt matched.
    From(u64),
    /// The session's model proposed no pending call of this tool.
    NoIntent,
}

/// The time as shown: `YYYY-MM-DD HH:MM:SS.mmm` UTC.
pub(crate) fn show_time(record: &Record) -> String {
    let t = record.time;
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The text of a message's `content`: a string, or the `text` of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.clone()),
                other => other
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| other.get("type").map(|t| format!("[{}]", text_of(t)))),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A model request's prompt, one `role: text` line per message (the Anthropic `system` first).
pub(crate) fn prompt_text(request: &Value) -> String {
    let mut lines = Vec::new();
    if let Some(system) = request.get("system").filter(|s| !s.is_null()) {
        lines.push(format!("system: {}", content_text(system)));
    }
    if let Some(messages) = request.get("messages").and_then(Value::as_array) {
        for m in messages {
            lines.push(format!(
                "{}: {}",
                str_at(m, "role"),
                content_text(m.get("content").unwrap_or(&Value::Null))
            ));
        }
    }
    lines.join("\n")
}

/// The determining rules of a decision: `RuleRef` objects as recorded, or bare rule ids
/// looked up in `charter`.
fn rule_lines(rules: Option<&Value>, charter: Option<&CompiledCharter>) -> Vec<RuleLine> {
    let Some(rules) = rules.and_then(Value::as_array) else {
        return Vec::new();
    };
    rules
        .iter()
        .map(|r| {
            let id = match r {
                Value::String(s) => s.clone(),
                other => str_at(other, "id").to_owned(),
            };
            let recorded = r.get("location").map(|l| {
                format!(
                    "{}:{}:{}",
                    str_at(l, "file"),
                    l.get("line").and_then(Value::as_u64).unwrap_or(0),
                    l.get("column").and_then(Value::as_u64).unwrap_or(0)
                )
            });
            let known = charter.and_then(|c| c.rules.iter().find(|x| *x.id == *id));
            RuleLine {
                tier: r
                    .get("tier")
                    .map(text_of)
                    .or_else(|| known.map(|k| k.tier.to_string()))
                    .unwrap_or_default(),
                location: recorded
                    .or_else(|| known.map(|k| k.location().to_string()))
                    .unwrap_or_else(|| "?".to_owned()),
                id,
            }
        })
        .collect()
}

/// The result's captured content as text: text parts as they are, others as `[type, N bytes]`.
fn result_text(content: &Value) -> String {
    match content {
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("text").and_then(Value::as_str) {
                Some(t) => t.to_owned(),
                None => format!(
                    "[{} {} bytes]",
                    str_at(p, "type"),
                    p.get("bytes").and_then(Value::as_u64).unwrap_or(0)
                ),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => text_of(other),
    }
}

fn evidence_links(p: &Value) -> Vec<Link> {
    p.get("evidence")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(Value::as_u64)
                .take(64)
                .map(|seq| Link {
                    href: format!("/ui/records/{seq}"),
                    text: format!("evidence #{seq}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The row of `record`; `charter` is the charter of the record's agent in force, when there
/// is one (rule ids the record does not locate are looked up in it). `intent` is what [`super::intents`] found for an attempt; `on_page`
/// says whether a sequence number is a row of the same page (linked as `#seq-N`) or not
/// (linked as `/ui/records/N`).
pub fn row(
    record: &Record,
    charter: Option<&CompiledCharter>,
    intent: Option<IntentMatch>,
    on_page: &dyn Fn(u64) -> bool,
) -> Row {
    let p = &record.payload;
    let kind = record.kind.as_str();
    let mut rules = Vec::new();
    let mut links = Vec::new();
    let (class, title, fields) = match kind {
        "model_requested" => (
            "model",
            format!("model request to `{}`", str_at(p, "alias")),
            {
                let mut f = vec![field(
                    "prompt",
                    &prompt_text(p.get("request").unwrap_or(&Value::Null)),
                )];
                f.extend(pick(p, &["protocol", "stream", "call"]));
                f
            },
        ),
        "model_completed" => (
            "model",
            format!(
                "model completion from `{}` ({})",
                str_at(p, "alias"),
                p.get("status").map(text_of).unwrap_or_default()
            ),
            {
                let c = p.get("completion").unwrap_or(&Value::Null);
                let mut f = vec![field("text", str_at(c, "text"))];
                f.extend(pick(c, &["finish_reason"]));
                f.extend(pick(p, &["usage", "intents", "duration_ms", "call"]));
                f
            },
        ),
        "model_intent" => (
            "intent",
            format!("the model proposes `{}`", str_at(p, "tool")),
            pick(p, &["arguments", "id", "call"]),
        ),
        "model_failed" | "model_refused" | "budget_exceeded" => (
            "refusal",
            format!("{} (`{}`)", kind.replace('_', " "), str_at(p, "alias")),
            pick(
                p,
                &[
                    "reason", "labels", "control", "per", "limit", "used", "attempts",
                ],
            ),
        ),
        "action_attempted" => {
            match intent {
                Some(IntentMatch::From(seq)) => links.push(Link {
                    href: if on_page(seq) {
                        format!("#seq-{seq}")
                    } else {
                        format!("/ui/records/{seq}")
                    },
                    text: format!("from intent #{seq}"),
                }),
                Some(IntentMatch::NoIntent) | None => {}
            }
            (
                "action",
                format!("attempt `{}` via {}", str_at(p, "tool"), str_at(p, "via")),
                pick(
                    p,
                    &[
                        "arguments",
                        "resolved_arguments",
                        "called_as",
                        "action",
                        "trace",
                    ],
                ),
            )
        }
        "action_decided" => {
            let d = p.get("decision").unwrap_or(&Value::Null);
            rules = rule_lines(d.get("rules"), charter);
            let mut f = pick(d, &["reason", "detail", "posture", "errors"]);
            f.extend(super::chain::delegated_fields(p));
            f.extend(pick(p, &["control", "approval", "action"]));
            (
                "decision",
                format!(
                    "decided: {} (tier {})",
                    d.get("verdict").map(text_of).unwrap_or_default(),
                    d.get("tier").map(text_of).unwrap_or_default()
                ),
                f,
            )
        }
        "shadow_decided" => {
            let d = p.get("decision").unwrap_or(&Value::Null);
            rules = rule_lines(d.get("rules"), charter);
            let mut f = pick(p, &["diverged", "live"]);
            f.extend(pick(d, &["reason", "detail"]));
            f.extend(pick(p, &["charter", "action"]));
            (
                "decision",
                format!(
                    "shadow charter would decide: {} (tier {}), not enforced",
                    d.get("verdict").map(text_of).unwrap_or_default(),
                    d.get("tier").map(text_of).unwrap_or_default()
                ),
                f,
            )
        }
        "action_forwarded" => (
            "action",
            format!("forwarded `{}`", str_at(p, "tool")),
            pick(p, &["approval", "action"]),
        ),
        "action_result" => {
            let mut f = vec![field(
                "content",
                &result_text(p.get("content").unwrap_or(&Value::Null)),
            )];
            f.extend(pick(
                p,
                &[
                    "size_bytes",
                    "error",
                    "reason",
                    "labels",
                    "untrusted",
                    "truncated",
                    "redacted",
                    "action",
                ],
            ));
            (
                "result",
                format!(
                    "result: {}",
                    p.get("status").map(text_of).unwrap_or_default()
                ),
                f,
            )
        }
        "labels_added" => (
            "label",
            "labels attached".to_owned(),
            pick(p, &["labels", "action"]),
        ),
        "trust_added" => (
            "trust",
            "trusted text added".to_owned(),
            pick(p, &["text", "source", "by"]),
        ),
        "approval_requested" => {
            rules = rule_lines(p.get("rules"), charter);
            let mut f = pick(
                p,
                &["id", "why", "approvers", "quorum", "deadline", "action"],
            );
            f.extend(super::chain::delegated_fields(p));
            (
                "approval",
                format!("approval requested for `{}`", str_at(p, "tool")),
                f,
            )
        }
        "approval_granted" | "approval_denied" | "approval_reversed" => (
            "approval",
            format!(
                "{} by {}",
                kind.trim_start_matches("approval_"),
                str_at(p, "approver")
            ),
            pick(
                p,
                &[
                    "reason",
                    "channel",
                    "credential",
                    "approvals",
                    "quorum",
                    "granted",
                    "approval",
                ],
            ),
        ),
        "approval_redecided" => (
            "approval",
            format!(
                "approval re-decided under a new charter: {}",
                str_at(p, "outcome")
            ),
            pick(
                p,
                &[
                    "approval", "was", "now", "why", "charter", "previous", "action",
                ],
            ),
        ),
        "approval_awaited"
        | "approval_used"
        | "approval_timed_out"
        | "approval_unavailable"
        | "approval_refused"
        | "approval_notified" => (
            "approval",
            kind.replace('_', " "),
            pick(
                p,
                &[
                    "approval", "why", "was", "refusal", "message", "status", "target", "action",
                ],
            ),
        ),
        "control_set" | "observer_alert" | "control_lifted" | "control_expired" => {
            links = evidence_links(p);
            (
                "alert",
                format!(
                    "{}: {}",
                    kind.replace('_', " "),
                    p.get("action").map(text_of).unwrap_or_default()
                ),
                pick(
                    p,
                    &[
                        "reason",
                        "scope",
                        "target",
                        "tool",
                        "detector",
                        "expires_at",
                        "lift_reason",
                        "id",
                    ],
                ),
            )
        }
        other => super::chain::delegation_row(other, p).unwrap_or_else(|| {
            (
                "other",
                kind.replace('_', " "),
                vec![field("payload", &p.to_string())],
            )
        }),
    };
    Row {
        seq: record.seq,
        time: show_time(record),
        kind: kind.to_owned(),
        class,
        title,
        fields,
        rules,
        links,
        no_intent: intent == Some(IntentMatch::NoIntent),
    }
}

/// Pending intents kept per session while matching (as the observer keeps them).
const MAX_PENDING: usize = 64;

/// Matches attempts to the model's intents over `records` (oldest first; those of other
/// kinds are skipped), the way the observer does: an attempt takes the oldest pending intent
/// of the same tool; an intent older than `window` (when the charter declares an
/// `intent_mismatch` detector) is no longer pending. An attempt with no match is
/// [`IntentMatch::NoIntent`] once the session has made a model call, unmatched otherwise.
pub fn intents<'a>(
    records: impl Iterator<Item = &'a Record>,
    window: Option<time::Duration>,
) -> HashMap<u64, IntentMatch> {
    let mut pending: std::collections::VecDeque<(u64, time::OffsetDateTime, String)> =
        std::collections::VecDeque::new();
    let mut has_model = false;
    let mut out = HashMap::new();
    for r in records {
        if let Some(w) = window {
            let since = r.time.checked_sub(w);
            while pending
                .front()
                .is_some_and(|(_, t, _)| since.is_some_and(|s| *t < s))
            {
                pending.pop_front();
            }
        }
        let p = &r.payload;
        match r.kind.as_str() {
            "model_intent" => {
                has_model = true;
                if pending.len() >= MAX_PENDING {
                    pending.pop_front();
                }
                pending.push_back((r.seq, r.time, str_at(p, "tool").to_owned()));
            }
            "model_requested" | "model_completed" => has_model = true,
            "action_attempted" => {
                let tool = str_at(p, "tool");
                let called_as = p.get("called_as").and_then(Value::as_str);
                let found = pending
                    .iter()
                    .position(|(_, _, t)| warden_core::gate::intent_names_tool(t, tool, called_as));
                match found.and_then(|i| pending.remove(i)) {
                    Some((seq, _, _)) => {
                        out.insert(r.seq, IntentMatch::From(seq));
                    }
                    None if has_model => {
                        out.insert(r.seq, IntentMatch::NoIntent);
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }
    out
}
