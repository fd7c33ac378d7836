//! W3C Trace Context (`traceparent`, `tracestate`) as an agent sends it: validated, bounded,
//! and either kept whole or ignored.
//!
//! The agent's trace context reaches warden in the HTTP headers of `/mcp`, `/v1/decide` and
//! the model endpoints, or in an MCP request's `params._meta`. It is hostile input: only a
//! `traceparent` of version `00` with a 32-hex-digit trace id and a 16-hex-digit parent id
//! (lowercase, neither all zeros) and two hex digits of flags is kept; anything else is
//! ignored, never an error. A `tracestate` is kept only beside a valid `traceparent`, at
//! most [`MAX_TRACESTATE_BYTES`] long and in the W3C list syntax (at most 32 `key=value`
//! members); otherwise it is dropped. What is kept is recorded with the attempt or the model
//! request as `"trace": {"traceparent": …, "tracestate": …}`, and read back by the
//! OpenTelemetry exporter, so warden's spans join the agent's trace.

use serde_json::{Map, Value};

/// The longest `tracestate` kept, in bytes (the W3C limit).
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// The most list members a `tracestate` may hold (the W3C limit).
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A valid trace context: a `traceparent` in its one accepted form and, when it was valid
/// too, the `tracestate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceContext {
    /// The trace context of `traceparent` (and `tracestate`, kept only when valid), or `None`
    /// when `traceparent` is absent or invalid. Never fails otherwise.
    pub fn parse(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<TraceContext> {
        let traceparent = traceparent?;
        if !valid_traceparent(traceparent) {
            return None;
        }
        Some(TraceContext {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate
                .filter(|s| valid_tracestate(s))
                .map(str::to_owned),
        })
    }

    /// The trace context of HTTP headers: every value of `traceparent` and of `tracestate`
    /// the request carried (as bytes: a value that is not UTF-8 is invalid). A header sent
    /// more than once is ignored (which one the agent meant is ambiguous).
    pub fn from_headers<'a>(
        traceparent: impl IntoIterator<Item = &'a [u8]>,
        tracestate: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<TraceContext> {
        let single =
            |values: &mut dyn Iterator<Item = &'a [u8]>| match (values.next(), values.next()) {
                (Some(v), None) => std::str::from_utf8(v).ok(),
                _ => None,
            };
        let parent = single(&mut traceparent.into_iter())?;
        let state = single(&mut tracestate.into_iter());
        TraceContext::parse(Some(parent), state)
    }

    /// The trace context of an MCP request's `_meta` object: its `traceparent` and
    /// `tracestate` members, when they are strings.
    pub fn from_meta(meta: &Map<String, Value>) -> Option<TraceContext> {
        let s = |key: &str| meta.get(key).and_then(Value::as_str);
        TraceContext::parse(s("traceparent"), s("tracestate"))
    }

    /// The trace context recorded in a record's payload (`payload.trace`), validated again:
    /// a ledger written by another program is input too.
    pub fn from_payload(payload: &Value) -> Option<TraceContext> {
        payload
            .get("trace")
            .and_then(Value::as_object)
            .and_then(TraceContext::from_meta)
    }

    /// The `traceparent`, as the agent sent it.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate`, when one was sent and valid.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The trace id (16 bytes).
    pub fn trace_id(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        decode_hex(self.traceparent.get(3..35).unwrap_or_default(), &mut out);
        out
    }

    /// The parent span id (8 bytes).
    pub fn parent_id(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        decode_hex(self.traceparent.get(36..52).unwrap_or_default(), &mut out);
        out
    }

    /// The trace flags (the low bit: sampled).
    pub fn flags(&self) -> u8 {
        let mut out = [0u8; 1];
        decode_hex(self.traceparent.get(53..55).unwrap_or_default(), &mut out);
        out.first().copied().unwrap_or_default()
    }

    /// The context as recorded: `{"traceparent": …, "tracestate": …}` (no `tracestate` member
    /// when there is none).
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert(
            "traceparent".to_owned(),
            Value::String(self.traceparent.clone()),
        );
        if let Some(state) = &self.tracestate {
            obj.insert("tracestate".to_owned(), Value::String(state.clone()));
        }
        Value::Object(obj)
    }

    /// Adds the context to a record's payload as its `trace` member (when the payload is an
    /// object; otherwise nothing).
    pub fn record_in(&self, payload: &mut Value) {
        if let Some(obj) = payload.as_object_mut() {
            obj.insert("trace".to_owned(), self.to_json());
        }
    }
}

/// Whether `s` is `00-<32 lowercase hex, not all 0>-<16 lowercase hex, not all 0>-<2 hex>`.
fn valid_traceparent(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 55 {
        return false;
    }
    let lower_hex = |c: &u8| c.is_ascii_digit() || (b'a'..=b'f').contains(c);
    let field = |from: usize, to: usize| b.get(from..to).unwrap_or_default();
    let dashes = [2, 35, 52].iter().all(|&i| b.get(i) == Some(&b'-'));
    let (version, trace, parent, flags) = (field(0, 2), field(3, 35), field(36, 52), field(53, 55));
    dashes
        && version == b"00"
        && [trace, parent, flags]
            .iter()
            .all(|f| f.iter().all(lower_hex))
        && trace.iter().any(|&c| c != b'0')
        && parent.iter().any(|&c| c != b'0')
}

/// Whether `s` is a W3C `tracestate` list of at most 32 members and 512 bytes.
fn valid_tracestate(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_TRACESTATE_BYTES {
        return false;
    }
    let mut members = 0usize;
    for member in s.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            // Empty list members are allowed by the grammar.
            continue;
        }
        members += 1;
        if members > MAX_TRACESTATE_MEMBERS {
            return false;
        }
        let Some((key, value)) = member.split_once('=') else {
            return false;
        };
        if !valid_key(key) || !valid_value(value) {
            return false;
        }
    }
    members > 0
}

/// `simple-key` or `tenant@system`: lowercase letters, digits, `_-*/`, starting with a
/// lowercase letter (or a digit for a tenant id), at most 256 characters.
fn valid_key(key: &str) -> bool {
    let part = |s: &str, max: usize, digit_first: bool| {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || (digit_first && c.is_ascii_digit()));
        first_ok
            && b.len() <= max
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/".contains(c))
    };
    match key.split_once('@') {
        None => part(key, 256, false),
        Some((tenant, system)) => part(tenant, 241, true) && part(system, 14, false),
    }
}

/// 1–256 printable ASCII characters other than `,` and `=`, not ending in a space.
fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.last() != Some(&b' ')
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

/// Decodes lowercase hex `s` into `out` (callers pass validated text of the right length).
fn decode_hex(s: &str, out: &mut [u8]) {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => 0,
    };
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        if let [hi, lo] = pair {
            *o = (nibble(*hi) << 4) | nibble(*lo);
        }
    }
}

#[cfg(test)]
mod tests;
