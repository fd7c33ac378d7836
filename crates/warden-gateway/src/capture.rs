//! What the ledger captures for a session, and its bounds (docs/gateway.md, "What is
//! recorded"):
//!
//! - an action's arguments: over the per-record limit, the action is refused (it could not be
//!   recorded, so it cannot be forwarded) and recorded with their size and SHA-256 only; else
//!   they are charged to the session's quota, and a session whose quota is spent is refused;
//! - a result's content: text parts redacted by the charter's `data.redact` patterns, then cut
//!   to what the record limit and the session's remaining quota allow, the cut recorded as
//!   `truncated: {original_bytes, sha256}`; other parts by type and size;
//! - the model proxy's records, through [`QuotaRecorder`]: a `model_requested` that does not
//!   fit in the session's quota is refused (and a small `model_refused` recorded), what the
//!   proxy records after it (completions, intents, failures) is charged.

use std::io;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use warden_audit::{CanonicalRecord, Ledger};
use warden_charter::DataPolicy;
use warden_core::RecordKind;
use warden_core::canonical::hex;
use warden_core::gate::ContentPart;
use warden_core::record::{NewRecord, RecordError, RecordFuture, Recorder};
use warden_session::CaptureQuota;

/// What replaces a match of a `data.redact` pattern.
pub const REDACTED: &str = "[REDACTED]";

/// Most content parts one record lists; the rest are left out (and the content marked
/// truncated).
pub const MAX_PARTS: usize = 1000;

/// Counts the bytes written to it.
struct Counter(u64);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The size of `v` as JSON, in bytes, without building the text.
pub(crate) fn json_len(v: &Value) -> u64 {
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, v) {
        Ok(()) => counter.0,
        // A value serde cannot write is not recordable: as large as can be.
        Err(_) => u64::MAX,
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// What is recorded instead of arguments too large to record: their size and hash.
pub(crate) fn too_large(args: &Value, bytes: u64) -> Value {
    let text = serde_json::to_vec(args).unwrap_or_default();
    json!({ "too_large": { "bytes": bytes, "sha256": sha256_hex(&text) } })
}

/// A result's content as it is recorded.
#[derive(Debug)]
pub(crate) struct Captured {
    /// The parts: `{"type": "text", "text"}` or `{"type", "bytes"}`.
    pub content: Vec<Value>,
    /// `{original_bytes, sha256}` of the text as received, when it was cut.
    pub truncated: Option<Value>,
    /// How many matches of the redaction patterns were replaced.
    pub redacted: usize,
}

/// Captures `parts` for `session`: text redacted, then cut to the record limit and the
/// session's remaining quota (which is charged with what is kept).
pub(crate) fn capture_content(
    parts: &[ContentPart],
    data: &DataPolicy,
    quota: &CaptureQuota,
    session: &str,
) -> Captured {
    let mut hasher = Sha256::new();
    let mut original_bytes: u64 = 0;
    let mut redacted = 0;
    let mut texts: Vec<Option<String>> = Vec::with_capacity(parts.len().min(MAX_PARTS));
    for (i, part) in parts.iter().enumerate() {
        match part {
            ContentPart::Text(t) => {
                hasher.update(t.as_bytes());
                original_bytes = original_bytes.saturating_add(t.len() as u64);
                if i >= MAX_PARTS {
                    continue;
                }
                let mut text = t.clone();
                for re in &data.redact {
                    let n = re.find_iter(&text).count();
                    if n > 0 {
                        redacted += n;
                        text = re.replace_all(&text, REDACTED).into_owned();
                    }
                }
                texts.push(Some(text));
            }
            ContentPart::Other { .. } if i < MAX_PARTS => texts.push(None),
            ContentPart::Other { .. } => {}
        }
    }
    let wanted: u64 = texts.iter().flatten().map(|t| t.len() as u64).sum();
    let budget = wanted.min(quota.limits().max_record_bytes);
    let mut left = quota.charge_up_to(session, budget);
    let mut cut = left < wanted || parts.len() > MAX_PARTS;
    let mut content = Vec::with_capacity(parts.len());
    for (part, text) in parts.iter().zip(texts) {
        match (part, text) {
            (_, Some(mut text)) => {
                let keep = usize::try_from(left).unwrap_or(usize::MAX).min(text.len());
                if keep < text.len() {
                    let mut end = keep;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                    cut = true;
                }
                left = left.saturating_sub(text.len() as u64);
                content.push(json!({ "type": "text", "text": text }));
            }
            (ContentPart::Other { kind, bytes }, None) => {
                content.push(json!({ "type": kind, "bytes": bytes }));
            }
            (ContentPart::Text(_), None) => {}
        }
    }
    let truncated =
        cut.then(|| json!({ "original_bytes": original_bytes, "sha256": hex(&hasher.finalize()) }));
    Captured {
        content,
        truncated,
        redacted,
    }
}

/// The ledger as the model proxy records through it, with the proxy's records charged to the
/// session's capture quota.
#[derive(Debug, Clone)]
pub struct QuotaRecorder {
    ledger: Ledger,
    quota: Arc<CaptureQuota>,
}

impl QuotaRecorder {
    /// Records to `ledger`, charging `quota`.
    pub fn new(ledger: Ledger, quota: Arc<CaptureQuota>) -> QuotaRecorder {
        QuotaRecorder { ledger, quota }
    }

    /// Canonicalises the batch (once: the ledger stores exactly these bytes) and charges its
    /// model records to their sessions by their stored size; a `model_requested` that does
    /// not fit is refused, and its refusal recorded small. Records before a refused one stay
    /// charged, as nothing of the batch is appended.
    async fn charge(&self, records: Vec<NewRecord>) -> Result<Vec<CanonicalRecord>, RecordError> {
        let mut canonical = Vec::with_capacity(records.len());
        for r in records {
            let is_model = r.session.is_some() && r.kind.as_str().starts_with("model_");
            let call = (is_model && r.kind == RecordKind::ModelRequested)
                .then(|| r.payload.get("call").cloned())
                .flatten();
            let c = CanonicalRecord::new(r);
            let Some(session) = c.session().filter(|_| is_model) else {
                canonical.push(c);
                continue;
            };
            let bytes = c.payload_bytes();
            if c.kind() != RecordKind::ModelRequested {
                self.quota.charge(session, bytes);
                canonical.push(c);
                continue;
            }
            if let Err(e) = self.quota.try_charge(session, bytes) {
                let refused = NewRecord::new(
                    Some(session),
                    RecordKind::ModelRefused,
                    json!({
                        "call": call,
                        "reason": "capture_quota_exhausted",
                        "request_bytes": bytes,
                        "used_bytes": e.used,
                        "limit_bytes": e.limit,
                    }),
                );
                if let Err(le) = self.ledger.append(refused).await {
                    tracing::error!(error = %le, "The ledger cannot record a refused model call.");
                }
                return Err(RecordError::from_store(e));
            }
            canonical.push(c);
        }
        Ok(canonical)
    }
}

impl Recorder for QuotaRecorder {
    fn append_batch(&self, records: Vec<NewRecord>) -> RecordFuture<'_> {
        Box::pin(async move {
            let records = self.charge(records).await?;
            self.ledger
                .append_canonical(records)
                .await
                .map(drop)
                .map_err(RecordError::from_store)
        })
    }
}

#[cfg(test)]
mod tests;
