//! Live reload of the charter: a new charter put in force while the gateway runs.
//!
//! Every reload (the operator API `POST /v1/charter/reload`, `warden charter reload`,
//! `SIGHUP`) is [`reload`]: under one reload lock — a second reload asked for while one runs
//! is refused at once ([`Refusal::Busy`], `409 reload_in_progress`), never queued — it reads
//! the charter again from the path the gateway started with and compiles it (errors are
//! recorded as `charter_refused` with their file:line:col diagnostics, and the old charter
//! stays in force); an unchanged charter (the same hash) is answered as such and not
//! recorded; what a live reload cannot change (the agent id, the token budgets, the dead man's
//! switch, a provider key variable or a server secret the gateway did not read at start-up, a
//! server whose environment or credentials cannot be resolved) refuses it, recorded too; then
//! `charter_loaded` is recorded durably (a reload the ledger cannot record is refused: no
//! unrecorded charter change), then [`put_in_force`], then upstream servers the new charter
//! adds are started, those it removes stopped and those it changes restarted.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use warden_audit::{NewRecord, RecordKind};
use warden_charter::CompiledCharter;
use warden_charter::diff::CharterDiff;

use crate::app_state::AppState;
use crate::governor::Redecided;

mod checks;
pub mod reloader;
pub mod sighup;

pub use reloader::Reloader;

/// The most diagnostics a refusal carries (and records); the count says how many there were.
pub const MAX_DIAGNOSTICS: usize = 50;
/// How long a reload waits for the servers it starts to connect before it answers (a slower
/// server keeps connecting in the background, as at start-up).
pub const UPSTREAM_WAIT: Duration = Duration::from_secs(10);

/// Who asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The operator API.
    Api,
    /// `warden charter reload` (through the operator API).
    Cli,
    /// The `SIGHUP` signal.
    Sighup,
}

/// A reload done (or found unnecessary).
#[derive(Debug, Clone, Serialize)]
pub struct Loaded {
    /// The charter in force now.
    pub charter: String,
    /// The charter it replaced (the same when `unchanged`).
    pub previous: String,
    /// Whether the file compiled to the charter already in force (nothing was done or
    /// recorded).
    pub unchanged: bool,
    /// The charter cell's generation after the reload.
    pub generation: u64,
    /// What changed.
    pub changes: CharterDiff,
    /// What the re-decision of pending approvals did (`approval`, `outcome`).
    pub redecided: Vec<serde_json::Value>,
    /// Servers started: those the new charter adds, and those whose definition it changes
    /// (restarted).
    pub started: Vec<String>,
    /// Servers stopped: those the new charter removes.
    pub stopped: Vec<String>,
    /// The compiler's warnings, as file:line:col lines (bounded).
    pub warnings: Vec<String>,
}

/// Why a reload was refused; the charter in force stays.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// Another reload is under way.
    #[error("another reload of the charter is under way; try again when it is done")]
    Busy,
    /// The charter does not compile (or cannot be read).
    #[error(
        "the charter at `{path}` does not compile (errors: {count}); the charter in force stays"
    )]
    Invalid {
        /// The charter's path.
        path: String,
        /// How many errors.
        count: usize,
        /// The first errors, as file:line:col lines.
        errors: Vec<String>,
    },
    /// The new charter changes what only a restart can change.
    #[error("{reason}; the charter in force stays")]
    Unchangeable {
        /// What, and how to do it instead.
        reason: String,
    },
    /// The ledger cannot record the change.
    #[error("the ledger cannot record the new charter ({reason}); the charter in force stays")]
    Unrecorded {
        /// The ledger's error.
        reason: String,
    },
}

impl Refusal {
    /// The stable code of the refusal, as the API answers it.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Busy => "reload_in_progress",
            Refusal::Invalid { .. } => "charter_invalid",
            Refusal::Unchangeable { .. } => "charter_unchangeable",
            Refusal::Unrecorded { .. } => "ledger_unavailable",
        }
    }
}

/// Reloads the charter from the path the gateway started with (see the module's doc for the
/// order); `via` and `by` (the operator credential's name, `None` for a signal) are recorded.
///
/// What it guarantees: the charter in force changes only after `charter_loaded` is durable;
/// on any refusal the charter in force, the upstream servers and the approvals are as they
/// were; decisions under way when it swaps finish under the charter they started with.
pub async fn reload(state: &AppState, via: Via, by: Option<&str>) -> Result<Loaded, Refusal> {
    let Ok(_guard) = state.reload.lock.try_lock() else {
        return Err(Refusal::Busy);
    };
    let path = state.config.charter.display().to_string();
    let current = state.charter.load();
    let compiled = match warden_charter::load(&state.config.charter) {
        Ok(c) => c,
        Err(diagnostics) => {
            let errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
            let refusal = Refusal::Invalid {
                path: path.clone(),
                count: errors.len(),
                errors: errors.into_iter().take(MAX_DIAGNOSTICS).collect(),
            };
            record_refusal(state, via, by, &path, &refusal).await;
            return Err(refusal);
        }
    };
    let warnings: Vec<String> = compiled
        .warnings
        .warnings()
        .take(MAX_DIAGNOSTICS)
        .map(ToString::to_string)
        .collect();
    let next = Arc::new(compiled.charter);
    if next.hash == current.hash {
        return Ok(Loaded {
            charter: current.hash.to_prefixed_hex(),
            previous: current.hash.to_prefixed_hex(),
            unchanged: true,
            generation: state.charter.generation(),
            changes: CharterDiff::default(),
            redecided: Vec::new(),
            started: Vec::new(),
            stopped: Vec::new(),
            warnings,
        });
    }
    let changes = warden_charter::diff::diff(&current, &next);
    let prepared = match checks::check(state, &current, &next, &changes) {
        Ok(p) => p,
        Err(refusal) => {
            record_refusal(state, via, by, &path, &refusal).await;
            return Err(refusal);
        }
    };
    let record = NewRecord {
        session: None,
        kind: RecordKind::CharterLoaded,
        payload: json!({
            "charter": next.hash,
            "agent": next.identity.id,
            "files": next.files,
            "rules": next.rules.len(),
            "previous": current.hash,
            "via": via,
            "by": by,
            "changes": changes,
        }),
    };
    if let Err(e) = state.governor.ledger().append(record).await {
        tracing::error!(error = %e, "The ledger cannot record the new charter; the reload is refused and the charter in force stays.");
        return Err(Refusal::Unrecorded {
            reason: e.to_string(),
        });
    }
    let (previous, redecided) = put_in_force(state, next.clone()).await;
    // The metrics count the new charter's tools, servers and routes by name.
    state
        .governor
        .telemetry
        .set_bounds(crate::telemetry::bounds(&next));
    *state
        .reload
        .loaded_at
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = state.governor.now();
    // After the swap: nothing new is routed to a removed server when it stops.
    // Every server running that the new charter does not name, or names without a transport
    // (the decide API's); not the summary's list, which is bounded.
    let stopped: Vec<String> = state
        .upstreams
        .ids()
        .into_iter()
        .filter(|id| {
            !next
                .inventory
                .servers
                .iter()
                .any(|s| &s.id == id && s.transport != warden_charter::Transport::DecideApi)
        })
        .filter(|id| state.upstreams.stop(id))
        .collect();
    let started = prepared.ids();
    if !started.is_empty() {
        state.upstreams.add(prepared, UPSTREAM_WAIT).await;
    }
    tracing::info!(
        charter = %next.hash.to_prefixed_hex(),
        previous = %previous.hash.to_prefixed_hex(),
        via = ?via,
        started = ?started,
        stopped = ?stopped,
        "Charter reloaded."
    );
    Ok(Loaded {
        charter: next.hash.to_prefixed_hex(),
        previous: previous.hash.to_prefixed_hex(),
        unchanged: false,
        generation: state.charter.generation(),
        changes,
        redecided: redecided
            .iter()
            .map(|r| json!({ "approval": r.approval, "outcome": r.outcome }))
            .collect(),
        started,
        stopped,
        warnings,
    })
}

/// Records `charter_refused` for `refusal`; a ledger that cannot take it is logged (the reload
/// is refused all the same).
async fn record_refusal(
    state: &AppState,
    via: Via,
    by: Option<&str>,
    path: &str,
    refusal: &Refusal,
) {
    let payload = match refusal {
        Refusal::Invalid { errors, count, .. } => {
            json!({ "via": via, "by": by, "path": path, "errors": errors, "count": count })
        }
        other => json!({ "via": via, "by": by, "path": path, "reason": other.to_string() }),
    };
    tracing::warn!(error = %refusal, "A charter reload was refused; the charter in force stays.");
    let record = NewRecord {
        session: None,
        kind: RecordKind::CharterRefused,
        payload,
    };
    if let Err(e) = state.governor.ledger().append(record).await {
        tracing::error!(error = %e, "The ledger cannot record a refused charter reload.");
    }
}

/// Puts `next` in force everywhere at once — the governor (with what it derives) and the
/// shared cell the model proxy, the approvals, the operator plane and the console read —
/// then re-decides every pending approval and unused grant raised under the charter it
/// replaced. Returns that charter and what the re-decision did.
///
/// What it guarantees: every decision that starts after it returns is taken under `next`;
/// one already under way finishes under the charter it loaded. Call it with the reload lock
/// held, after `charter_loaded` is durable.
pub async fn put_in_force(
    state: &AppState,
    next: Arc<CompiledCharter>,
) -> (Arc<CompiledCharter>, Vec<Redecided>) {
    state.governor.install(next.clone());
    let previous = state.charter.swap(next);
    let redecided = state.governor.redecide_pending(&previous).await;
    (previous, redecided)
}
