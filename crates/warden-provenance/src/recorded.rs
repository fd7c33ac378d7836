//! What a session's index is rebuilt from: the results recorded in the ledger. Shared by the
//! gateway's start-up rebuild and `warden replay`, so both read a recorded result the same way.

use std::sync::Arc;

use serde_json::Value;

/// The labels of a recorded list (`labels`, `untrusted`); anything but strings is skipped.
pub fn label_list(v: Option<&Value>) -> Vec<Arc<str>> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(Arc::from).collect())
        .unwrap_or_default()
}

/// The labels of `labels` that `untrusted` (a charter's untrusted labels) holds, sorted, each
/// once.
pub fn untrusted_labels(untrusted: &[Arc<str>], labels: &[Arc<str>]) -> Vec<Arc<str>> {
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
pub fn recorded_text(payload: &Value) -> (String, bool) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recorded_content_that_was_cut_redacted_or_not_text_is_not_complete() {
        let whole =
            json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]});
        assert_eq!(recorded_text(&whole), ("a\nb\n".to_owned(), true));
        let cut =
            json!({"content": [{"type": "text", "text": "a"}], "truncated": {"original_bytes": 9}});
        assert!(!recorded_text(&cut).1);
        let redacted = json!({"content": [{"type": "text", "text": "a"}], "redacted": 1});
        assert!(!recorded_text(&redacted).1);
        let beyond =
            json!({"content": [{"type": "text", "text": "a"}], "indexed_beyond_content": true});
        assert!(!recorded_text(&beyond).1);
        let image = json!({"content": [{"type": "image", "bytes": 10}]});
        assert!(!recorded_text(&image).1);
        assert!(recorded_text(&json!({"status": "ok"})).1);
    }

    #[test]
    fn untrusted_labels_are_the_charters_sorted_once() {
        let untrusted: Vec<Arc<str>> = vec!["web".into(), "mail".into()];
        let labels: Vec<Arc<str>> = vec!["web".into(), "pii".into(), "web".into(), "mail".into()];
        let got = untrusted_labels(&untrusted, &labels);
        assert_eq!(got, vec![Arc::<str>::from("mail"), Arc::from("web")]);
        assert_eq!(
            label_list(Some(&json!(["a", 1, "b"]))),
            vec![Arc::<str>::from("a"), Arc::from("b")]
        );
    }
}
