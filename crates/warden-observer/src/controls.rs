//! Sending the engine's responses to the gateway's control API (`POST /v1/controls`), in the
//! order the engine gave them, one at a time.
//!
//! What it guarantees:
//! - idempotent: a response is identified by a hash of the body it sends ([`response_key`]);
//!   one the store says the gateway already took is not sent again (records read a second
//!   time after a restart give the same responses: the engine is deterministic);
//! - bounded retries: a network error, a `429` or a `5xx` is tried again up to
//!   [`ATTEMPTS`] times with a doubling backoff, each attempt limited to [`ATTEMPT_TIMEOUT`];
//!   another `4xx` is a refusal, logged and stored, never retried;
//! - the body keeps within the control API's bounds: the reason cut to 1024 bytes, the
//!   detector to 128, the evidence to its newest 1000 sequence numbers, the expiry within
//!   1 s..=1 year;
//! - every response, sent or not, then goes to the alert webhook ([`AlertSink`]), which never
//!   waits.

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use warden_core::Clock;
use warden_core::text::ellipsize;

use crate::alerts::AlertSink;
use crate::gateway::{GatewayClient, body_snippet};
use crate::metrics::Metrics;
use crate::response::{Response, Scope};
use crate::store::{SentResponse, Store};

/// Attempts per response.
pub const ATTEMPTS: u32 = 5;
/// Time limit of one attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait before the second attempt; it doubles before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The control API's bounds.
const MAX_REASON_BYTES: usize = 1024;
const MAX_DETECTOR_BYTES: usize = 128;
const MAX_EVIDENCE: usize = 1000;
const MAX_EXPIRES_SECS: u64 = 31_536_000;

/// A response to send, with the record that raised it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The response.
    pub response: Response,
    /// The sequence number of the record that raised it.
    pub seq: u64,
    /// That record's time (its commit in the ledger): the start of the
    /// detection-to-intervention latency.
    pub record_time: OffsetDateTime,
}

/// How sending one response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The gateway took it: the control's id.
    Taken(String),
    /// Already taken before (the store says so): not sent again.
    Duplicate,
    /// The gateway refused it (a `4xx` other than `429`): the status and the start of the answer.
    Refused(u16, String),
    /// Every attempt failed: the last error.
    Failed(String),
}

/// The body of `POST /v1/controls` for `response`.
pub fn control_body(response: &Response) -> Value {
    let (scope, target) = match &response.scope {
        Scope::Gateway => ("gateway", None),
        Scope::Agent(id) => ("agent", Some(id)),
        Scope::Principal(id) => ("principal", Some(id)),
        Scope::Session(id) => ("session", Some(id)),
    };
    let mut body = json!({
        "action": response.action.as_str(),
        "scope": scope,
        "reason": cut(&response.reason, MAX_REASON_BYTES),
        "detector": cut(&response.detector, MAX_DETECTOR_BYTES),
    });
    let skip = response.evidence.len().saturating_sub(MAX_EVIDENCE);
    let evidence: Vec<u64> = response.evidence.iter().skip(skip).copied().collect();
    if let Value::Object(map) = &mut body {
        if let Some(target) = target {
            map.insert("target".to_owned(), json!(target));
        }
        if let Some(tool) = &response.tool {
            map.insert("tool".to_owned(), json!(tool));
        }
        if !evidence.is_empty() {
            map.insert("evidence".to_owned(), json!(evidence));
        }
        if let Some(secs) = response.expires_in_secs {
            map.insert(
                "expires_in_secs".to_owned(),
                json!(secs.clamp(1, MAX_EXPIRES_SECS)),
            );
        }
    }
    body
}

/// `text` within `max` bytes, an ellipsis included when it is cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    ellipsize(text, max.saturating_sub('…'.len_utf8()))
}

/// What identifies a response: the BLAKE3 hash (hex) of the canonical JSON of its body.
pub fn response_key(body: &Value) -> String {
    warden_audit::chain::hex(
        blake3::hash(warden_audit::chain::canonical_json(body).as_bytes()).as_bytes(),
    )
}

/// Sends responses to the control API.
#[derive(Debug, Clone)]
pub struct ControlSender {
    gateway: GatewayClient,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl ControlSender {
    /// A sender through `gateway`, remembering what it sent in `store`.
    pub fn new(
        gateway: GatewayClient,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> ControlSender {
        ControlSender {
            gateway,
            store,
            metrics,
            clock,
        }
    }

    /// Sends each response from `rx` in order until the channel closes, then returns. Each goes
    /// to `alerts` afterwards.
    pub async fn run(self, mut rx: mpsc::Receiver<Outgoing>, alerts: AlertSink) {
        while let Some(out) = rx.recv().await {
            let sent = self.send(&out).await;
            alerts.offer(&out.response, &sent);
        }
    }

    /// Sends one response (unless it was sent before) and records the outcome.
    pub async fn send(&self, out: &Outgoing) -> Sent {
        let body = control_body(&out.response);
        let key = response_key(&body);
        let action = out.response.action.as_str();
        match self.store.was_sent(&key) {
            Ok(true) => {
                self.metrics.response(action, "duplicate");
                return Sent::Duplicate;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the observer's store; sending anyway.")
            }
        }
        let sent = self.post(&body).await;
        let outcome = match &sent {
            Sent::Taken(id) => {
                let latency = self.clock.now() - out.record_time;
                self.metrics
                    .intervened(action, latency.as_seconds_f64().max(0.0));
                tracing::info!(
                    action, detector = %out.response.detector, control = %id, seq = out.seq,
                    "The gateway took the observer's response."
                );
                "sent".to_owned()
            }
            Sent::Duplicate => "duplicate".to_owned(),
            Sent::Refused(status, answer) => {
                self.metrics.response(action, "refused");
                tracing::error!(
                    action, detector = %out.response.detector, status, answer = %answer,
                    "The gateway refused the observer's response."
                );
                format!("refused: {status} {answer}")
            }
            Sent::Failed(e) => {
                self.metrics.response(action, "failed");
                tracing::error!(
                    action, detector = %out.response.detector, error = %e,
                    "Cannot send the observer's response to the gateway."
                );
                format!("failed: {e}")
            }
        };
        let entry = SentResponse {
            key,
            seq: out.seq,
            time: self.clock.now(),
            action: action.to_owned(),
            detector: out.response.detector.clone(),
            body,
            control: match &sent {
                Sent::Taken(id) => Some(id.clone()),
                _ => None,
            },
            outcome,
        };
        if let Err(e) = self.store.record_response(&entry) {
            tracing::warn!(error = %e, "Cannot record a response in the observer's store.");
        }
        sent
    }

    async fn post(&self, body: &Value) -> Sent {
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            let request = self
                .gateway
                .request(reqwest::Method::POST, "/v1/controls")
                .timeout(ATTEMPT_TIMEOUT)
                .json(body);
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = response.status();
            if status.is_success() {
                let answer: Value = match response.json().await {
                    Ok(v) => v,
                    Err(e) => {
                        // The control is in force (the answer comes after); only its id is lost.
                        tracing::warn!(error = %e, "The control API's answer cannot be read.");
                        Value::Null
                    }
                };
                let id = answer
                    .pointer("/control/id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Sent::Taken(id.to_owned());
            }
            let answer = body_snippet(response, 512).await;
            if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
                return Sent::Refused(status.as_u16(), answer);
            }
            last = format!("{status}: {answer}");
        }
        Sent::Failed(last)
    }
}
