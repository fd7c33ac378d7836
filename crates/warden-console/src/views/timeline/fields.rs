//! The labelled values of a timeline row, clipped: shared by the rows of every record kind.

use serde_json::Value;

use crate::page::{Clip, clip};

/// Characters of a value shown before it is clipped.
pub(crate) const CLIP_CHARS: usize = 240;

/// A labelled value of a row.
#[derive(Debug, Clone)]
pub struct Field {
    /// What it is.
    pub name: String,
    /// The value, clipped.
    pub value: Clip,
}

/// A JSON value as text: a string as it is, anything else as compact JSON.
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The string at `key` of `p` (empty when absent or not a string).
pub(crate) fn str_at<'a>(p: &'a Value, key: &str) -> &'a str {
    p.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The fields `keys` of `p` that are present (and not null), in that order.
pub(crate) fn pick(p: &Value, keys: &[&str]) -> Vec<Field> {
    keys.iter()
        .filter_map(|k| {
            p.get(*k).filter(|v| !v.is_null()).map(|v| Field {
                name: (*k).to_owned(),
                value: clip(&text_of(v), CLIP_CHARS),
            })
        })
        .collect()
}

/// The field `name` with `text`, clipped.
pub(crate) fn field(name: &str, text: &str) -> Field {
    Field {
        name: name.to_owned(),
        value: clip(text, CLIP_CHARS),
    }
}
