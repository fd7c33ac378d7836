//! The delegation side of the timeline: the rows of `session_delegated` and
//! `delegation_refused`, and the chain and the charters decided under, as text, for the rows
//! of delegated decisions and approval requests.

use serde_json::Value;

use super::fields::{Field, text_of};
use crate::page::clip;

use super::fields::CLIP_CHARS;

/// A chain (`[{session, agent}]`, root first) as `agent (session) → …`; empty for none.
pub(crate) fn chain_text(chain: Option<&Value>) -> String {
    chain
        .and_then(Value::as_array)
        .map(|links| {
            links
                .iter()
                .map(|l| {
                    format!(
                        "{} ({})",
                        l.get("agent").map(text_of).unwrap_or_default(),
                        l.get("session").map(text_of).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(" → ")
        })
        .unwrap_or_default()
}

/// The charters a delegated action was decided under (`[{agent, verdict, tier, ...}]`) as
/// `agent: verdict (tier); …`; empty for none.
pub(crate) fn under_text(under: Option<&Value>) -> String {
    under
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(|u| {
                    format!(
                        "{}: {} ({})",
                        u.get("agent").map(text_of).unwrap_or_default(),
                        u.get("verdict").map(text_of).unwrap_or_default(),
                        u.get("tier").map(text_of).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// The `chain` and `under` fields of a delegated decision or request (none for a root
/// session's).
pub(crate) fn delegated_fields(p: &Value) -> Vec<Field> {
    let mut f = Vec::new();
    let chain = chain_text(p.get("chain"));
    if !chain.is_empty() {
        f.push(named("chain", &chain));
    }
    match p.get("under") {
        Some(Value::String(agent)) => f.push(named("asked under", agent)),
        Some(under @ Value::Array(_)) => f.push(named("decided under", &under_text(Some(under)))),
        _ => {}
    }
    f
}

/// The row of a delegation record: (class, title, fields); `None` for another kind.
pub(crate) fn delegation_row(kind: &str, p: &Value) -> Option<(&'static str, String, Vec<Field>)> {
    let s = |k: &str| p.get(k).map(text_of).unwrap_or_default();
    match kind {
        "session_delegated" => {
            let mut f = vec![
                named("by", &format!("{} (session {})", s("by"), s("parent"))),
                named("chain", &chain_text(p.get("chain"))),
            ];
            for k in ["principal", "depth", "via", "task", "expires_at"] {
                if p.get(k).is_some() {
                    f.push(named(k, &s(k)));
                }
            }
            Some((
                "session",
                format!("delegated by `{}` to `{}`", s("by"), s("agent")),
                f,
            ))
        }
        "delegation_refused" => {
            let f = vec![
                named("refusal", &s("refusal")),
                named("reason", &s("reason")),
                named("chain", &chain_text(p.get("chain"))),
                named("via", &s("via")),
            ];
            Some((
                "refusal",
                format!(
                    "delegation by `{}` to `{}` refused ({})",
                    s("by"),
                    s("agent"),
                    s("refusal")
                ),
                f,
            ))
        }
        _ => None,
    }
}

fn named(name: &str, text: &str) -> Field {
    Field {
        name: name.to_owned(),
        value: clip(text, CLIP_CHARS),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_delegation_reads_as_who_delegated_to_whom_with_the_chain() {
        let p = json!({
            "session": "c1", "parent": "p1", "agent": "helper", "by": "boss",
            "principal": "alice", "chain": [{ "session": "p1", "agent": "boss" }],
            "depth": 1, "via": "api", "task": "help", "expires_at": "2026-12-07T01:00:00Z"
        });
        let (class, title, fields) = delegation_row("session_delegated", &p).unwrap();
        assert_eq!(class, "session");
        assert_eq!(title, "delegated by `boss` to `helper`");
        let chain = fields.iter().find(|f| f.name == "chain").unwrap();
        assert_eq!(chain.value.head, "boss (p1)");
        let p = json!({ "agent": "third", "by": "helper", "refusal": "not_permitted",
            "reason": "no", "via": "mcp",
            "chain": [{ "session": "p1", "agent": "boss" }, { "session": "c1", "agent": "helper" }] });
        let (class, title, fields) = delegation_row("delegation_refused", &p).unwrap();
        assert_eq!(class, "refusal");
        assert_eq!(
            title,
            "delegation by `helper` to `third` refused (not_permitted)"
        );
        assert_eq!(fields[2].value.head, "boss (p1) → helper (c1)");
        assert!(delegation_row("action_decided", &p).is_none());
    }

    #[test]
    fn a_delegated_decision_shows_its_chain_and_the_charters_it_was_decided_under() {
        let p = json!({ "chain": [{ "session": "p1", "agent": "boss" }],
            "under": [{ "agent": "helper", "verdict": "allow", "tier": "autonomous" },
                      { "agent": "boss", "verdict": "deny", "tier": "prohibited" }] });
        let f = delegated_fields(&p);
        assert_eq!(f[0].value.head, "boss (p1)");
        assert_eq!(f[1].name, "decided under");
        assert_eq!(
            f[1].value.head,
            "helper: allow (autonomous); boss: deny (prohibited)"
        );
        assert!(delegated_fields(&json!({ "decision": {} })).is_empty());
        let asked = delegated_fields(&json!({ "under": "boss" }));
        assert_eq!(asked[0].name, "asked under");
    }
}
