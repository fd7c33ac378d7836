//! What a forwarded action's upstream answer is recorded as ([`ActionOutcome`]), and the
//! answer relayed to the agent, in one pass over the answer as JSON:
//!
//! - the answer is written as JSON once; the gateway's secrets are replaced in it, and only
//!   when one was replaced is the relayed answer read back from the redacted JSON (one that
//!   cannot be read back is withheld, never relayed unredacted);
//! - one walk of the (redacted) JSON gives both its size (`size_bytes`, exactly the length of
//!   its compact JSON text, without writing it) and the text the data sources' label patterns
//!   are matched on (every string, joined by newlines);
//! - the content parts are then moved out of it, not copied.

use std::fmt::Write as _;

use rmcp::ErrorData as McpError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use warden_core::gate::{ActionOutcome, ContentPart};
use warden_core::redact::Secrets;

/// The outcome of an upstream answer `r` (redacted of `secrets`, with `status(&r)`), and the
/// answer to relay: `r` itself when no secret was in it, else `r` read back from its redacted
/// JSON. An answer that could not be redacted is an error: it is withheld.
pub(crate) fn settle_answer<T: Serialize + DeserializeOwned>(
    secrets: &Secrets,
    r: T,
    status: impl Fn(&T) -> &'static str,
) -> Result<(ActionOutcome, T), McpError> {
    let withheld = || {
        McpError::internal_error(
            "the upstream answer could not be redacted, so it is withheld",
            None,
        )
    };
    let mut v = match serde_json::to_value(&r) {
        Ok(v) => v,
        // Not writable as JSON: with secrets to redact, it cannot be checked for them.
        Err(_) if !secrets.is_empty() => return Err(withheld()),
        Err(_) => Value::Null,
    };
    let r = if secrets.redact_json(&mut v) {
        T::deserialize(&v).map_err(|_| withheld())?
    } else {
        r
    };
    let mut text = String::new();
    let size_bytes = usize::try_from(walk(&v, Some(&mut text))).unwrap_or(usize::MAX);
    let outcome = ActionOutcome {
        status: status(&r),
        size_bytes,
        error: None,
        text,
        content: content_parts(v),
    };
    Ok((outcome, r))
}

/// The length in bytes of `v` written as compact JSON (what `serde_json::to_vec` writes),
/// without writing it.
pub(crate) fn json_size(v: &Value) -> u64 {
    walk(v, None)
}

/// The compact JSON size of `v`; every string in it (object keys excepted) is appended to
/// `text`, each followed by a newline.
fn walk(v: &Value, mut text: Option<&mut String>) -> u64 {
    match v {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => {
            let mut counter = FmtCounter(0);
            // Counting cannot fail.
            let _ = write!(counter, "{n}");
            counter.0
        }
        Value::String(s) => {
            if let Some(text) = text {
                text.push_str(s);
                text.push('\n');
            }
            string_size(s)
        }
        Value::Array(items) => {
            let commas = items.len().saturating_sub(1) as u64;
            items.iter().fold(2 + commas, |size, item| {
                size.saturating_add(walk(item, text.as_deref_mut()))
            })
        }
        Value::Object(map) => {
            let commas = map.len().saturating_sub(1) as u64;
            map.iter().fold(2 + commas, |size, (key, item)| {
                size.saturating_add(string_size(key) + 1)
                    .saturating_add(walk(item, text.as_deref_mut()))
            })
        }
    }
}

/// The length of `s` as a JSON string, quotes included, escaped as `serde_json` escapes:
/// `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, and `\u00XX` for the other control characters.
fn string_size(s: &str) -> u64 {
    s.bytes().fold(2, |size, b| {
        size + match b {
            b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
            0..0x20 => 6,
            _ => 1,
        }
    })
}

/// Counts what is written to it.
struct FmtCounter(u64);

impl std::fmt::Write for FmtCounter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = self.0.saturating_add(s.len() as u64);
        Ok(())
    }
}

/// What a result carries, for the ledger: a tool result's `content` parts (text as text; an
/// image, audio or embedded resource by its type and size), a resource's `contents` (text as
/// text, a blob by its encoded size). The texts are moved out of `v`.
fn content_parts(v: Value) -> Vec<ContentPart> {
    let Value::Object(mut map) = v else {
        return Vec::new();
    };
    let parts = match map.remove("content").or_else(|| map.remove("contents")) {
        Some(Value::Array(parts)) => parts,
        _ => Vec::new(),
    };
    parts.into_iter().map(content_part).collect()
}

fn content_part(mut part: Value) -> ContentPart {
    if let Some(Value::String(text)) = part.get_mut("text") {
        return ContentPart::Text(std::mem::take(text));
    }
    match part.get("blob").and_then(Value::as_str) {
        Some(blob) => ContentPart::Other {
            kind: "blob".to_owned(),
            bytes: blob.len(),
        },
        None => ContentPart::Other {
            kind: part
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
            bytes: usize::try_from(json_size(&part)).unwrap_or(usize::MAX),
        },
    }
}

#[cfg(test)]
mod tests;
