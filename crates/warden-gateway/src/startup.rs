//! Start-up, one function per phase: compile the charter and resolve the environments of the
//! stdio servers (before anything is opened or bound), open the ledger, open `state.db`, start
//! the background work (upstreams, approvals: `approvals.rs`), assemble the application state,
//! then bind both listeners and serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_audit::{NewRecord, RecordKind};
use warden_charter::{CharterCell, CharterSet, Diagnostics};
use warden_core::Clock;
use warden_mcp::Upstreams;
use warden_mcp::child_env::UnsetVariables;
use warden_models::{ModelProxy, ModelTurns};
use warden_operator::OperatorState;
use warden_operator::controls::ControlDesk;
use warden_session::{
    CaptureQuota, Controls, LedgerMark, OperatorCredentials, OperatorRole, ScopeCounters,
    SessionStore, StateDb, TokenBudgets, TurnStore,
};

use crate::app_state::AppState;
use crate::capture::QuotaRecorder;
use crate::config::Config;
use crate::governor::Governor;
use crate::listener::Plane;
use crate::outstanding::ResultDeadlines;
use crate::pending_results::PendingResults;
use crate::routes::agent_router;
use crate::session_refusals::SessionRefusals;
use crate::telemetry::{GatewayMetrics, MeteredRecorder, observability};

mod approvals;
mod charter;
pub(crate) mod checkpoints;
mod exports;
mod ledger;
pub mod provenance_rebuild;
pub mod reconcile;
pub(crate) mod secrets;
use approvals::start_approvals;
use charter::{compile_charters, prepare_upstreams, switch_settings};
use secrets::{other_secrets, write_secret};

/// How often forwarded actions whose result is overdue are recorded as `unknown`.
const UNREPORTED_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often sessions that expired long ago are forgotten in memory.
const SESSION_PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// How long an expired session stays in memory (refused as expired, listed) before it is
/// forgotten (then its token is refused as unknown).
pub const EXPIRED_SESSIONS_KEPT: Duration = Duration::from_secs(86_400);
/// How long start-up waits for upstream servers to connect before serving anyway.
const UPSTREAM_INITIAL_WAIT: Duration = Duration::from_secs(15);
pub use crate::data_dir::{APPROVAL_KEY_FILE, OPERATOR_TOKEN_FILE};

/// Why the gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The charter does not compile.
    #[error("the charter does not compile")]
    Charter(Diagnostics),
    /// The shadow charter does not compile, or governs another agent.
    #[error(transparent)]
    Shadow(#[from] crate::governor::shadow::ShadowError),
    /// A stdio server's `env` names a variable that is not set in the gateway's environment.
    #[error(transparent)]
    UnsetVariables(#[from] UnsetVariables),
    /// Anything else (data directory, ledger, state store, sockets).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The gateway.
#[derive(Debug)]
pub struct Gateway;

/// A running gateway: its addresses, and the handle to stop it.
pub struct RunningGateway {
    /// The agent plane's bound address.
    pub agent_addr: SocketAddr,
    /// The operator plane's bound address.
    pub operator_addr: SocketAddr,
    /// Application state (for in-process callers such as `warden up`).
    pub state: Arc<AppState>,
    /// The first operator token, when this start created it.
    pub bootstrap_operator_token: Option<String>,
    /// The planes' TLS (reloaded on SIGHUP; [`crate::tls::Tls::reload`] does it at once).
    pub tls: crate::tls::Tls,
    pub(crate) stop: CancellationToken,
    pub(crate) mcp_cancel: CancellationToken,
    pub(crate) servers: TaskTracker,
    pub(crate) background: TaskTracker,
    pub(crate) background_cancel: CancellationToken,
    pub(crate) model_tasks: TaskTracker,
    pub(crate) grace: Duration,
    /// The checkpoint signer, when a key is configured (signs the final checkpoint).
    pub(crate) checkpoints: Option<checkpoints::CheckpointSigner>,
}

impl std::fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGateway")
            .field("agent_addr", &self.agent_addr)
            .field("operator_addr", &self.operator_addr)
            .finish()
    }
}

/// The stores kept in `state.db`.
struct StateStores {
    db: StateDb,
    sessions: SessionStore,
    operators: OperatorCredentials,
    scope_counters: ScopeCounters,
    budgets: TokenBudgets,
    bootstrap_operator_token: Option<String>,
}

/// Background work: its tasks, and the tokens that stop it.
struct Background {
    /// Upstream connections, the approval sweeper and the webhook worker.
    tasks: TaskTracker,
    /// Disconnects the upstream servers (the last phase of shutdown).
    cancel: CancellationToken,
    /// Stops the listeners, the sweeper and the webhook, and answers waiting calls.
    stop: CancellationToken,
}

impl Gateway {
    /// Compiles the charter, opens the stores, connects the upstreams, binds both listeners
    /// and serves. The charter and config are checked before any socket is bound.
    pub async fn start(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<RunningGateway, StartError> {
        let set = compile_charters(&config)?;
        // The shadow charter, if any, compiles too, for an agent of the set, or nothing starts.
        let shadow = crate::governor::shadow::load(&config, &set)?;
        // The checkpoint signing key is read before anything is opened or bound: a key others
        // may read (or a bad one) stops the start here, leaving nothing behind.
        let checkpoint_key = checkpoints::load_key(&config)?;
        let telemetry = Arc::new(crate::telemetry::for_set(&set));
        // The certificates are read before anything is opened or bound.
        let tls =
            crate::tls::Tls::load(&config.deployment).context("cannot load the TLS certificate")?;
        crate::listener::raise_open_files_limit();
        let prepared = prepare_upstreams(&set)?;
        crate::data_dir::prepare(&config.data_dir)?;
        let db = crate::store::connect(&config).await?;
        let ledger =
            ledger::open_ledger(&config, &db, (&set, shadow.as_ref()), &clock, &telemetry).await?;
        // Before anything is served: every forwarded action ends in the ledger.
        let reconciled = reconcile::close_forwarded(&ledger)
            .await
            .context("cannot close the forwarded actions left without a result")?;
        let stores = open_state(&config, db, &set, &clock).await?;
        // Each live session's untrusted index, rebuilt from the ledger (fail closed).
        let rebuilt = provenance_rebuild::rebuild(
            &ledger.source(),
            &stores.sessions,
            &set.iter()
                .map(|c| (c.identity.id.clone(), c.data.untrusted.clone()))
                .collect(),
            clock.now(),
        )
        .await;
        if rebuilt.results > 0 || rebuilt.incomplete > 0 {
            tracing::info!(
                sessions = rebuilt.sessions,
                results = rebuilt.results,
                incomplete = rebuilt.incomplete,
                "The live sessions' untrusted index was rebuilt from the ledger."
            );
        }
        let background = Background {
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            stop: CancellationToken::new(),
        };
        // Other instances' changes (PostgreSQL LISTEN/NOTIFY and the one-second poll), until
        // the upstreams are disconnected; nothing on SQLite.
        stores
            .db
            .listen(&background.tasks, background.cancel.clone());
        let model_tasks = TaskTracker::new();
        // The charter in force for the model proxy, the approvals, the operator plane and the
        // console; the governor keeps its own with what it derives (a reload swaps both).
        let charter_cell = Arc::new(CharterCell::new(set.clone()));
        // One set of controls for the governor and the model proxy: a frozen posture stops
        // actions and model calls alike. Reloaded from `state.db`; unreadable, nothing starts.
        let controls = Arc::new(
            Controls::open(&stores.db)
                .await
                .context("cannot read the controls from the state store")?,
        );
        let desk = Arc::new(ControlDesk::new(
            controls.clone(),
            Arc::new(ledger.clone()),
            clock.clone(),
        ));
        // Expired controls are recorded, and the dead man's switch kept.
        background.tasks.spawn(crate::dead_mans_switch::run(
            desk.clone(),
            switch_settings(&set),
            background.stop.clone(),
        ));
        // One capture quota per session for the governor and the model proxy.
        let capture = Arc::new(CaptureQuota::new(config.capture));
        // Each session's last model turns, kept across restarts: an approval raised after one
        // still shows the turns that led to the call.
        let (turn_store, stored_turns) = TurnStore::open(&stores.db)
            .await
            .context("cannot read the model turns from the state store")?;
        let turns = Arc::new(ModelTurns::restored(turn_store, stored_turns));
        // Written behind until the last phase of shutdown (after the ledger's final records),
        // which writes what is left before the state store closes.
        let writing = turns.clone();
        let until = background.cancel.clone();
        background
            .tasks
            .spawn(async move { writing.write_behind(until).await });
        // The model proxy holds every secret of the gateway (provider keys, upstream
        // credentials): it is built before the upstreams start, so that their children's
        // stderr is redacted with the same secrets as everything relayed and recorded.
        let models = Arc::new(
            ModelProxy::new(
                charter_cell.clone(),
                stores.budgets,
                Arc::new(MeteredRecorder::new(
                    Arc::new(QuotaRecorder::new(ledger.clone(), capture.clone())),
                    telemetry.clone(),
                )),
                clock.clone(),
                model_tasks.clone(),
                controls.clone(),
                config.provider_keys.as_ref(),
                &other_secrets(&config, &set, &prepared),
            )
            .context("cannot set up the model proxy")?
            .keeping_turns(turns),
        );
        let upstreams = Upstreams::start(
            prepared.redacting(models.secrets().clone()),
            &background.tasks,
            &background.cancel,
            UPSTREAM_INITIAL_WAIT,
        )
        .await;
        // `warden serve` keeps running and keeps retrying (with backoff) a server that is
        // down; `warden up` stops on it (it reads the same list).
        for down in upstreams.down() {
            if down.connecting {
                tracing::warn!(server = %down.id, "Upstream server is still connecting after the initial wait; its tools are unavailable until it connects.");
            } else {
                tracing::error!(server = %down.id, reason = %down.reason, stderr = %down.stderr.join(" | "), "Upstream server is not connected after the initial wait; its tools are unavailable until it connects.");
            }
        }
        let readiness = Arc::new(crate::readiness::Readiness {
            ledger: ledger.clone(),
            upstreams: upstreams.clone(),
            charter: charter_cell.clone(),
            store: stores.db.postgres().cloned(),
        });
        let approvals = start_approvals(
            &config,
            &charter_cell,
            (&ledger, &telemetry),
            &stores.db,
            &clock,
            &background,
        )
        .await?;
        let metrics = GatewayMetrics {
            telemetry: telemetry.clone(),
            ledger: ledger.clone(),
            sessions: stores.sessions.clone(),
            controls: controls.clone(),
            clock: clock.clone(),
        };
        let operator = Arc::new(OperatorState {
            sessions: stores.sessions.clone(),
            operators: stores.operators,
            approvals: approvals.clone(),
            charter: charter_cell.clone(),
            recorder: Arc::new(ledger.clone()),
            controls: desk.clone(),
            clock: clock.clone(),
            max_body_bytes: config.max_body_bytes,
            observability: observability(&ledger.source(), background.stop.clone(), metrics)
                .await?,
            loaded_at: Default::default(),
        });
        let clock_for_pruning = clock.clone();
        let governor = Arc::new(
            Governor::new(
                &set,
                ledger,
                stores.scope_counters,
                stores.sessions.clone(),
                controls.clone(),
                approvals,
                // The proxy keeps the model turns; approvers see them through the governor.
                models.turns().clone(),
                clock,
                background.stop.clone(),
                ResultDeadlines {
                    // An MCP call is forwarded by the gateway within the upstream timeout; a
                    // second more and it was cut off (its client went away mid-call).
                    mcp: config
                        .upstream_timeout
                        .saturating_add(Duration::from_secs(1)),
                    decide_api: config.result_deadline,
                },
                capture,
            )
            .protecting_data_dir(&config.data_dir)
            .with_shadow(shadow)
            .with_telemetry(telemetry),
        );
        // Results that never come are recorded as `unknown`, once a second; and the ledger's
        // committed head is written to `state.db` (the mark `warden audit verify` compares).
        let sweeper = governor.clone();
        let stop = background.stop.clone();
        let mark = LedgerMark::new(&stores.db);
        background.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(UNREPORTED_SWEEP_INTERVAL) => {
                        sweeper.record_unreported(std::time::Instant::now()).await;
                        if let Err(e) = mark.record(sweeper.ledger().committed_head()).await {
                            tracing::warn!(error = %e, "The ledger mark could not be written to the state store.");
                        }
                    }
                    () = stop.cancelled() => break,
                }
            }
        });
        // Sessions long expired are forgotten in memory, at start and every ten minutes.
        let sessions = stores.sessions.clone();
        let pruner_clock = clock_for_pruning.clone();
        let stop = background.stop.clone();
        background.tasks.spawn(async move {
            loop {
                let pruned = sessions.prune_expired(pruner_clock.now(), EXPIRED_SESSIONS_KEPT);
                if pruned > 0 {
                    tracing::debug!(pruned, "Expired sessions forgotten in memory.");
                }
                tokio::select! {
                    () = tokio::time::sleep(SESSION_PRUNE_INTERVAL) => {}
                    () = stop.cancelled() => break,
                }
            }
        });
        let reload = crate::reload::Reloader::new(&charter_cell.load(), clock_for_pruning.now());
        let pending = PendingResults::start(&stores.db, &config, &governor, &background.tasks)?;
        let state = Arc::new(AppState {
            governor,
            charter: charter_cell,
            upstreams,
            state_db: stores.db,
            sessions: stores.sessions,
            config: config.clone(),
            pending,
            controls: desk,
            models,
            session_refusals: SessionRefusals::default(),
            reload,
        });
        // The agent inventory reads when each charter was put in force from the reloader.
        operator.loaded_at.set({
            let s = Arc::downgrade(&state);
            move |a: &str| s.upgrade().and_then(|s| s.reload.loaded_at(a))
        });
        serve(
            state,
            operator,
            &config,
            background,
            model_tasks,
            stores.bootstrap_operator_token,
            (tls, readiness, checkpoint_key, reconciled.through),
        )
        .await
    }
}

/// Phase 3: `state.db` — sessions, operator credentials (the first one written to the data
/// directory when there is none), scope counters and token budgets.
async fn open_state(
    config: &Config,
    db: StateDb,
    set: &CharterSet,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<StateStores> {
    // On PostgreSQL, as this instance (it notes which sessions it serves).
    let instance = match db.postgres() {
        Some(_) => Some(crate::store::instance(config)?),
        None => None,
    };
    let sessions = SessionStore::open_as(&db, instance.as_ref())
        .await
        .context("cannot open the state store")?;
    let operators = OperatorCredentials::open(&db);
    let mut bootstrap_operator_token = None;
    // Only the first instance of an empty store writes one (race-free on PostgreSQL).
    if let Some(issued) = operators
        .create_first("bootstrap", OperatorRole::Admin, clock.now())
        .await
        .context("cannot create the first operator token")?
    {
        let token = issued.token;
        let path: PathBuf = config.data_dir.join(OPERATOR_TOKEN_FILE);
        write_secret(&path, &token).with_context(|| {
            format!(
                "cannot write the first operator token to `{}`",
                path.display()
            )
        })?;
        tracing::info!(path = %path.display(), "First operator token written (mode 0600).");
        bootstrap_operator_token = Some(token);
    }
    let scope_counters = ScopeCounters::open(&db)
        .await
        .context("cannot open the scope counters")?;
    let each_agents = set
        .iter()
        .map(|c| (c.identity.id.clone(), c.inventory.token_budgets.clone()))
        .collect();
    let budgets = TokenBudgets::open(&db, each_agents)
        .await
        .context("cannot open the token budgets")?;
    Ok(StateStores {
        db,
        sessions,
        operators,
        scope_counters,
        budgets,
        bootstrap_operator_token,
    })
}

/// Phase 5: bind both listeners and serve them; the start is recorded.
async fn serve(
    state: Arc<AppState>,
    operator: Arc<OperatorState>,
    config: &Config,
    background: Background,
    model_tasks: TaskTracker,
    bootstrap_operator_token: Option<String>,
    (tls, readiness, checkpoint_key, closed_through): (
        crate::tls::Tls,
        Arc<crate::readiness::Readiness>,
        Option<warden_audit::checkpoint::SigningKey>,
        u64,
    ),
) -> Result<RunningGateway, StartError> {
    let agent_listener = tokio::net::TcpListener::bind(config.agent_listen)
        .await
        .with_context(|| format!("cannot bind the agent plane to {}", config.agent_listen))?;
    let operator_listener = tokio::net::TcpListener::bind(config.operator_listen)
        .await
        .with_context(|| {
            format!(
                "cannot bind the operator plane to {}",
                config.operator_listen
            )
        })?;
    let agent_addr = agent_listener.local_addr().context("agent listener")?;
    let operator_addr = operator_listener
        .local_addr()
        .context("operator listener")?;
    let servers = TaskTracker::new();
    // The MCP service gets its own token, cancelled only after the drain: cancelling it first
    // would cut in-flight calls off with a bare 500 instead of their (denied) answers.
    let mcp_cancel = CancellationToken::new();
    let limits = config.limits;
    let console = Arc::new(
        warden_console::ConsoleState::new(
            operator.clone(),
            warden_audit::LedgerReader::open_source(&state.governor.ledger().source())
                .await
                .context("cannot open the ledger for reading (the console)")?,
            state.governor.ledger().watch_head(),
            config.data_dir.clone(),
            tls.operator.is_some(),
            background.stop.clone(),
        )
        .with_fleet(state.governor.ledger().source()),
    );
    background
        .tasks
        .spawn(warden_console::background(console.clone()));
    // OpenTelemetry export, when configured: it follows the committed head with its own
    // read-only connection (never on the action path) until the last phase of shutdown,
    // after the ledger's final records, and sends what is left within 3 s.
    if let Some(otel) = config.otel.clone() {
        let reader = warden_audit::LedgerReader::open_source(&state.governor.ledger().source())
            .await
            .context("cannot open the ledger for reading (OpenTelemetry export)")?;
        background.tasks.spawn(warden_otel::run(
            otel,
            reader,
            state.governor.ledger().watch_head(),
            state.governor.telemetry.clone(),
            background.cancel.clone(),
        ));
    }
    // Signed checkpoints of the ledger, and its copies outside the agent's reach: both follow
    // the committed head, never on the action path.
    let checkpoint_signer = checkpoints::spawn(config, checkpoint_key, &state, &background).await?;
    exports::spawn(config, &state, &background).await?;
    // The fleet's followers (PostgreSQL): one line each, see `crate::fleet`.
    crate::fleet::sessions::spawn(&state, &background.tasks, background.cancel.clone());
    crate::fleet::approvals::spawn(&state, &background.tasks, background.cancel.clone());
    crate::fleet::controls::spawn(&state, &background.tasks, background.cancel.clone());

    let operator_app =
        crate::routes::operator_app(operator, state.clone(), console, readiness.clone(), config);
    crate::tls::warn_if_exposed("agent", agent_addr, tls.agent.is_some());
    crate::tls::warn_if_exposed("operator", operator_addr, tls.operator.is_some());
    // One SIGHUP handler: the TLS certificates (when a plane serves TLS), then the charter.
    if let Some(reload) =
        crate::reload::sighup::on_sighup(state.clone(), tls.clone(), background.stop.clone())
    {
        background.tasks.spawn(reload);
    }
    let planes = [
        Plane {
            name: "agent",
            listener: agent_listener,
            app: agent_router(
                state.clone(),
                mcp_cancel.clone(),
                crate::readiness::router(readiness),
            ),
            max_connections: limits.agent_max_connections,
            tls: tls.agent.clone(),
        },
        Plane {
            name: "operator",
            listener: operator_listener,
            app: operator_app,
            max_connections: limits.operator_max_connections,
            tls: tls.operator.clone(),
        },
    ];
    for plane in planes {
        let stop = background.stop.clone();
        let connections = servers.clone();
        servers.spawn(crate::listener::serve(plane, limits, stop, connections));
    }
    servers.close();
    let _ = state
        .governor
        .ledger()
        .append(NewRecord {
            session: None,
            kind: RecordKind::GatewayStarted,
            payload: json!({ "agent_plane": agent_addr.to_string(), "operator_plane": operator_addr.to_string(), (reconcile::CLOSED_THROUGH): closed_through }),
        })
        .await;
    tracing::info!(agent = %agent_addr, operator = %operator_addr, "Gateway listening.");
    Ok(RunningGateway {
        agent_addr,
        operator_addr,
        state,
        bootstrap_operator_token,
        tls,
        stop: background.stop,
        mcp_cancel,
        servers,
        background: background.tasks,
        background_cancel: background.cancel,
        model_tasks,
        grace: config.shutdown_grace,
        checkpoints: checkpoint_signer,
    })
}
