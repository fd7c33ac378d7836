//! Canonical JSON (one text for one JSON value, so equal payloads hash equally) and hex:
//! the encodings the ledger hashes and the approval store keys by.

use std::fmt::Write as _;

use serde_json::Value;

/// Writes `value` as canonical JSON.
///
/// The rules, which the ledger's hashes depend on:
/// - object keys are sorted by their UTF-8 bytes (which is Unicode code point order; RFC 8785
///   sorts by UTF-16 code units instead, which differs only for keys that mix characters above
///   U+FFFF with characters in U+E000..U+FFFF);
/// - no whitespace outside strings;
/// - numbers are written as `serde_json` writes them (integers in full, floats in the shortest
///   form that reads back to the same `f64`);
/// - strings use the minimal escaping `serde_json` uses: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
///   `\t`, `\u00XX` for the other control characters below U+0020, and everything else
///   (including `/`, U+007F and non-ASCII) as is.
///
/// The output is what `serde_json::to_string` prints for a value whose maps are sorted, but it
/// does not depend on the `preserve_order` feature of `serde_json` being off anywhere in the
/// build.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // Writing to a `String` cannot fail.
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Writes `s` as a JSON string with minimal escaping.
pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if c < ' ' => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push_str(escape);
        }
        start = i + c.len_utf8();
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}
