//! The agent inventory: `GET /v1/agents` (every agent, short) and `GET /v1/agents/{id}` (one
//! agent in full) — the catalogue of the agents this gateway governs, computed at each request
//! from what is enforced: the charters in force (the set in the cell), the session store, the
//! controls in force and when each charter was put in force. There is no registry of its own
//! to drift from the charters.
//!
//! What it guarantees:
//! - **Read-only, for admins and observers.** An approver's credential is refused (`403
//!   admin_only`, as on every route but the approvals: it is not shown even the agents whose
//!   charter names it, fail closed); the agent's session token is refused (`403 wrong_plane`);
//!   no credential or a forged one `401`.
//! - **Bounded answers**: at most [`MAX_AGENTS`] agents, [`MAX_TOOLS`] tools,
//!   [`MAX_LIVE_IDS`] live session ids and [`MAX_CONTROLS`] controls per agent; every capped
//!   list says how many there were (`total`) and that it was cut (`capped`). A session's token,
//!   task and trusted text are never in it.
//! - **Bad input gets a clear error**: an id longer than [`MAX_AGENT_ID_BYTES`] is `400
//!   invalid_agent`; an id the set does not hold (whatever its characters) `404 unknown_agent`.
//!
//! [`Catalogue`] is the one computation, used by these routes and by the console's view.

mod catalogue;

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;
use warden_charter::CharterSet;
use warden_session::{Control, SessionInfo};

pub use catalogue::{
    AgentDetail, AgentSummary, ApproverEntry, Capped, CharterInfo, DelegationEntry, DirectorEntry,
    MAX_AGENTS, MAX_CONTROLS, MAX_IDS, MAX_LIVE_IDS, MAX_RULES, MAX_TOOLS, ModelEntry, Models,
    ServerEntry, SessionsEntry, Sources, TierRules, ToolEntry, detail, summaries,
};

use crate::OperatorState;
use crate::error::ApiError;

/// The longest agent id `GET /v1/agents/{id}` looks up, in bytes.
pub const MAX_AGENT_ID_BYTES: usize = 256;

type LoadedAtFn = dyn Fn(&str) -> Option<OffsetDateTime> + Send + Sync;

/// When each agent's charter in force was put in force: a hook the gateway sets once at
/// start-up (its reloader keeps the times); unset, the inventory says `null`.
#[derive(Default)]
pub struct LoadedAt(OnceLock<Box<LoadedAtFn>>);

impl LoadedAt {
    /// Sets the hook; a second call changes nothing.
    pub fn set(&self, hook: impl Fn(&str) -> Option<OffsetDateTime> + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(hook));
    }

    /// When `agent`'s charter in force was put in force, if known.
    pub fn get(&self, agent: &str) -> Option<OffsetDateTime> {
        self.0.get().and_then(|f| f(agent))
    }
}

impl std::fmt::Debug for LoadedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LoadedAt")
            .field(&self.0.get().is_some())
            .finish()
    }
}

/// What the inventory is computed from, read once from the operator plane's state: the set
/// in force, the sessions, the controls in force.
pub struct Catalogue {
    set: Arc<CharterSet>,
    sessions: Vec<SessionInfo>,
    controls: Vec<Control>,
    state: Arc<OperatorState>,
}

impl Catalogue {
    /// Reads the sources now (expired controls are swept, and their expiry recorded, first).
    pub async fn read(state: &Arc<OperatorState>) -> Catalogue {
        state.controls.sweep().await;
        let now = state.clock.now();
        Catalogue {
            set: state.charter.load(),
            // On PostgreSQL every instance's sessions; this instance's if the store fails.
            sessions: match state.sessions.list_current(now).await {
                Ok(sessions) => sessions,
                Err(e) => {
                    tracing::warn!(error = %e, "The sessions could not be read from the store; the inventory shows this instance's.");
                    state.sessions.list(now)
                }
            },
            controls: state.controls.controls.in_force(state.controls.now()),
            state: state.clone(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Sources<'_>) -> T) -> T {
        let loaded_at = |agent: &str| self.state.loaded_at.get(agent);
        f(&Sources {
            set: &self.set,
            sessions: &self.sessions,
            controls: &self.controls,
            loaded_at: &loaded_at,
        })
    }

    /// Every agent, short, by id.
    pub fn summaries(&self) -> Capped<AgentSummary> {
        self.with(summaries)
    }

    /// One agent in full; `None` when the set does not hold it.
    pub fn detail(&self, agent: &str) -> Option<AgentDetail> {
        let charter = self.set.get(agent)?;
        Some(self.with(|s| detail(charter, s)))
    }

    /// The agent ids of the set.
    pub fn agents(&self) -> Vec<String> {
        self.set.agents().map(str::to_owned).collect()
    }
}

/// `GET /v1/agents`.
pub(crate) async fn list(State(state): State<Arc<OperatorState>>) -> Response {
    let summaries = Catalogue::read(&state).await.summaries();
    Json(json!({
        "agents": summaries.items,
        "total": summaries.total,
        "capped": summaries.capped,
    }))
    .into_response()
}

/// `GET /v1/agents/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<OperatorState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if id.len() > MAX_AGENT_ID_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_agent",
            format!("an agent id is at most {MAX_AGENT_ID_BYTES} bytes"),
        ));
    }
    let catalogue = Catalogue::read(&state).await;
    match catalogue.detail(&id) {
        Some(detail) => Ok(Json(detail).into_response()),
        None => Err(unknown_agent(&id, &catalogue.agents())),
    }
}

/// `404 unknown_agent`, naming the agents there are (the id shown cut to 64 characters).
pub fn unknown_agent(id: &str, agents: &[String]) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    let mut known = agents
        .iter()
        .take(20)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if agents.len() > 20 {
        known.push_str(", …");
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_agent",
        format!("`{shown}` is not an agent of this gateway; agents: {known}"),
    )
}

#[cfg(test)]
mod tests;
