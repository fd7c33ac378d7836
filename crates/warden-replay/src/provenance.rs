//! Reading the untrusted content of recorded results, as the gateway's start-up rebuild of a
//! session's index does (`warden-gateway`'s `startup/provenance_rebuild.rs`; the same rules,
//! kept beside the replay so that it depends on no gateway code).

use std::sync::Arc;

use serde_json::Value;

/// The labels of a recorded list (`labels`, `untrusted`).
pub(crate) fn label_list(v: Option<&Value>) -> Vec<Arc<str>> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(Arc::from).collect())
        .unwrap_or_default()
}

/// The labels of `labels` that `untrusted` (the candidate's untrusted labels) holds, sorted,
/// each once.
pub(crate) fn untrusted_of(untrusted: &[Arc<str>], labels: &[Arc<str>]) -> Vec<Arc<str>> {
    let mut v: Vec<Arc<str>> = labels
        .iter()
        .filter(|l| untrusted.contains(l))
        .cloned()
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The text of a recorded result's content (its text parts, one per line), and whether it is
/// the whole content the agent read: not cut, nothing redacted, every part text, nothing
/// indexed beyond it. Content that is not whole makes the index incomplete (fail closed).
pub(crate) fn recorded_text(payload: &Value) -> (String, bool) {
    let mut complete = payload.get("truncated").is_none()
        && payload.get("indexed_beyond_content").is_none()
        && payload
            .get("redacted")
            .and_then(Value::as_u64)
            .is_none_or(|n| n == 0);
    let mut text = String::new();
    let parts = payload.get("content").and_then(Value::as_array);
    for part in parts.into_iter().flatten() {
        match (
            part.get("type").and_then(Value::as_str),
            part.get("text").and_then(Value::as_str),
        ) {
            (Some("text"), Some(t)) => {
                text.push_str(t);
                text.push('\n');
            }
            _ => complete = false,
        }
    }
    (text, complete)
}
