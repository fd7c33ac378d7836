//! The observer's loop: the ledger stream in, the engine in the middle, the control API, the
//! alert webhook, the heartbeat, the store and the metrics around it.
//!
//! Tasks (all on one [`TaskTracker`], all stopped by one [`CancellationToken`]):
//! - the stream reader ([`StreamClient::follow`]), from the checkpoint's record + 1, handing
//!   records through a bounded channel (1024) to the loop;
//! - the loop (this function): each record into the engine, each response onto the sender's
//!   bounded queue (256; a full queue slows the reading, it never drops an intervention), a
//!   checkpoint every `checkpoint_interval`;
//! - for a fleet on PostgreSQL, a reader of every other instance's chain ([`crate::peers`]),
//!   each checked on its own and resumed from its head saved with the checkpoint, feeding the
//!   same engine;
//! - the control sender ([`ControlSender`]), one response at a time, in order;
//! - the alert webhook worker, the heartbeat, the metrics listener;
//! - the sweep: every `sweep_interval`, the whole chain read again from the first record up
//!   to the last one read, so a record changed after it was read is found.
//!
//! Shutdown, in order: stop reading; let the sender finish what is queued (its retries are
//! bounded); save the checkpoint; stop the other tasks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_audit::{Head, Problem, Record, RecordKind};
use warden_charter::CompiledCharter;
use warden_core::Clock;

use crate::alerts::{self, AlertSink, AlertTarget};
use crate::controls::{ControlSender, Outgoing};
use crate::engine::{Engine, EngineState};
use crate::gateway::{GatewayClient, Token};
use crate::metrics::{self, Metrics};
use crate::peers::PeerItem;
use crate::response::Response;
use crate::store::{Checkpoint, Store, StoreError};
use crate::stream::{self, ChainCheck, StreamClient, StreamError, StreamItem};

/// How often the checkpoint is saved by default.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
/// How often the whole chain is read again by default.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(600);
/// Records that may wait between the stream reader and the engine.
const RECORD_QUEUE: usize = 1024;
/// Responses that may wait for the control sender.
const RESPONSE_QUEUE: usize = 256;

/// Everything the observer runs with (compiled: files read, addresses bound).
#[derive(Debug)]
pub struct ObserverConfig {
    /// The gateway's operator plane, with the observer's credential.
    pub gateway: GatewayClient,
    /// The charter file or directory (read again when the ledger says another charter was
    /// loaded).
    pub charter_path: PathBuf,
    /// The charter, compiled (the gateway's first agent's, for a set).
    pub charter: Arc<CompiledCharter>,
    /// The other charters of the gateway's set, each with its file or directory (empty for
    /// a one-charter gateway): each session is observed under its own agent's charter.
    pub others: Vec<(PathBuf, Arc<CompiledCharter>)>,
    /// The observer's data directory.
    pub data_dir: PathBuf,
    /// The metrics listener, bound, if any.
    pub metrics_listener: Option<tokio::net::TcpListener>,
    /// The token `/metrics` callers must present.
    pub metrics_token: Token,
    /// The alert webhook, if any.
    pub alert: Option<AlertTarget>,
    /// The heartbeat interval; `None`: a third of the charter's heartbeat deadline.
    pub heartbeat_interval: Option<Duration>,
    /// How often the checkpoint is saved.
    pub checkpoint_interval: Duration,
    /// How often the whole chain is read again; `None`: never.
    pub sweep_interval: Option<Duration>,
    /// The largest record (one stream line) accepted, in bytes.
    pub max_line_bytes: usize,
}

/// Why the observer stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stream cannot be followed.
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// The heartbeat deadline the charter sets (its `observer.heartbeat_deadline`; 10 s by
/// default).
pub fn heartbeat_deadline(charter: &CompiledCharter) -> Duration {
    charter.observer.heartbeat_deadline
}

/// The engine's state, for the checkpoint.
fn engine_state(engine: &Engine) -> Option<serde_json::Value> {
    match serde_json::to_value(engine.state()) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot save the engine's state; the checkpoint keeps the position only.");
            None
        }
    }
}

/// The engine as of a checkpoint: a fresh one when there is none. A state that cannot be read
/// (written by another version) is dropped with a warning: the engine then learns again from
/// the records that follow, and its baselines start empty.
fn restore_engine(charter: Arc<CompiledCharter>, state: Option<serde_json::Value>) -> Engine {
    match state.map(serde_json::from_value::<EngineState>) {
        Some(Ok(state)) => Engine::restore(charter, state),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "The engine's saved state cannot be read; it starts afresh.");
            Engine::new(charter)
        }
        None => Engine::new(charter),
    }
}

/// The shared view of the last record read.
#[derive(Debug, Default)]
struct LastRead {
    seq: Arc<AtomicU64>,
    head: Mutex<Option<Head>>,
}

impl LastRead {
    fn set(&self, head: Head) {
        self.seq.store(head.seq, Ordering::Relaxed);
        if let Ok(mut h) = self.head.lock() {
            *h = Some(head);
        }
    }

    fn get(&self) -> Option<Head> {
        self.head.lock().ok().and_then(|h| *h)
    }
}

/// Runs the observer until `cancel` (returns `Ok`) or until it cannot go on.
pub async fn run(
    config: ObserverConfig,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> Result<(), RunError> {
    let (store, tightened) = Store::open(&config.data_dir)?;
    for t in tightened {
        tracing::warn!(%t, "The observer's data was open to group or others; it is now the owner's only.");
    }
    let store = Arc::new(store);
    let checkpoint = store.checkpoint()?;
    let mut charter = config.charter.clone();
    let mut others = config.others.clone();
    let mut engine = restore_engine(
        charter.clone(),
        checkpoint.as_ref().and_then(|c| c.engine.clone()),
    );
    if !others.is_empty() {
        engine.set_agents(set_of(&charter, &others));
    }
    let start = checkpoint.as_ref().map(|c| c.head);
    let metrics = Arc::new(Metrics::new());
    let last_read = Arc::new(LastRead::default());
    if let Some(head) = start {
        last_read.set(head);
        metrics.read(head.seq);
    }
    tracing::info!(
        from = start.map_or(1, |h| h.seq.saturating_add(1)),
        store = %store.path().display(),
        "The observer starts."
    );

    let tasks = TaskTracker::new();
    let stop_others = cancel.child_token();
    let stream = StreamClient::new(config.gateway.clone(), config.max_line_bytes);

    // The stream reader.
    let (record_tx, mut record_rx) = mpsc::channel(RECORD_QUEUE);
    let reader = {
        let (stream, stop) = (stream.clone(), cancel.child_token());
        tasks.spawn(async move { stream.follow(ChainCheck::new(start), record_tx, stop).await })
    };

    // The other instances of a fleet, each from the head saved with the checkpoint.
    let mut peer_heads: std::collections::HashMap<String, Head> =
        store.peer_heads()?.into_iter().collect();
    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerItem>(RECORD_QUEUE);
    tasks.spawn(crate::peers::follow(
        stream.clone(),
        peer_heads.clone(),
        peer_tx,
        tasks.clone(),
        cancel.child_token(),
    ));

    // The control sender and the alert webhook.
    let alert_sink = match &config.alert {
        Some(target) => {
            let (sink, rx) = AlertSink::new(target.format, metrics.clone());
            tasks.spawn(alerts::deliver(
                config.gateway.http().clone(),
                target.clone(),
                rx,
                metrics.clone(),
            ));
            sink
        }
        None => AlertSink::none(metrics.clone()),
    };
    let (response_tx, response_rx) = mpsc::channel(RESPONSE_QUEUE);
    let sender = ControlSender::new(
        config.gateway.clone(),
        store.clone(),
        metrics.clone(),
        clock.clone(),
    );
    let sending = tasks.spawn(sender.run(response_rx, alert_sink));

    // The heartbeat.
    let interval = config
        .heartbeat_interval
        .unwrap_or_else(|| heartbeat_deadline(&charter) / 3)
        .max(Duration::from_millis(100));
    tasks.spawn(crate::heartbeat::run(
        config.gateway.clone(),
        interval,
        last_read.seq.clone(),
        stream.connected(),
        stop_others.clone(),
    ));

    // The metrics listener.
    if let Some(listener) = config.metrics_listener {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "The observer's metrics are served at /metrics.");
        }
        let router = metrics::router(metrics.clone(), config.metrics_token.clone());
        tasks.spawn(metrics::serve(listener, router, stop_others.clone()));
    }

    // The sweep.
    let (sweep_tx, mut sweep_rx) = mpsc::channel::<Problem>(4);
    if let Some(every) = config.sweep_interval {
        let (stream, last_read, stop) = (stream.clone(), last_read.clone(), stop_others.clone());
        tasks.spawn(async move {
            let mut reported: Option<Problem> = None;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                let Some(upto) = last_read.get() else {
                    continue;
                };
                match stream::sweep(&stream, upto, &stop).await {
                    Ok(Some(problem)) if reported.as_ref() != Some(&problem) => {
                        reported = Some(problem.clone());
                        if sweep_tx.send(problem).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "Cannot read the ledger again to check it.")
                    }
                }
            }
        });
    }

    let mut ticks =
        tokio::time::interval(config.checkpoint_interval.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut saved: Saved = (start, 0);
    let mut outcome = Ok(());
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticks.tick() => {
                save(&store, &engine, (last_read.get(), &peer_heads), &mut saved, clock.as_ref());
            }
            Some(peer) = peer_rx.recv() => {
                let Some((seq, time, responses)) = peer_item(peer, &mut engine, &metrics, &mut peer_heads) else { continue };
                if enqueue(&response_tx, responses, seq, time, &metrics).await.is_err() { break }
            }
            Some(problem) = sweep_rx.recv() => {
                let seq = u64::try_from(problem.seq()).unwrap_or(0);
                let responses = broken(&mut engine, &metrics, seq, &problem);
                let time = clock.now();
                if enqueue(&response_tx, responses, seq, time, &metrics).await.is_err() { break }
            }
            item = record_rx.recv() => {
                let Some(item) = item else {
                    // The reader stopped on its own: its error says why.
                    outcome = match reader.await {
                        Ok(Err(e)) => Err(RunError::Stream(e)),
                        _ => Ok(()),
                    };
                    break;
                };
                match item {
                    StreamItem::Head(head) => metrics.head(head),
                    StreamItem::Broken { seq, problem } => {
                        let responses = broken(&mut engine, &metrics, seq, &problem);
                        let time = clock.now();
                        if enqueue(&response_tx, responses, seq, time, &metrics).await.is_err() { break }
                    }
                    StreamItem::Record(record) => {
                        if record.kind == RecordKind::CharterLoaded {
                            match other_agent(&record, &charter) {
                                Some(agent) => reload_other(&agent, &record, &charter, &mut others, &mut engine),
                                None => {
                                    reload_charter(&config.charter_path, &record, &mut charter, &mut engine);
                                    if !others.is_empty() {
                                        engine.set_agents(set_of(&charter, &others));
                                    }
                                }
                            }
                        }
                        let responses = engine.ingest(&record);
                        last_read.set(Head { seq: record.seq, hash: record.hash });
                        metrics.read(record.seq);
                        if enqueue(&response_tx, responses, record.seq, record.time, &metrics).await.is_err() { break }
                    }
                }
            }
        }
    }
    // Stop reading; let the sender finish what is queued; save; stop the rest.
    cancel.cancel();
    drop(record_rx);
    drop(response_tx);
    let _ = sending.await;
    save(
        &store,
        &engine,
        (last_read.get(), &peer_heads),
        &mut saved,
        clock.as_ref(),
    );
    stop_others.cancel();
    tasks.close();
    tasks.wait().await;
    outcome
}

/// The engine's responses to a broken chain (logged: an operator must look).
fn broken(engine: &mut Engine, metrics: &Metrics, seq: u64, problem: &Problem) -> Vec<Response> {
    metrics.chain_broken();
    tracing::error!(seq, problem = %problem, "The ledger's hash chain is broken.");
    engine.chain_broken(seq, &problem.to_string())
}

/// Queues `responses` for the sender (waiting for room).
async fn enqueue(
    tx: &mpsc::Sender<Outgoing>,
    responses: Vec<Response>,
    seq: u64,
    record_time: time::OffsetDateTime,
    metrics: &Metrics,
) -> Result<(), ()> {
    for response in responses {
        for signal in &response.signals {
            metrics.detected(&signal.kind);
        }
        tx.send(Outgoing {
            response,
            seq,
            record_time,
        })
        .await
        .map_err(|_| ())?;
    }
    Ok(())
}

/// Saves the checkpoint if a record was read since the last one.
fn save(
    store: &Store,
    engine: &Engine,
    (head, peers): (Option<Head>, &std::collections::HashMap<String, Head>),
    saved: &mut Saved,
    clock: &dyn Clock,
) {
    let Some(head) = head else { return };
    let peers: Vec<(String, Head)> = peers.iter().map(|(i, h)| (i.clone(), *h)).collect();
    let peer_seqs: u64 = peers.iter().fold(0u64, |n, (_, h)| n.wrapping_add(h.seq));
    if saved.0 == Some(head) && saved.1 == peer_seqs {
        return;
    }
    let checkpoint = Checkpoint {
        head,
        engine: engine_state(engine),
        saved_at: clock.now(),
    };
    match store.save_checkpoint(&checkpoint, &peers) {
        Ok(()) => *saved = (Some(head), peer_seqs),
        Err(e) => tracing::warn!(error = %e, "Cannot save the observer's checkpoint."),
    }
}

/// What was last saved: the primary head and the sum of the other instances' sequence
/// numbers (every chain only grows, so an unchanged sum means nothing moved).
type Saved = (Option<Head>, u64);

/// Another instance's item: a record goes to the engine (its head kept, to be saved with the
/// checkpoint); a broken chain is reported as the primary's is. Returns what to enqueue.
fn peer_item(
    peer: PeerItem,
    engine: &mut Engine,
    metrics: &Metrics,
    heads: &mut std::collections::HashMap<String, Head>,
) -> Option<(u64, time::OffsetDateTime, Vec<Response>)> {
    match peer.item {
        StreamItem::Head(_) => None,
        StreamItem::Broken { seq, problem } => {
            tracing::error!(instance = %peer.instance, seq, problem = %problem, "Another instance's hash chain is broken.");
            let responses = broken(engine, metrics, seq, &problem);
            Some((seq, time::OffsetDateTime::now_utc(), responses))
        }
        StreamItem::Record(record) => {
            let responses = engine.ingest(&record);
            heads.insert(
                peer.instance.to_string(),
                Head {
                    seq: record.seq,
                    hash: record.hash,
                },
            );
            Some((record.seq, record.time, responses))
        }
    }
}

/// Every charter of the set: the first agent's and the others.
fn set_of(
    first: &Arc<CompiledCharter>,
    others: &[(PathBuf, Arc<CompiledCharter>)],
) -> Vec<Arc<CompiledCharter>> {
    std::iter::once(first.clone())
        .chain(others.iter().map(|(_, c)| c.clone()))
        .collect()
}

/// The agent a `charter_loaded` record names, when it is not the first agent's.
fn other_agent(record: &Record, first: &CompiledCharter) -> Option<String> {
    record
        .payload
        .get("agent")
        .and_then(serde_json::Value::as_str)
        .filter(|a| *a != first.identity.id)
        .map(str::to_owned)
}

/// A `charter_loaded` record for another agent of the set: its charter is read again and
/// applied to its sessions if it is the one the gateway loaded; otherwise (or for an agent
/// the observer was not given) the engine keeps what it has, and says so.
fn reload_other(
    agent: &str,
    record: &Record,
    first: &Arc<CompiledCharter>,
    others: &mut [(PathBuf, Arc<CompiledCharter>)],
    engine: &mut Engine,
) {
    let loaded = record
        .payload
        .get("charter")
        .and_then(serde_json::Value::as_str);
    let Some((path, charter)) = others.iter_mut().find(|(_, c)| c.identity.id == agent) else {
        tracing::warn!(
            agent,
            "The ledger names an agent whose charter the observer was not given; its sessions are observed under the first charter."
        );
        return;
    };
    if loaded.is_none_or(|h| h == charter.hash.to_prefixed_hex()) {
        return;
    }
    match warden_charter::load(path) {
        Ok(compiled) if Some(compiled.charter.hash.to_prefixed_hex().as_str()) == loaded => {
            tracing::info!(agent, charter = ?loaded, "The gateway loaded a new charter for an agent; the observer follows.");
            *charter = Arc::new(compiled.charter);
        }
        Ok(_) | Err(_) => {
            tracing::warn!(agent, gateway = ?loaded, path = %path.display(), "The ledger names a charter the observer does not have for an agent; it goes on with its own.");
            return;
        }
    }
    engine.set_agents(set_of(first, others));
}

/// A `charter_loaded` record naming another charter than the engine's: the charter file is
/// read again, and applied if it is the one the gateway loaded; otherwise the engine keeps
/// the one it has (and says so).
fn reload_charter(
    path: &std::path::Path,
    record: &Record,
    charter: &mut Arc<CompiledCharter>,
    engine: &mut Engine,
) {
    let loaded = record
        .payload
        .get("charter")
        .and_then(serde_json::Value::as_str);
    let current = charter.hash.to_prefixed_hex();
    if loaded.is_none_or(|h| h == current) {
        return;
    }
    match warden_charter::load(path) {
        Ok(compiled) if Some(compiled.charter.hash.to_prefixed_hex().as_str()) == loaded => {
            tracing::info!(charter = ?loaded, "The gateway loaded a new charter; the observer follows.");
            *charter = Arc::new(compiled.charter);
            engine.set_charter(charter.clone());
        }
        Ok(_) | Err(_) => tracing::warn!(
            gateway = ?loaded, observer = %current, path = %path.display(),
            "The ledger names a charter the observer does not have (an earlier one, or a change not given to the observer); it goes on with its own."
        ),
    }
}
