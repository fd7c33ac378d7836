//! The spans the exporter builds from ledger records, before they are encoded as OTLP.

use warden_core::TraceContext;

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    List(Vec<String>),
}

impl From<&str> for Attr {
    fn from(s: &str) -> Attr {
        Attr::Str(s.to_owned())
    }
}

impl From<String> for Attr {
    fn from(s: String) -> Attr {
        Attr::Str(s)
    }
}

impl From<i64> for Attr {
    fn from(n: i64) -> Attr {
        Attr::Int(n)
    }
}

impl From<u64> for Attr {
    fn from(n: u64) -> Attr {
        Attr::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Attr {
    fn from(b: bool) -> Attr {
        Attr::Bool(b)
    }
}

/// Attributes, in the order they were set (a key set twice keeps its last value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attrs(pub Vec<(String, Attr)>);

impl Attrs {
    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<Attr>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Attr> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The string value of `key`, if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Attr::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// What a span is, in OTLP's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Work inside warden (the session root, alerts and controls).
    Internal,
    /// A call warden makes on the agent's behalf (a model call, a tool call).
    Client,
}

/// A timed event on a span (an approval, an alert, a control).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's name (`warden.approval.granted`, ...).
    pub name: String,
    /// When, in nanoseconds since the Unix epoch (the record's ledger time).
    pub time_ns: u64,
    /// What the record said.
    pub attrs: Attrs,
}

/// A span ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace it belongs to.
    pub trace_id: [u8; 16],
    /// Its id.
    pub span_id: [u8; 8],
    /// Its parent, if any (the session root, or the agent's own span).
    pub parent: Option<[u8; 8]>,
    /// The agent's `tracestate`, when the span continues the agent's trace.
    pub trace_state: Option<String>,
    /// `chat {model}`, `execute_tool {tool}`, `invoke_agent {agent}`, ...
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// End, in nanoseconds since the Unix epoch (never before the start).
    pub end_ns: u64,
    /// Its attributes.
    pub attrs: Attrs,
    /// Its events.
    pub events: Vec<Event>,
    /// `Some(message)` when it ended in an error (a refusal, a failure).
    pub error: Option<String>,
}

/// The trace id of a session's trace: the first 16 bytes of the BLAKE3 hash of its id, so the
/// same session is the same trace across restarts and processes.
pub fn session_trace_id(session: &str) -> [u8; 16] {
    first_bytes(&["trace", session])
}

/// The span id of a session's root span (`invoke_agent`).
pub fn session_root_id(session: &str) -> [u8; 8] {
    first_bytes(&["root", session])
}

/// A span id derived from what identifies it (an action id, a call id, a record's sequence).
pub fn span_id(parts: &[&str]) -> [u8; 8] {
    first_bytes(parts)
}

fn first_bytes<const N: usize>(parts: &[&str]) -> [u8; N] {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let mut out = [0u8; N];
    let hash = h.finalize();
    for (o, b) in out.iter_mut().zip(hash.as_bytes()) {
        *o = *b;
    }
    // An id of all zeros is invalid in OTLP; a hash that starts with N zero bytes is
    // astronomically unlikely, but the id stays valid whatever happens.
    if out.iter().all(|&b| b == 0)
        && let Some(last) = out.last_mut()
    {
        *last = 1;
    }
    out
}

/// Where a span hangs: the agent's trace (when it sent a valid `traceparent`), else the
/// session's trace under its root span, else a trace of its own (a record without session).
pub fn placement(
    trace: Option<&TraceContext>,
    session: Option<&str>,
    own: &[&str],
) -> ([u8; 16], Option<[u8; 8]>, Option<String>) {
    match (trace, session) {
        (Some(t), _) => (
            t.trace_id(),
            Some(t.parent_id()),
            t.tracestate().map(str::to_owned),
        ),
        (None, Some(s)) => (session_trace_id(s), Some(session_root_id(s)), None),
        (None, None) => (first_bytes(own), None, None),
    }
}
