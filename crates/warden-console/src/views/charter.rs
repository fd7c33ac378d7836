//! The charter in force (`GET /ui/charter`) and explain (`GET /ui/charter/explain`).
//!
//! What it guarantees:
//! - The page shows the compiled charter the gateway decides with: every rule by tier (the
//!   strictest first) with its id, tool patterns, what it matches and where it is written
//!   (`file:line:col`), who may approve each approval rule and the quorum; principals, roles,
//!   labels.
//! - **Explain decides exactly as `warden explain` does** (the same checks and the same
//!   decision, [`warden_pdp::explain`]): normal posture, no preapproved-scope usage, no trusted
//!   text or results read, at the time of the request. It is read-only (a `GET` form) and
//!   records nothing.
//! - **Bounded input**: a tool name of at most [`MAX_TOOL_BYTES`], arguments of at most
//!   [`MAX_ARGS_BYTES`], a user of at most [`MAX_TOOL_BYTES`], labels of at most
//!   [`MAX_LABELS_BYTES`]; over a bound, malformed JSON, arguments that are not an object, an
//!   unknown user or label: the page says what is wrong and decides nothing.
//! - Admins only.

pub mod summary;

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use warden_core::Posture;
use warden_pdp::explain::{self, Typed};
use warden_provenance::{Limits, SessionProvenance};

use crate::ConsoleState;
use crate::auth::Signed;
use crate::page::{Layout, error_page, render, render_with};
use crate::views::timeline::rows::RuleLine;
use summary::CharterView;

/// The longest tool name (and user) explain takes, in bytes.
pub const MAX_TOOL_BYTES: usize = 256;
/// The longest arguments explain takes, in bytes.
pub const MAX_ARGS_BYTES: usize = 16 * 1024;
/// The longest label list explain takes, in bytes.
pub const MAX_LABELS_BYTES: usize = 1024;

/// What explain decided.
#[derive(Debug, Clone)]
pub struct Explained {
    /// The verdict.
    pub verdict: String,
    /// The tier.
    pub tier: String,
    /// The reason's code.
    pub reason: String,
    /// The one-line explanation.
    pub summary: String,
    /// The determining rules, with where they are written.
    pub rules: Vec<RuleLine>,
    /// What an approval would need, when it asks.
    pub approval: Option<String>,
    /// Errors met while evaluating.
    pub errors: Vec<String>,
    /// Whether the tool is outside the inventory (the gateway refuses it before deciding).
    pub not_inventoried: bool,
}

/// The explain form as it was filled.
#[derive(Debug, Clone, Default)]
pub struct ExplainForm {
    /// The tool.
    pub tool: String,
    /// The arguments' JSON.
    pub args: String,
    /// The principal.
    pub user: String,
    /// The labels, comma-separated.
    pub labels: String,
    /// The agent whose charter is shown and decides (the first agent by id when not given).
    pub agent: String,
}

/// `GET /ui/charter` and `GET /ui/charter/explain`.
#[derive(Template)]
#[template(path = "charter.html")]
pub struct CharterPage {
    /// The layout.
    pub layout: Layout,
    /// The charter.
    pub charter: CharterView,
    /// Every agent of the gateway, by id (each links to its charter).
    pub agents: Vec<String>,
    /// The form's values.
    pub form: ExplainForm,
    /// What explain decided.
    pub explained: Option<Explained>,
    /// Why explain decided nothing.
    pub problem: Option<String>,
}

const TAB: &str = "charter";

/// The view's routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/ui/charter", get(charter))
        .route("/ui/charter/explain", get(explain_page))
}

/// The charter of `agent` (the first agent by id when empty), with every agent's id; `None`
/// when the gateway has no such agent.
fn chosen(
    state: &ConsoleState,
    agent: &str,
) -> Option<(Arc<warden_charter::CompiledCharter>, Vec<String>)> {
    let set = state.operator.charter.load();
    let charter = if agent.is_empty() {
        set.first().clone()
    } else {
        set.get(agent)?.clone()
    };
    Some((charter, set.agents().map(str::to_owned).collect()))
}

async fn charter(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    let asked = q.get("agent").map(String::as_str).unwrap_or_default();
    let Some((charter, agents)) = chosen(&state, asked) else {
        return error_page(
            signed.layout(TAB),
            StatusCode::NOT_FOUND,
            "no agent of this gateway has that id",
        );
    };
    render(&CharterPage {
        layout: signed.layout(TAB),
        form: ExplainForm {
            args: "{}".to_owned(),
            agent: charter.identity.id.clone(),
            ..ExplainForm::default()
        },
        charter: summary::view(&charter),
        agents,
        explained: None,
        problem: None,
    })
}

/// Explain's inputs, checked and decided; `Err` says what is wrong with them.
pub fn decide_form(
    charter: &warden_charter::CompiledCharter,
    form: &ExplainForm,
    now: time::OffsetDateTime,
) -> Result<Explained, String> {
    let tool = form.tool.trim();
    if tool.is_empty() {
        return Err("give the tool, as `server.tool`".to_owned());
    }
    if tool.len() > MAX_TOOL_BYTES || form.user.len() > MAX_TOOL_BYTES {
        return Err(format!(
            "the tool and the user are at most {MAX_TOOL_BYTES} bytes each"
        ));
    }
    if form.args.len() > MAX_ARGS_BYTES {
        return Err(format!(
            "the arguments are at most {} KiB",
            MAX_ARGS_BYTES / 1024
        ));
    }
    if form.labels.len() > MAX_LABELS_BYTES {
        return Err(format!("the labels are at most {MAX_LABELS_BYTES} bytes"));
    }
    let args_text = if form.args.trim().is_empty() {
        "{}"
    } else {
        form.args.as_str()
    };
    let args = explain::parse_args(args_text).map_err(|e| e.to_string())?;
    let user = Some(form.user.trim()).filter(|u| !u.is_empty());
    explain::check_user(charter, user).map_err(|e| e.to_string())?;
    let names: Vec<&str> = form.labels.split(',').map(str::trim).collect();
    let labels = explain::resolve_labels(charter, &names).map_err(|e| e.to_string())?;
    let provenance = SessionProvenance::new(Limits::default());
    let decision = explain::explain(
        charter,
        &Typed {
            tool,
            args: &args,
            user,
            labels: &labels,
            provenance: &provenance,
            posture: Posture::Normal,
            now,
        },
    );
    Ok(Explained {
        verdict: decision.verdict.to_string(),
        tier: decision.tier.to_string(),
        reason: decision.reason.to_string(),
        summary: decision.summary(),
        rules: decision
            .rules
            .iter()
            .map(|r| RuleLine {
                id: r.id.to_string(),
                tier: r.tier.to_string(),
                location: r.location.to_string(),
            })
            .collect(),
        approval: decision
            .approval
            .as_ref()
            .map(|a| format!("quorum {} within {}s", a.quorum, a.timeout_seconds)),
        errors: decision.errors.clone(),
        not_inventoried: !charter.is_inventoried(tool),
    })
}

async fn explain_page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    let form = ExplainForm {
        tool: field("tool"),
        args: field("args"),
        user: field("user"),
        labels: field("labels"),
        agent: field("agent"),
    };
    let Some((charter, agents)) = chosen(&state, &form.agent) else {
        return error_page(
            signed.layout(TAB),
            StatusCode::NOT_FOUND,
            "no agent of this gateway has that id",
        );
    };
    let charter = &charter;
    let (explained, problem, status) = match decide_form(charter, &form, state.operator.clock.now())
    {
        Ok(e) => (Some(e), None, StatusCode::OK),
        Err(p) => (None, Some(p), StatusCode::BAD_REQUEST),
    };
    // The form echoes what was typed, bounded (an oversized value is not shown back whole).
    let bounded = |s: String, max: usize| {
        if s.len() > max {
            warden_core::text::prefix_within(&s, max).to_owned()
        } else {
            s
        }
    };
    let form = ExplainForm {
        tool: bounded(form.tool, MAX_TOOL_BYTES),
        args: bounded(form.args, MAX_ARGS_BYTES),
        user: bounded(form.user, MAX_TOOL_BYTES),
        labels: bounded(form.labels, MAX_LABELS_BYTES),
        agent: charter.identity.id.clone(),
    };
    render_with(
        status,
        &CharterPage {
            layout: signed.layout(TAB),
            charter: summary::view(charter),
            agents,
            form,
            explained,
            problem,
        },
    )
}

#[cfg(test)]
mod tests;
