//! The agent inventory (`GET /ui/agents`) and one agent (`GET /ui/agents/{id}`): the same
//! catalogue as `GET /v1/agents` ([`warden_operator::agents::Catalogue`], one computation),
//! each agent linking to its charter page (`/ui/charter?agent=ID`) and its live sessions'
//! timelines.
//!
//! What it guarantees: admins only (an approver gets a `403` page, as on the API; an observer
//! credential cannot sign in to the console); read-only; an id over
//! [`MAX_AGENT_ID_BYTES`] is a `400` page and an unknown one a `404` page naming the agents;
//! every list is bounded as the API bounds it, and a cut list says so.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use warden_core::text::percent_encode;
use warden_operator::agents::{
    AgentDetail, AgentSummary, Capped, Catalogue, MAX_AGENT_ID_BYTES, ToolEntry,
};

use crate::ConsoleState;
use crate::auth::Signed;
use crate::page::{Layout, error_page, render};

const TAB: &str = "agents";

/// One agent's row on the list, with its link.
pub struct AgentRow {
    /// The summary.
    pub agent: AgentSummary,
    /// The id, percent-encoded for a URL.
    pub href: String,
}

/// `GET /ui/agents`.
#[derive(Template)]
#[template(path = "agents.html")]
pub struct AgentsPage {
    /// The layout.
    pub layout: Layout,
    /// The agents.
    pub agents: Vec<AgentRow>,
    /// How many there are.
    pub total: usize,
}

/// A tool's line: its name and each tier with its rules.
pub struct ToolLine {
    /// `server.tool`.
    pub tool: String,
    /// `tier (rule, rule)` for each tier, `tier (default posture)` for the default.
    pub tiers: Vec<(String, String)>,
    /// What an action no covering rule matches gets, when the rules have conditions.
    pub unmatched: Option<String>,
}

impl ToolLine {
    fn of(t: &ToolEntry) -> ToolLine {
        ToolLine {
            tool: t.tool.clone(),
            tiers: t
                .tiers
                .iter()
                .map(|tr| {
                    let why = if tr.default {
                        "default posture".to_owned()
                    } else {
                        tr.rules.join(", ")
                    };
                    (tr.tier.to_string(), why)
                })
                .collect(),
            unmatched: t.unmatched.map(|u| u.to_string()),
        }
    }
}

/// `GET /ui/agents/{id}`.
#[derive(Template)]
#[template(path = "agent.html")]
pub struct AgentPage {
    /// The layout.
    pub layout: Layout,
    /// The agent.
    pub agent: AgentDetail,
    /// Its id, percent-encoded for a URL.
    pub href: String,
    /// Its tools.
    pub tools: Vec<ToolLine>,
    /// Its provider-side model actions.
    pub model_tools: Vec<ToolLine>,
    /// Its live sessions: id and link.
    pub live: Vec<(String, String)>,
    /// `shown of total` for each list that was cut: tools, approvers, live sessions,
    /// controls.
    pub cut: [Option<String>; 4],
}

/// Whether a capped list was cut, and its `shown of total` note.
fn note<T>(c: &Capped<T>) -> Option<String> {
    c.capped
        .then(|| format!("{} of {}", c.items.len(), c.total))
}

/// The view's routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/ui/agents", get(list))
        .route("/ui/agents/{id}", get(show))
}

/// `GET /ui/agents`.
async fn list(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    let all = Catalogue::read(&state.operator).await.summaries();
    render(&AgentsPage {
        layout: signed.layout(TAB),
        total: all.total,
        agents: all
            .items
            .into_iter()
            .map(|agent| AgentRow {
                href: percent_encode(&agent.id),
                agent,
            })
            .collect(),
    })
}

/// `GET /ui/agents/{id}`.
async fn show(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    let Ok(Path(id)) = id else {
        return error_page(
            signed.layout(TAB),
            StatusCode::BAD_REQUEST,
            "that is not an agent id",
        );
    };
    if id.len() > MAX_AGENT_ID_BYTES {
        return error_page(
            signed.layout(TAB),
            StatusCode::BAD_REQUEST,
            format!("an agent id is at most {MAX_AGENT_ID_BYTES} bytes"),
        );
    }
    let catalogue = Catalogue::read(&state.operator).await;
    let Some(agent) = catalogue.detail(&id) else {
        let refusal = warden_operator::agents::unknown_agent(&id, &catalogue.agents());
        return error_page(signed.layout(TAB), StatusCode::NOT_FOUND, refusal.message);
    };
    render(&AgentPage {
        layout: signed.layout(TAB),
        href: percent_encode(&agent.id),
        tools: agent.tools.items.iter().map(ToolLine::of).collect(),
        model_tools: agent.models.tools.iter().map(ToolLine::of).collect(),
        live: agent
            .sessions
            .live_ids
            .items
            .iter()
            .map(|s| (s.clone(), percent_encode(s)))
            .collect(),
        cut: [
            note(&agent.tools),
            note(&agent.approvers),
            note(&agent.sessions.live_ids),
            note(&agent.controls),
        ],
        agent,
    })
}

#[cfg(test)]
mod tests;
