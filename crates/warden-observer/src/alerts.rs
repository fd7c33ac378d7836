//! The alert webhook: each response the observer sends (alerts and interventions alike) is
//! also POSTed to a webhook, in warden's JSON or as a Slack incoming-webhook body.
//!
//! It never blocks the reader: [`AlertSink::offer`] puts the alert on a bounded queue
//! ([`QUEUE_CAPACITY`]) and drops it (counted, logged) when the queue is full; one worker
//! delivers them in order, each with up to [`ATTEMPTS`] attempts of at most
//! [`ATTEMPT_TIMEOUT`]. The webhook URL is a credential (Slack's are) and is never logged.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use warden_core::text::ellipsize;

use crate::controls::{Sent, control_body};
use crate::metrics::Metrics;
use crate::response::Response;
use std::sync::Arc;

/// Alerts that may wait for the worker; past that, new ones are dropped.
pub const QUEUE_CAPACITY: usize = 256;
/// Delivery attempts per alert.
pub const ATTEMPTS: u32 = 3;
/// Time limit of one attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait before the second attempt; it doubles before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The Slack text is cut to this many bytes.
const SLACK_TEXT_BYTES: usize = 2900;

/// The webhook's body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertFormat {
    /// `{"type": "warden.observer.response", "response": {...}, "signals": [...], ...}`.
    Json,
    /// `{"text": ..., "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": ...}}]}`.
    Slack,
}

impl AlertFormat {
    /// Parses `json` or `slack`.
    pub fn parse(text: &str) -> Option<AlertFormat> {
        match text {
            "json" => Some(AlertFormat::Json),
            "slack" => Some(AlertFormat::Slack),
            _ => None,
        }
    }
}

/// Where alerts go.
#[derive(Clone)]
pub struct AlertTarget {
    /// The webhook URL (a credential: never logged).
    pub url: String,
    /// The body format.
    pub format: AlertFormat,
}

impl std::fmt::Debug for AlertTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertTarget")
            .field("url", &"…")
            .field("format", &self.format)
            .finish()
    }
}

/// The event name in the JSON body and the `X-Warden-Event` header.
pub const EVENT: &str = "observer.response";

/// The body for `response`, whose sending to the control API ended as `sent`.
pub fn alert_body(format: AlertFormat, response: &Response, sent: &Sent) -> Value {
    let control = match sent {
        Sent::Taken(id) => json!({"id": id, "outcome": "in_force"}),
        Sent::Duplicate => json!({"outcome": "sent_before"}),
        Sent::Refused(status, _) => json!({"outcome": "refused", "status": status}),
        Sent::Failed(_) => json!({"outcome": "failed"}),
    };
    match format {
        AlertFormat::Json => json!({
            "type": EVENT,
            "response": control_body(response),
            "control": control,
            "signals": response.signals,
        }),
        AlertFormat::Slack => {
            let target = match &response.scope {
                crate::response::Scope::Gateway => "the whole gateway".to_owned(),
                crate::response::Scope::Agent(id) => format!("agent `{id}`"),
                crate::response::Scope::Principal(id) => format!("principal `{id}`"),
                crate::response::Scope::Session(id) => format!("session `{id}`"),
            };
            let tool = response
                .tool
                .as_deref()
                .map(|t| format!(" (tool `{t}`)"))
                .unwrap_or_default();
            let outcome = match sent {
                Sent::Taken(_) | Sent::Duplicate => "in force",
                Sent::Refused(..) => "REFUSED by the gateway",
                Sent::Failed(_) => "NOT SENT (the gateway could not be reached)",
            };
            let evidence: Vec<String> = response
                .evidence
                .iter()
                .take(20)
                .map(u64::to_string)
                .collect();
            let text = ellipsize(
                &format!(
                    "*warden observer*: `{}` for {target}{tool}, {outcome}.\n{}\nDetector `{}`; evidence: ledger records {}.",
                    response.action.as_str(),
                    response.reason,
                    response.detector,
                    evidence.join(", ")
                ),
                SLACK_TEXT_BYTES,
            );
            json!({
                "text": text,
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            })
        }
    }
}

/// The sending side: hands alerts to the worker without waiting.
#[derive(Debug, Clone)]
pub struct AlertSink {
    tx: Option<(mpsc::Sender<Value>, AlertFormat)>,
    metrics: Arc<Metrics>,
}

impl AlertSink {
    /// A sink that delivers nothing (no webhook configured).
    pub fn none(metrics: Arc<Metrics>) -> AlertSink {
        AlertSink { tx: None, metrics }
    }

    /// A sink and its worker's queue, for `format`.
    pub fn new(format: AlertFormat, metrics: Arc<Metrics>) -> (AlertSink, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        (
            AlertSink {
                tx: Some((tx, format)),
                metrics,
            },
            rx,
        )
    }

    /// Queues the alert for `response`; drops it when the queue is full.
    pub fn offer(&self, response: &Response, sent: &Sent) {
        let Some((tx, format)) = &self.tx else {
            return;
        };
        match tx.try_send(alert_body(*format, response, sent)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.webhook("dropped");
                tracing::warn!("The alert webhook's queue is full; an alert was dropped.");
            }
            Err(TrySendError::Closed(_)) => self.metrics.webhook("dropped"),
        }
    }
}

/// Delivers queued alerts to `target` until the queue closes.
pub async fn deliver(
    http: reqwest::Client,
    target: AlertTarget,
    mut rx: mpsc::Receiver<Value>,
    metrics: Arc<Metrics>,
) {
    while let Some(body) = rx.recv().await {
        let mut backoff = FIRST_BACKOFF;
        let mut delivered = false;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            let sent = http
                .post(&target.url)
                .timeout(ATTEMPT_TIMEOUT)
                .header("X-Warden-Event", EVENT)
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(r) => last = r.status().to_string(),
                // Without the URL: reqwest's error names it.
                Err(e) => last = e.without_url().to_string(),
            }
        }
        if delivered {
            metrics.webhook("delivered");
        } else {
            metrics.webhook("failed");
            tracing::warn!(error = %last, "Cannot deliver an alert to the alert webhook.");
        }
    }
}
