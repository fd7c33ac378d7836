//! The gateway's side of the observer's read surfaces: the ledger stream's feed (over the
//! ledger's reader and its committed-head watch) and the metrics (one
//! [`warden_telemetry::Telemetry`], counted into by the governor, the MCP endpoint, the
//! ledger's writer and the recorders of the model proxy and the approval workflow, with the
//! gauges read at scrape time).

pub mod instances;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warden_audit::{CommitObserver, LedgerReader};
use warden_charter::CharterSet;
use warden_core::record::{NewRecord, RecordFuture, Recorder};
use warden_core::{Clock, RecordKind};
use warden_operator::{FeedFuture, FeedRecord, LedgerFeed, MetricsSource};
use warden_session::{ControlAction, SessionStore};
use warden_telemetry::{Bounds, Telemetry};

/// The metrics of a gateway running the charters of `set`: label values bounded to their
/// tools, servers, model aliases and agents.
pub fn for_set(set: &CharterSet) -> Telemetry {
    Telemetry::new(bounds(set))
}

/// The label bounds of `set`: its charters' inventories' tools, servers and model aliases,
/// and its agents (a live reload puts a new set's in force, [`Telemetry::set_bounds`]).
pub fn bounds(set: &CharterSet) -> Bounds {
    let mut bounds = Bounds::default();
    for charter in set.iter() {
        let inventory = &charter.inventory;
        bounds.tools.extend(inventory.tools.keys().cloned());
        bounds
            .servers
            .extend(inventory.servers.iter().map(|s| s.id.clone()));
        bounds
            .routes
            .extend(inventory.models.iter().map(|m| m.alias.clone()));
        bounds.agents.insert(charter.identity.id.clone());
    }
    bounds
}

/// The ledger writer's commit latency, into the metrics.
#[derive(Debug)]
pub struct LedgerCommits(pub Arc<Telemetry>);

impl CommitObserver for LedgerCommits {
    fn committed(&self, _records: usize, took: Duration, _committed: bool) {
        self.0.ledger_commit(took);
    }

    fn checkpointed(&self, took: Duration, on_commit_path: bool) {
        self.0.ledger_wal_checkpoint(took, on_commit_path);
    }
}

/// A recorder that counts what it recorded: the model proxy's completions and failures
/// (`warden_model_*`, the route label being the model alias) and the approval workflow's
/// settlements (`warden_approvals_total`). Counted only once durable.
#[derive(Debug)]
pub struct MeteredRecorder {
    inner: Arc<dyn Recorder>,
    telemetry: Arc<Telemetry>,
}

impl MeteredRecorder {
    /// Records through `inner`, counting into `telemetry`.
    pub fn new(inner: Arc<dyn Recorder>, telemetry: Arc<Telemetry>) -> MeteredRecorder {
        MeteredRecorder { inner, telemetry }
    }

    fn count(&self, record: &NewRecord) {
        let p = &record.payload;
        let text = |key: &str| p.get(key).and_then(|v| v.as_str()).unwrap_or("");
        match record.kind {
            RecordKind::ModelCompleted => {
                let status = p
                    .get("status")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(0);
                self.telemetry.model_request(text("alias"), status);
                let usage = |key: &str| {
                    p.get("usage")
                        .and_then(|u| u.get(key))
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                };
                self.telemetry.model_tokens(
                    text("alias"),
                    usage("input_tokens"),
                    usage("output_tokens"),
                );
            }
            // Every route failed or was skipped: the agent was answered 502.
            RecordKind::ModelFailed => self.telemetry.model_request(text("alias"), 502),
            RecordKind::ApprovalGranted
                if p.get("granted").and_then(serde_json::Value::as_bool) == Some(true) =>
            {
                self.telemetry.approval("granted");
            }
            RecordKind::ApprovalDenied => self.telemetry.approval("denied"),
            RecordKind::ApprovalTimedOut => self.telemetry.approval("timed_out"),
            // A reload settled it: voided, or released (a kept request is still open).
            RecordKind::ApprovalRedecided if matches!(text("outcome"), "voided" | "released") => {
                self.telemetry.approval(text("outcome"));
            }
            _ => {}
        }
    }
}

impl Recorder for MeteredRecorder {
    fn append_batch(&self, records: Vec<NewRecord>) -> RecordFuture<'_> {
        Box::pin(async move {
            let counted: Vec<NewRecord> = records
                .iter()
                .filter(|r| {
                    matches!(
                        r.kind,
                        RecordKind::ModelCompleted
                            | RecordKind::ModelFailed
                            | RecordKind::ApprovalGranted
                            | RecordKind::ApprovalDenied
                            | RecordKind::ApprovalTimedOut
                            | RecordKind::ApprovalRedecided
                    )
                })
                .cloned()
                .collect();
            self.inner.append_batch(records).await?;
            for r in &counted {
                self.count(r);
            }
            Ok(())
        })
    }
}

/// The ledger stream's feed: committed records read with the ledger's read-only reader, the
/// head from the writer's watch, and the gateway's stop.
#[derive(Debug)]
pub struct GatewayFeed {
    /// The reader (its own connections: streaming never holds the writer).
    pub reader: LedgerReader,
    /// The committed head.
    pub head: watch::Receiver<u64>,
    /// Cancelled when the gateway stops.
    pub stop: CancellationToken,
}

impl LedgerFeed for GatewayFeed {
    fn range(&self, from: u64, limit: usize) -> FeedFuture<'_, Result<Vec<FeedRecord>, String>> {
        Box::pin(async move {
            let limit = u64::try_from(limit).unwrap_or(u64::MAX);
            let records = self
                .reader
                .range(from, limit)
                .await
                .map_err(|e| format!("the ledger cannot be read: {e}"))?;
            Ok(records
                .iter()
                .map(|r| FeedRecord {
                    seq: r.seq,
                    line: r.to_json_line(),
                })
                .collect())
        })
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    fn stopping(&self) -> FeedFuture<'static, ()> {
        Box::pin(self.stop.clone().cancelled_owned())
    }
}

/// `GET /metrics`: the counters as counted, the gauges read now — the ledger's queue, the
/// active sessions, and the controls in force by action (`conservative`, `frozen`,
/// `freeze_tool`, `revoke_session`; alerts are never in force).
pub struct GatewayMetrics {
    /// The families.
    pub telemetry: Arc<Telemetry>,
    /// The ledger (its queue depth).
    pub ledger: warden_audit::Ledger,
    /// The sessions.
    pub sessions: SessionStore,
    /// The controls (those in force are counted).
    pub controls: Arc<warden_session::Controls>,
    /// The time sessions expire by.
    pub clock: Arc<dyn Clock>,
}

impl MetricsSource for GatewayMetrics {
    fn render(&self) -> (&'static str, String) {
        let t = &self.telemetry;
        t.set_ledger_queue_depth(self.ledger.queue_depth());
        let active = self
            .sessions
            .list(self.clock.now())
            .iter()
            .filter(|s| s.status == "active")
            .count();
        t.set_sessions_active(active);
        let in_force = self.controls.in_force(self.clock.now());
        let count = |action: ControlAction| in_force.iter().filter(|c| c.action == action).count();
        t.set_controls_in_force(&[
            ("conservative", count(ControlAction::Conservative)),
            ("frozen", count(ControlAction::Frozen)),
            ("freeze_tool", count(ControlAction::FreezeTool)),
            ("revoke_session", count(ControlAction::RevokeSession)),
        ]);
        (warden_telemetry::CONTENT_TYPE, t.encode())
    }
}

/// Observes how long a caller waited for approval, when dropped.
#[derive(Debug)]
pub struct ApprovalWait {
    telemetry: Arc<Telemetry>,
    started: Instant,
}

impl ApprovalWait {
    /// Starts timing a wait.
    pub fn start(telemetry: &Arc<Telemetry>) -> ApprovalWait {
        ApprovalWait {
            telemetry: telemetry.clone(),
            started: Instant::now(),
        }
    }
}

impl Drop for ApprovalWait {
    fn drop(&mut self) {
        self.telemetry.approval_waited(self.started.elapsed());
    }
}

/// What the operator plane serves the observer: the ledger stream (a read-only reader of the
/// ledger at `source`, following the writer's head, ending at `stop`), the metrics, and the
/// fleet's chains (`GET /v1/instances`, `?instance=` on the stream).
pub(crate) async fn observability(
    source: &warden_audit::LedgerSource,
    stop: CancellationToken,
    metrics: GatewayMetrics,
) -> anyhow::Result<warden_operator::Observability> {
    use anyhow::Context as _;
    let reader = LedgerReader::open_source(source)
        .await
        .context("cannot open the ledger for reading (the ledger stream)")?;
    let feed: Arc<dyn LedgerFeed> = Arc::new(GatewayFeed {
        reader,
        head: metrics.ledger.watch_head(),
        stop: stop.clone(),
    });
    let ledger = &metrics.ledger;
    let directory = instances::GatewayDirectory {
        own: feed.clone(),
        own_name: ledger
            .instance()
            .map_or_else(|| ledger.id().to_owned(), |i| i.as_str().to_owned()),
        own_ledger: ledger.id().to_owned(),
        store: match source {
            warden_audit::LedgerSource::Postgres { pool, .. } => Some(pool.clone()),
            warden_audit::LedgerSource::Dir(_) => None,
        },
        stop,
    };
    Ok(
        warden_operator::Observability::new(Some(feed), Some(Arc::new(metrics)))
            .with_directory(Arc::new(directory)),
    )
}
