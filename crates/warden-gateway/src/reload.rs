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

use std::sync::Arc;
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
    /// The agent's charter in force now, when the reload was of one agent (asked for, or
    /// the set holds one) — with `previous`, `changes` and `redecided` beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charter: Option<String>,
    /// The charter it replaced (the same when `unchanged`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// What changed in that charter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<CharterDiff>,
    /// What the re-decision of that agent's pending approvals did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redecided: Option<Vec<serde_json::Value>>,
    /// Whether the files compiled to the charters already in force (nothing was done or
    /// recorded).
    pub unchanged: bool,
    /// The charter cell's generation after the reload.
    pub generation: u64,
    /// Every agent whose charter was put in force, each with its hashes and changes.
    pub agents: Vec<AgentLoaded>,
    /// Servers started: those the new charters add, and those whose definition they change
    /// (restarted).
    pub started: Vec<String>,
    /// Servers stopped: those no charter names any more.
    pub stopped: Vec<String>,
    /// The compiler's warnings, as file:line:col lines (bounded).
    pub warnings: Vec<String>,
}

/// One agent's charter put in force by a reload.
#[derive(Debug, Clone, Serialize)]
pub struct AgentLoaded {
    /// The agent.
    pub agent: String,
    /// Its charter in force now.
    pub charter: String,
    /// The charter it replaced.
    pub previous: String,
    /// What changed.
    pub changes: CharterDiff,
    /// What the re-decision of its pending approvals did (`approval`, `outcome`).
    pub redecided: Vec<serde_json::Value>,
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
    /// The reload names an agent the gateway does not govern.
    #[error("`{agent}` is not an agent of this gateway; agents: {agents}")]
    UnknownAgent {
        /// The agent asked for.
        agent: String,
        /// The gateway's agents, comma-separated.
        agents: String,
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
            Refusal::UnknownAgent { .. } => "unknown_agent",
            Refusal::Unrecorded { .. } => "ledger_unavailable",
        }
    }
}

/// Reloads the charters from where the gateway started with them (see the module's doc for
/// the order): every agent's whose files changed, or only `agent`'s when one is named (the
/// whole set is compiled either way: the set must hold together). `via` and `by` (the
/// operator credential's name, `None` for a signal) are recorded.
///
/// What it guarantees: a charter in force changes only after its `charter_loaded` is durable
/// (all the changed agents' in one commit); on any refusal every charter in force, the
/// upstream servers and the approvals are as they were; decisions under way when it swaps
/// finish under the charter they started with.
pub async fn reload(
    state: &AppState,
    via: Via,
    by: Option<&str>,
    agent: Option<&str>,
) -> Result<Loaded, Refusal> {
    let Ok(_guard) = state.reload.lock.try_lock() else {
        return Err(Refusal::Busy);
    };
    let path = state.config.charters.describe();
    let current = state.charter.load();
    if let Some(a) = agent
        && current.get(a).is_none()
    {
        let refusal = Refusal::UnknownAgent {
            agent: a.chars().take(64).collect(),
            agents: current.agents().collect::<Vec<_>>().join(", "),
        };
        record_refusal(state, via, by, &path, &refusal).await;
        return Err(refusal);
    }
    let compiled = match state.config.charters.load() {
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
    let changed = match checks::changed_agents(&current, &compiled.set, agent) {
        Ok(changed) => changed,
        Err(refusal) => {
            record_refusal(state, via, by, &path, &refusal).await;
            return Err(refusal);
        }
    };
    let one = agent.or_else(|| (current.len() == 1).then(|| current.first().identity.id.as_str()));
    if changed.is_empty() {
        let same = one
            .and_then(|a| current.get(a))
            .map(|c| c.hash.to_prefixed_hex());
        return Ok(Loaded {
            charter: same.clone(),
            previous: same,
            changes: one.map(|_| CharterDiff::default()),
            redecided: one.map(|_| Vec::new()),
            unchanged: true,
            generation: state.charter.generation(),
            agents: Vec::new(),
            started: Vec::new(),
            stopped: Vec::new(),
            warnings,
        });
    }
    // Every changed agent is checked (and its servers prepared) before anything is recorded.
    let mut next_set: warden_charter::CharterSet = (*current).clone();
    let mut plans = Vec::with_capacity(changed.len());
    let mut prepared: Option<warden_mcp::PreparedUpstreams> = None;
    for next in changed {
        let Some(was) = current.get(&next.identity.id).cloned() else {
            continue;
        };
        let changes = warden_charter::diff::diff(&was, &next);
        let checked =
            checks::check(state, &was, &next, &changes).and_then(|p| match prepared.take() {
                None => Ok(p),
                Some(earlier) => earlier.merge(p).map_err(|e| Refusal::Unchangeable {
                    reason: format!("a server cannot be prepared: {e}"),
                }),
            });
        match checked {
            Ok(p) => prepared = Some(p),
            Err(refusal) => {
                record_refusal(state, via, by, &path, &refusal).await;
                return Err(refusal);
            }
        }
        next_set = next_set.with(next.clone());
        plans.push((was, next, changes));
    }
    let batch = plans
        .iter()
        .map(|(was, next, changes)| NewRecord {
            session: None,
            kind: RecordKind::CharterLoaded,
            payload: json!({
                "charter": next.hash,
                "agent": next.identity.id,
                "files": next.files,
                "rules": next.rules.len(),
                "previous": was.hash,
                "via": via,
                "by": by,
                "changes": changes,
            }),
        })
        .collect();
    if let Err(e) = state.governor.ledger().append_batch(batch).await {
        tracing::error!(error = %e, "The ledger cannot record the new charter; the reload is refused and the charter in force stays.");
        return Err(Refusal::Unrecorded {
            reason: e.to_string(),
        });
    }
    let mut agents = Vec::with_capacity(plans.len());
    for (_, next, changes) in plans {
        let (previous, redecided) = put_in_force(state, next.clone()).await;
        state.reload.loaded(&next.identity.id, state.governor.now());
        tracing::info!(
            agent = %next.identity.id,
            charter = %next.hash.to_prefixed_hex(),
            previous = %previous.hash.to_prefixed_hex(),
            via = ?via,
            "Charter reloaded."
        );
        agents.push(AgentLoaded {
            agent: next.identity.id.clone(),
            charter: next.hash.to_prefixed_hex(),
            previous: previous.hash.to_prefixed_hex(),
            changes,
            redecided: redecided
                .iter()
                .map(|r| json!({ "approval": r.approval, "outcome": r.outcome }))
                .collect(),
        });
    }
    // The metrics count the new charters' tools, servers and routes by name.
    state
        .governor
        .telemetry
        .set_bounds(crate::telemetry::bounds(&next_set));
    // After the swap: nothing new is routed to a removed server when it stops. Every server
    // running that no charter names, or names without a transport (the decide API's).
    let stopped: Vec<String> = state
        .upstreams
        .ids()
        .into_iter()
        .filter(|id| {
            !next_set.iter().any(|c| {
                c.inventory
                    .servers
                    .iter()
                    .any(|s| &s.id == id && s.transport != warden_charter::Transport::DecideApi)
            })
        })
        .filter(|id| state.upstreams.stop(id))
        .collect();
    let started = prepared.as_ref().map(|p| p.ids()).unwrap_or_default();
    if let (false, Some(prepared)) = (started.is_empty(), prepared) {
        state.upstreams.add(prepared, UPSTREAM_WAIT).await;
    }
    let single = one
        .and_then(|a| agents.iter().find(|l| l.agent == a))
        .cloned();
    Ok(Loaded {
        charter: single.as_ref().map(|l| l.charter.clone()),
        previous: single.as_ref().map(|l| l.previous.clone()),
        changes: single.as_ref().map(|l| l.changes.clone()),
        redecided: single.map(|l| l.redecided),
        unchanged: false,
        generation: state.charter.generation(),
        agents,
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

/// Puts `next` in force for its agent everywhere at once — the governor (with what it
/// derives) and the shared cell the model proxy, the approvals, the operator plane and the
/// console read — then re-decides every pending approval and unused grant raised under the
/// charter it replaced. Returns that charter and what the re-decision did. The other agents
/// keep theirs. `next`'s agent must be one the gateway governs (a reload checks it).
///
/// What it guarantees: every decision that starts after it returns is taken under `next`;
/// one already under way finishes under the charter it loaded. Call it with the reload lock
/// held, after `charter_loaded` is durable.
pub async fn put_in_force(
    state: &AppState,
    next: Arc<CompiledCharter>,
) -> (Arc<CompiledCharter>, Vec<Redecided>) {
    let agent = next.identity.id.clone();
    state.governor.install(next.clone());
    let replaced = state.charter.swap_agent(next.clone());
    let previous = replaced.get(&agent).cloned().unwrap_or(next);
    let redecided = state.governor.redecide_pending(&previous).await;
    (previous, redecided)
}
