//! The observer's own metrics, in Prometheus text exposition (`prometheus-client`), served on
//! `--metrics-listen` at `GET /metrics` to a caller presenting the metrics token
//! (`Authorization: Bearer …`); anyone else gets `401`. Label values come from fixed lists
//! (actions, detector kinds, outcomes), never from what an agent sends.
//!
//! Families: `warden_observer_records_read_total`, `warden_observer_head` (the gateway's
//! committed head, from the stream's `: head N` comments), `warden_observer_last_read` and
//! `warden_observer_lag_records` (head minus last read, 0 when the head is not known yet),
//! `warden_observer_detections_total{kind}` (signals), `warden_observer_responses_total{action,
//! outcome}` (alerts and interventions: `sent`, `duplicate`, `refused`, `failed`),
//! `warden_observer_detection_to_intervention_seconds` (from the commit of the record that
//! raised a response to the gateway's answer that it is in force), `warden_observer_chain_breaks_total`,
//! `warden_observer_alert_webhook_total{outcome}`.

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::gateway::Token;

/// The detector kinds used as label values; any other is counted as `other`.
const KINDS: &[&str] = &[
    "intent_mismatch",
    "new_resource_burst",
    "rate",
    "denial_storm",
    "sensitive_then_send",
    "token_spike",
    "ledger_integrity",
];
/// The response actions used as label values.
const ACTIONS: &[&str] = &[
    "alert",
    "conservative",
    "freeze_tool",
    "revoke_session",
    "frozen",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    action: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The observer's metric families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    records_read: Counter,
    head: Gauge<u64, AtomicU64>,
    last_read: Gauge<u64, AtomicU64>,
    lag: Gauge<u64, AtomicU64>,
    detections: Family<KindLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
    latency: Histogram,
    chain_breaks: Counter,
    webhook: Family<OutcomeLabels, Counter>,
}

fn known(list: &[&'static str], value: &str) -> &'static str {
    list.iter()
        .find(|k| **k == value)
        .copied()
        .unwrap_or("other")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            records_read: Counter::default(),
            head: Gauge::default(),
            last_read: Gauge::default(),
            lag: Gauge::default(),
            detections: Family::default(),
            responses: Family::default(),
            // 1 ms to about 32 s.
            latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            chain_breaks: Counter::default(),
            webhook: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "warden_observer_records_read",
            "Ledger records read from the stream",
            m.records_read.clone(),
        );
        registry.register(
            "warden_observer_head",
            "The gateway's committed ledger head, as the stream last said",
            m.head.clone(),
        );
        registry.register(
            "warden_observer_last_read",
            "The last ledger record read",
            m.last_read.clone(),
        );
        registry.register(
            "warden_observer_lag_records",
            "Records committed but not read yet",
            m.lag.clone(),
        );
        registry.register(
            "warden_observer_detections",
            "Signals raised by the detectors, by kind",
            m.detections.clone(),
        );
        registry.register(
            "warden_observer_responses",
            "Alerts and interventions sent to the control API, by action and outcome",
            m.responses.clone(),
        );
        registry.register("warden_observer_detection_to_intervention_seconds", "From the commit of the record that raised a response to the gateway's answer that it is in force", m.latency.clone());
        registry.register(
            "warden_observer_chain_breaks",
            "Breaks found in the ledger's hash chain",
            m.chain_breaks.clone(),
        );
        registry.register(
            "warden_observer_alert_webhook",
            "Alerts offered to the alert webhook, by outcome",
            m.webhook.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A record was read.
    pub fn read(&self, seq: u64) {
        self.records_read.inc();
        self.last_read.set(seq);
        self.lag.set(self.head.get().saturating_sub(seq));
    }

    /// The stream said the committed head is `head`.
    pub fn head(&self, head: u64) {
        self.head.set(head);
        self.lag.set(head.saturating_sub(self.last_read.get()));
    }

    /// A detector raised a signal of `kind`.
    pub fn detected(&self, kind: &str) {
        self.detections
            .get_or_create(&KindLabels {
                kind: known(KINDS, kind),
            })
            .inc();
    }

    /// A response ended as `outcome` (`duplicate`, `refused`, `failed`).
    pub fn response(&self, action: &str, outcome: &'static str) {
        self.responses
            .get_or_create(&ResponseLabels {
                action: known(ACTIONS, action),
                outcome,
            })
            .inc();
    }

    /// A response is in force, `seconds` after the commit of the record that raised it.
    pub fn intervened(&self, action: &str, seconds: f64) {
        self.response(action, "sent");
        self.latency.observe(seconds);
    }

    /// The chain broke.
    pub fn chain_broken(&self) {
        self.chain_breaks.inc();
    }

    /// An alert was `delivered`, `failed` or `dropped`.
    pub fn webhook(&self, outcome: &'static str) {
        self.webhook.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a `String` cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[derive(Clone)]
struct MetricsState {
    metrics: Arc<Metrics>,
    token: Token,
}

/// The metrics listener's routes: `GET /metrics` with the metrics token.
pub fn router(metrics: Arc<Metrics>, token: Token) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(MetricsState { metrics, token })
}

async fn serve_metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !state.token.matches(presented) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the observer's metrics need its metrics token\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Serves `router` on `listener` until `cancel`.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, cancel: CancellationToken) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, ?addr, "The observer's metrics listener failed.");
    }
}
