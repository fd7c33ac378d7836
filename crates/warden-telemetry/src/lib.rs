//! The gateway's Prometheus metrics: one [`Telemetry`] holds every family, the code paths
//! count into it, and [`Telemetry::encode`] renders the text exposition `GET /metrics` serves.
//!
//! What it guarantees: every metric name starts with `warden_`; a label value an agent
//! controls is bounded — a tool is a label value only if the charter's inventory names it, a
//! server or a model route only if the charter declares it; anything else is counted under
//! `"other"`, so no request can add a time series. Counting never fails, never blocks on IO
//! and never panics (a short lock per update).
//!
//! Where it sits: above nothing but the standard library and `prometheus-client` (the crate
//! map allows `warden-core`); the gateway builds one at start-up and hands it to the governor,
//! the model proxy, the MCP endpoint and the ledger's commit observer; the observer process
//! uses the same crate for its own `/metrics`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Telemetry::encode`]'s output (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The label value for anything outside the charter's declared names.
pub const OTHER: &str = "other";

/// The names label values may take; anything else becomes [`OTHER`].
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    /// The inventory's tools (`server.tool`).
    pub tools: HashSet<String>,
    /// The inventory's servers.
    pub servers: HashSet<String>,
    /// The model routes.
    pub routes: HashSet<String>,
    /// The agent (the charter's identity).
    pub agents: HashSet<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    verdict: String,
    tier: String,
    reason: String,
    tool: String,
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    verdict: String,
    diverged: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteDirection {
    route: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Server {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Action {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Sink {
    sink: String,
}

/// The most export sinks with a label of their own; any further one counts as [`OTHER`]
/// (the configuration allows no more than this many).
pub const MAX_EXPORT_SINKS: usize = 8;

/// One export sink's metrics (`warden_export_*{sink}`): cheap to clone, counting never fails.
#[derive(Debug, Clone, Default)]
pub struct ExportMetrics {
    lag: Gauge,
    records: Counter,
    failures: Counter,
}

impl ExportMetrics {
    /// The sink's lag now: the ledger's head minus the last record it acknowledged.
    pub fn set_lag(&self, records: u64) {
        self.lag.set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// The sink acknowledged `n` more records.
    pub fn exported(&self, n: u64) {
        self.records.inc_by(n);
    }

    /// One delivery to the sink failed (each retry counts).
    pub fn failure(&self) {
        self.failures.inc();
    }
}

/// Buckets for latencies: 0.5 ms to about 16 s (doubling).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Buckets for approval waits: 1 s to about 9 h (doubling).
fn wait_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// Every metric family of the gateway, and the bounds of their label values.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    /// Replaced whole by a live reload of the charter ([`Telemetry::set_bounds`]).
    bounds: RwLock<Arc<Bounds>>,
    decisions: Family<DecisionLabels, Counter>,
    approvals: Family<Outcome, Counter>,
    approval_wait: Histogram,
    shadow_decisions: Family<ShadowLabels, Counter>,
    model_requests: Family<RouteStatus, Counter>,
    model_tokens: Family<RouteDirection, Counter>,
    model_errors: Family<Route, Counter>,
    upstream_errors: Family<Server, Counter>,
    upstream_call: Family<Server, Histogram>,
    ledger_commit: Histogram,
    ledger_wal_checkpoint: Histogram,
    ledger_wal_checkpoints_on_commit_path: Counter,
    ledger_queue_depth: Gauge,
    sessions_active: Gauge,
    controls_in_force: Family<Action, Gauge>,
    otel_exported: Counter,
    otel_dropped: Counter,
    otel_failures: Counter,
    export_lag: Family<Sink, Gauge>,
    export_records: Family<Sink, Counter>,
    export_failures: Family<Sink, Counter>,
    export_sinks: Mutex<HashSet<String>>,
    checkpoints_signed: Counter,
    checkpoint_failures: Counter,
    checkpoint_size: Gauge,
}

impl Telemetry {
    /// Every family registered, at zero; label values bounded by `bounds`.
    pub fn new(bounds: Bounds) -> Telemetry {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        let approvals = Family::<Outcome, Counter>::default();
        let approval_wait = wait_histogram();
        let shadow_decisions = Family::<ShadowLabels, Counter>::default();
        let model_requests = Family::<RouteStatus, Counter>::default();
        let model_tokens = Family::<RouteDirection, Counter>::default();
        let model_errors = Family::<Route, Counter>::default();
        let upstream_errors = Family::<Server, Counter>::default();
        let upstream_call =
            Family::<Server, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let ledger_commit = latency_histogram();
        let ledger_wal_checkpoint = latency_histogram();
        let ledger_wal_checkpoints_on_commit_path = Counter::default();
        let ledger_queue_depth = Gauge::default();
        let sessions_active = Gauge::default();
        let controls_in_force = Family::<Action, Gauge>::default();
        let (otel_exported, otel_dropped, otel_failures) =
            (Counter::default(), Counter::default(), Counter::default());
        let export_lag = Family::<Sink, Gauge>::default();
        let export_records = Family::<Sink, Counter>::default();
        let export_failures = Family::<Sink, Counter>::default();
        let (checkpoints_signed, checkpoint_failures, checkpoint_size) =
            (Counter::default(), Counter::default(), Gauge::default());
        // Counters are registered without `_total`: the encoder appends it.
        registry.register(
            "warden_decisions",
            "Decisions taken on agent actions",
            decisions.clone(),
        );
        registry.register(
            "warden_approvals",
            "Approval requests settled, by outcome",
            approvals.clone(),
        );
        registry.register(
            "warden_approval_wait_seconds",
            "How long settled approval requests waited",
            approval_wait.clone(),
        );
        registry.register(
            "warden_shadow_decisions",
            "Decisions of the shadow charter, by its verdict and whether it diverged from the live one (verdict or tier)",
            shadow_decisions.clone(),
        );
        registry.register(
            "warden_model_requests",
            "Model requests answered, by route and HTTP status",
            model_requests.clone(),
        );
        registry.register(
            "warden_model_tokens",
            "Model tokens, by route and direction (input, output)",
            model_tokens.clone(),
        );
        registry.register(
            "warden_model_errors",
            "Model requests that failed at the provider or on the way",
            model_errors.clone(),
        );
        registry.register(
            "warden_upstream_errors",
            "Upstream tool calls that failed, by server",
            upstream_errors.clone(),
        );
        registry.register(
            "warden_upstream_call_seconds",
            "Upstream tool call latency, by server",
            upstream_call.clone(),
        );
        registry.register(
            "warden_ledger_commit_seconds",
            "Ledger group commit latency",
            ledger_commit.clone(),
        );
        registry.register(
            "warden_ledger_wal_checkpoint_seconds",
            "Checkpoints of the SQLite ledger's WAL",
            ledger_wal_checkpoint.clone(),
        );
        registry.register(
            "warden_ledger_wal_checkpoints_on_commit_path",
            "WAL checkpoints the ledger's writer ran itself between two commits",
            ledger_wal_checkpoints_on_commit_path.clone(),
        );
        registry.register(
            "warden_ledger_queue_depth",
            "Appends waiting in the ledger writer's queue",
            ledger_queue_depth.clone(),
        );
        registry.register(
            "warden_sessions_active",
            "Agent sessions neither expired nor revoked",
            sessions_active.clone(),
        );
        registry.register(
            "warden_controls_in_force",
            "Controls in force, by action",
            controls_in_force.clone(),
        );
        registry.register(
            "warden_otel_spans_exported",
            "Spans the OpenTelemetry exporter delivered to the collector",
            otel_exported.clone(),
        );
        registry.register(
            "warden_otel_spans_dropped",
            "Spans the OpenTelemetry exporter dropped (queue full, or a batch given up)",
            otel_dropped.clone(),
        );
        registry.register(
            "warden_otel_export_failures",
            "OTLP export requests that failed (each retry counts)",
            otel_failures.clone(),
        );
        registry.register(
            "warden_export_lag_records",
            "Records the ledger holds that an export sink has not acknowledged, by sink",
            export_lag.clone(),
        );
        registry.register(
            "warden_export_records",
            "Records an export sink acknowledged, by sink",
            export_records.clone(),
        );
        registry.register(
            "warden_export_failures",
            "Deliveries to an export sink that failed (each retry counts), by sink",
            export_failures.clone(),
        );
        registry.register(
            "warden_checkpoints_signed",
            "Signed checkpoints of the ledger's Merkle tree recorded in the ledger",
            checkpoints_signed.clone(),
        );
        registry.register(
            "warden_checkpoint_failures",
            "Signed checkpoints that could not be recorded (signed again at the next trigger)",
            checkpoint_failures.clone(),
        );
        registry.register(
            "warden_checkpoint_size",
            "The tree size (records) of the last signed checkpoint recorded",
            checkpoint_size.clone(),
        );
        Telemetry {
            registry,
            bounds: RwLock::new(Arc::new(bounds)),
            decisions,
            approvals,
            approval_wait,
            shadow_decisions,
            model_requests,
            model_tokens,
            model_errors,
            upstream_errors,
            upstream_call,
            ledger_commit,
            ledger_wal_checkpoint,
            ledger_wal_checkpoints_on_commit_path,
            ledger_queue_depth,
            sessions_active,
            controls_in_force,
            otel_exported,
            otel_dropped,
            otel_failures,
            export_lag,
            export_records,
            export_failures,
            export_sinks: Mutex::new(HashSet::new()),
            checkpoints_signed,
            checkpoint_failures,
            checkpoint_size,
        }
    }

    /// Puts `bounds` in force for every sample counted after this returns (a live reload of
    /// the charter: its tools, servers and routes become label values). Series already
    /// counted under the previous bounds stay; each charter's names are bounded by its
    /// inventory.
    pub fn set_bounds(&self, bounds: Bounds) {
        *self.bounds.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(bounds);
    }

    fn bounds(&self) -> Arc<Bounds> {
        self.bounds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn bounded(set: &HashSet<String>, value: &str) -> String {
        if set.contains(value) {
            value.to_owned()
        } else {
            OTHER.to_owned()
        }
    }

    /// One decision on an agent action. `verdict`, `tier` and `reason` are warden's own
    /// codes; `tool` and `agent` are bounded.
    pub fn decision(&self, verdict: &str, tier: &str, reason: &str, tool: &str, agent: &str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                verdict: verdict.to_owned(),
                tier: tier.to_owned(),
                reason: reason.to_owned(),
                tool: Self::bounded(&self.bounds().tools, tool),
                agent: Self::bounded(&self.bounds().agents, agent),
            })
            .inc();
    }

    /// An approval request settled: `outcome` is warden's own code (`granted`, `denied`,
    /// `timed_out`; after a live reload `voided` or `released`).
    pub fn approval(&self, outcome: &str) {
        self.approvals
            .get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// One decision of the shadow charter (it enforces nothing): `verdict` is warden's own
    /// code (`allow`, `ask`, `deny`; anything else counts as [`OTHER`]), `diverged` whether
    /// its verdict or tier differs from the live decision's.
    pub fn shadow_decision(&self, verdict: &str, diverged: bool) {
        let verdict = match verdict {
            "allow" | "ask" | "deny" => verdict,
            _ => OTHER,
        };
        self.shadow_decisions
            .get_or_create(&ShadowLabels {
                verdict: verdict.to_owned(),
                diverged: diverged.to_string(),
            })
            .inc();
    }

    /// A call waited `waited` for an approval (however the wait ended).
    pub fn approval_waited(&self, waited: Duration) {
        self.approval_wait.observe(waited.as_secs_f64());
    }

    /// A model request answered with HTTP `status` on `route` (bounded); a status of 500 or
    /// more also counts as an error.
    pub fn model_request(&self, route: &str, status: u16) {
        let route = Self::bounded(&self.bounds().routes, route);
        if status >= 500 {
            self.model_errors
                .get_or_create(&Route {
                    route: route.clone(),
                })
                .inc();
        }
        self.model_requests
            .get_or_create(&RouteStatus {
                route,
                status: status.to_string(),
            })
            .inc();
    }

    /// Tokens a model call on `route` used: `input` (prompt) and `output` (completion).
    pub fn model_tokens(&self, route: &str, input: u64, output: u64) {
        let route = Self::bounded(&self.bounds().routes, route);
        for (direction, n) in [("input", input), ("output", output)] {
            self.model_tokens
                .get_or_create(&RouteDirection {
                    route: route.clone(),
                    direction: direction.to_owned(),
                })
                .inc_by(n);
        }
    }

    /// An upstream tool call to `server` (bounded) took `took`; `failed` counts an error.
    pub fn upstream_call(&self, server: &str, took: Duration, failed: bool) {
        let server = Server {
            server: Self::bounded(&self.bounds().servers, server),
        };
        self.upstream_call
            .get_or_create(&server)
            .observe(took.as_secs_f64());
        if failed {
            self.upstream_errors.get_or_create(&server).inc();
        }
    }

    /// One ledger group commit took `took`.
    pub fn ledger_commit(&self, took: Duration) {
        self.ledger_commit.observe(took.as_secs_f64());
    }

    /// One checkpoint of the SQLite ledger's WAL took `took`; `on_commit_path` when the writer
    /// ran it itself (its WAL at the bound) rather than its checkpointer.
    pub fn ledger_wal_checkpoint(&self, took: Duration, on_commit_path: bool) {
        self.ledger_wal_checkpoint.observe(took.as_secs_f64());
        if on_commit_path {
            self.ledger_wal_checkpoints_on_commit_path.inc();
        }
    }

    /// The ledger writer's queue depth now.
    pub fn set_ledger_queue_depth(&self, depth: usize) {
        self.ledger_queue_depth.set(saturating_i64(depth));
    }

    /// The agent sessions neither expired nor revoked now.
    pub fn set_sessions_active(&self, n: usize) {
        self.sessions_active.set(saturating_i64(n));
    }

    /// The controls in force now, by action (an action absent from `counts` is set to 0 if
    /// it was reported before).
    pub fn set_controls_in_force(&self, counts: &[(&str, usize)]) {
        self.controls_in_force.clear();
        for (action, n) in counts {
            self.controls_in_force
                .get_or_create(&Action {
                    action: (*action).to_owned(),
                })
                .set(saturating_i64(*n));
        }
    }

    /// The OpenTelemetry exporter delivered `n` spans.
    pub fn otel_exported(&self, n: u64) {
        self.otel_exported.inc_by(n);
    }

    /// The OpenTelemetry exporter dropped `n` spans.
    pub fn otel_dropped(&self, n: u64) {
        self.otel_dropped.inc_by(n);
    }

    /// A signed checkpoint of a tree of `size` records was recorded in the ledger.
    pub fn checkpoint_signed(&self, size: u64) {
        self.checkpoints_signed.inc();
        self.checkpoint_size
            .set(i64::try_from(size).unwrap_or(i64::MAX));
    }

    /// A signed checkpoint could not be recorded.
    pub fn checkpoint_failure(&self) {
        self.checkpoint_failures.inc();
    }

    /// One OTLP export request failed (a refused, unanswered or unreachable collector).
    pub fn otel_failure(&self) {
        self.otel_failures.inc();
    }

    /// The metrics of the export sink `name` (a configured name: the first
    /// [`MAX_EXPORT_SINKS`] distinct names get a label of their own, any further one
    /// [`OTHER`]), at zero until counted.
    pub fn export_sink(&self, name: &str) -> ExportMetrics {
        let label = {
            let mut known = self.export_sinks.lock().unwrap_or_else(|e| e.into_inner());
            if known.contains(name) || known.len() < MAX_EXPORT_SINKS {
                known.insert(name.to_owned());
                name.to_owned()
            } else {
                OTHER.to_owned()
            }
        };
        let key = Sink { sink: label };
        ExportMetrics {
            lag: self.export_lag.get_or_create(&key).clone(),
            records: self.export_records.get_or_create(&key).clone(),
            failures: self.export_failures.get_or_create(&key).clone(),
        }
    }

    /// The text exposition of every family ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
