//! Redaction of the secrets the gateway holds (provider API keys, upstream credentials,
//! webhook URLs): each occurrence in text relayed to an agent or recorded in the ledger is
//! replaced by [`REDACTED`].
//!
//! [`Secrets`] is built once at start-up (one Aho-Corasick automaton over every secret) and
//! shared. [`StreamRedactor`] redacts a byte stream chunk by chunk, holding back the last
//! `longest secret - 1` bytes of each chunk so that a secret split across two chunks is still
//! found. Secrets shorter than [`MIN_SECRET_BYTES`] are not redacted: they would match ordinary
//! text (a provider key or a webhook URL is far longer).

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::Value;

use crate::record::{NewRecord, RecordFuture, Recorder};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";
/// Shorter secrets are not redacted (they would match ordinary text).
pub const MIN_SECRET_BYTES: usize = 8;

/// The configured secrets, ready to redact with. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Secrets {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    matcher: AhoCorasick,
    longest: usize,
    count: usize,
    /// Whether a secret holds a newline (else no secret spans one, and a stream is released
    /// up to its last newline at once).
    multiline: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values: only how many there are.
        f.debug_struct("Secrets")
            .field("count", &self.inner.as_ref().map_or(0, |i| i.count))
            .finish()
    }
}

impl Secrets {
    /// The secrets among `values` that are at least [`MIN_SECRET_BYTES`] long (duplicates
    /// once). Leftmost-longest matching: when one secret contains another, the longer one is
    /// replaced whole. Fails only for a set of secrets too large for the automaton.
    pub fn new<I, S>(values: I) -> Result<Secrets, SecretsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<String> = values
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .filter(|s| s.len() >= MIN_SECRET_BYTES)
            .collect();
        patterns.sort_unstable();
        patterns.dedup();
        let longest = patterns.iter().map(String::len).max().unwrap_or(0);
        let count = patterns.len();
        let multiline = patterns.iter().any(|p| p.contains('\n'));
        if patterns.is_empty() {
            return Ok(Secrets::default());
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .map_err(SecretsError)?;
        Ok(Secrets {
            inner: Some(Arc::new(Inner {
                matcher,
                longest,
                count,
                multiline,
            })),
        })
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// `text` with every secret replaced.
    pub fn redact_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.inner {
            Some(i) if i.matcher.is_match(text) => {
                Cow::Owned(i.matcher.replace_all(text, &vec![REDACTED; i.count]))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// `bytes` with every secret replaced.
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.inner {
            Some(i) if i.matcher.is_match(bytes) => Cow::Owned(
                i.matcher
                    .replace_all_bytes(bytes, &vec![REDACTED.as_bytes(); i.count]),
            ),
            _ => Cow::Borrowed(bytes),
        }
    }

    /// Replaces every secret in the strings (and object keys) of `value`; returns whether it
    /// replaced any (when it did not, `value` is untouched).
    pub fn redact_json(&self, value: &mut Value) -> bool {
        if self.is_empty() {
            return false;
        }
        match value {
            Value::String(s) => match self.redact_str(s) {
                Cow::Owned(r) => {
                    *s = r;
                    true
                }
                Cow::Borrowed(_) => false,
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |hit, v| self.redact_json(v) | hit),
            Value::Object(map) => {
                let keys_hit = map
                    .keys()
                    .any(|k| matches!(self.redact_str(k), Cow::Owned(_)));
                if keys_hit {
                    let old = std::mem::take(map);
                    for (k, v) in old {
                        map.insert(self.redact_str(&k).into_owned(), v);
                    }
                }
                map.values_mut()
                    .fold(keys_hit, |hit, v| self.redact_json(v) | hit)
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }

    /// A redactor for one byte stream.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor {
            secrets: self.clone(),
            tail: Vec::new(),
        }
    }
}

/// The secrets could not be made into a redactor (too many, or too long, for the automaton).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the redactor of the configured secrets")]
pub struct SecretsError(#[source] aho_corasick::BuildError);

/// Redacts a byte stream chunk by chunk: a secret split across chunks is still replaced. It
/// holds back at most `longest secret - 1` bytes until the next chunk or [`Self::finish`] —
/// never a line's end when no secret holds a newline, so complete lines (and server-sent
/// events) are released at once.
#[derive(Debug)]
pub struct StreamRedactor {
    secrets: Secrets,
    tail: Vec<u8>,
}

impl StreamRedactor {
    /// The redacted bytes that can be released after `chunk`.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Some(inner) = self.secrets.inner.clone() else {
            return chunk.to_vec();
        };
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        // A secret that starts before `cut` ends within `buf`: everything before `cut` (or
        // the end of a match that starts before it) is final.
        let mut cut = buf.len().saturating_sub(inner.longest.saturating_sub(1));
        if !inner.multiline
            && let Some(nl) = buf.iter().rposition(|b| *b == b'\n')
        {
            // No secret spans a newline: everything up to the last one is final.
            cut = cut.max(nl + 1);
        }
        let mut out = Vec::with_capacity(buf.len());
        let mut at = 0;
        for m in inner.matcher.find_iter(&buf) {
            if m.start() >= cut {
                break;
            }
            out.extend_from_slice(buf.get(at..m.start()).unwrap_or_default());
            out.extend_from_slice(REDACTED.as_bytes());
            at = m.end();
            cut = cut.max(at);
        }
        out.extend_from_slice(buf.get(at..cut).unwrap_or_default());
        self.tail = buf.get(cut..).unwrap_or_default().to_vec();
        out
    }

    /// The redacted rest of the stream.
    pub fn finish(self) -> Vec<u8> {
        self.secrets.redact_bytes(&self.tail).into_owned()
    }
}

/// A [`Recorder`] that redacts every record's payload before the ledger behind it sees it.
#[derive(Debug)]
pub struct RedactingRecorder {
    inner: Arc<dyn Recorder>,
    secrets: Secrets,
}

impl RedactingRecorder {
    /// Records into `inner`, with `secrets` redacted from every payload.
    pub fn new(inner: Arc<dyn Recorder>, secrets: Secrets) -> RedactingRecorder {
        RedactingRecorder { inner, secrets }
    }
}

impl Recorder for RedactingRecorder {
    fn append_batch(&self, mut records: Vec<NewRecord>) -> RecordFuture<'_> {
        for r in &mut records {
            self.secrets.redact_json(&mut r.payload);
        }
        self.inner.append_batch(records)
    }
}

#[cfg(test)]
mod tests;
