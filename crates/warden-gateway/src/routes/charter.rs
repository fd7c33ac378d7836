//! The operator plane's charter routes (see docs/reload.md and docs/api.md):
//!
//! - `GET /v1/charter[?agent=ID]`: an agent's charter in force — `charter` (its hash),
//!   `agent`, `files`, `rules`, `loaded_at`, `generation` (how many reloads put a charter in
//!   force); without `agent`, the only agent's (one charter), or `agents`: every agent's.
//! - `POST /v1/charter/reload`: reads the charters again and puts those that changed in force
//!   ([`crate::reload::reload`]). The body is empty or a JSON object `{ "via": "api" | "cli",
//!   "agent": ID }` (both optional; `agent` limits the reload to that agent's charter; at most
//!   [`MAX_RELOAD_BODY_BYTES`]); anything else is `400 invalid_request`. Answers
//!   `200` with what changed, `409 reload_in_progress` while another reload runs (never
//!   queued), `422 charter_invalid` with the compiler's diagnostics (`errors`: file:line:col
//!   lines, `count`), `422 charter_unchangeable` for what only a restart can change,
//!   `503 ledger_unavailable` when the change cannot be recorded.
//!
//! Both are an admin's only: [`warden_operator::authenticate`] refuses an approver's and an
//! observer's credential (neither lists these routes) and the agent's session token.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use warden_operator::{ApiError, OperatorState};
use warden_session::OperatorIdentity;

use crate::app_state::AppState;
use crate::reload::{Refusal, Via, reload};

/// The largest body `POST /v1/charter/reload` reads, in bytes.
pub(crate) const MAX_RELOAD_BODY_BYTES: usize = 1024;

/// The charter routes, behind the operator plane's own token layer (admins only).
pub(crate) fn router(operator: Arc<OperatorState>, state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/charter", get(show))
        .route(
            "/v1/charter/reload",
            post(reload_charter).layer(DefaultBodyLimit::max(MAX_RELOAD_BODY_BYTES)),
        )
        // Outermost: nothing reaches a handler without an admin's token.
        .layer(middleware::from_fn_with_state(
            operator,
            warden_operator::authenticate,
        ))
        .with_state(state)
}

/// The query of `GET /v1/charter`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// The agent whose charter is shown.
    #[serde(default)]
    agent: Option<String>,
}

/// `GET /v1/charter`.
async fn show(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let set = state.charter.load();
    let about = |charter: &warden_charter::CompiledCharter| {
        let loaded_at = state
            .reload
            .loaded_at(&charter.identity.id)
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        json!({
            "charter": charter.hash,
            "agent": charter.identity.id,
            "files": charter.files,
            "rules": charter.rules.len(),
            "loaded_at": loaded_at,
            "generation": state.charter.generation(),
        })
    };
    let body = match query.agent.as_deref() {
        Some(agent) => match set.get(agent) {
            Some(c) => about(c),
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_agent",
                    format!(
                        "`{}` is not an agent of this gateway; agents: {}",
                        agent.chars().take(64).collect::<String>(),
                        set.agents().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        },
        None if set.len() == 1 => about(set.first()),
        None => json!({
            "agents": set.iter().map(|c| about(c)).collect::<Vec<_>>(),
            "generation": state.charter.generation(),
        }),
    };
    Ok(answer(StatusCode::OK, body))
}

/// The body of `POST /v1/charter/reload`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadBody {
    /// `api` (the default) or `cli`.
    #[serde(default)]
    via: Option<Via>,
    /// Only this agent's charter (every changed one when absent).
    #[serde(default)]
    agent: Option<String>,
}

/// `POST /v1/charter/reload`.
async fn reload_charter(
    State(state): State<Arc<AppState>>,
    identity: Option<axum::Extension<OperatorIdentity>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(axum::Extension(identity)) = identity else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "an operator token is required (`Authorization: Bearer wo_…`)",
        ));
    };
    let (via, agent) = if body.iter().all(u8::is_ascii_whitespace) {
        (Via::Api, None)
    } else {
        let parsed: ReloadBody = serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid_request(format!(
                "the body must be empty or a JSON object `{{\"via\": \"api\" | \"cli\", \"agent\": ID}}`: {e}"
            ))
        })?;
        let via = match parsed.via {
            None | Some(Via::Api) => Via::Api,
            Some(Via::Cli) => Via::Cli,
            Some(Via::Sighup) => {
                return Err(ApiError::invalid_request(
                    "`via` is `api` or `cli` here: `sighup` is the signal's",
                ));
            }
        };
        (via, parsed.agent)
    };
    match reload(&state, via, Some(&identity.name), agent.as_deref()).await {
        Ok(loaded) => Ok(answer(StatusCode::OK, json!(loaded))),
        Err(refusal) => Ok(refused(&refusal)),
    }
}

/// A refusal in the API's error shape, with the diagnostics when the charter does not
/// compile.
fn refused(refusal: &Refusal) -> Response {
    let status = match refusal {
        Refusal::Busy => StatusCode::CONFLICT,
        Refusal::Invalid { .. } | Refusal::Unchangeable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::UnknownAgent { .. } => StatusCode::NOT_FOUND,
        Refusal::Unrecorded { .. } => StatusCode::SERVICE_UNAVAILABLE,
    };
    let error = match refusal {
        Refusal::Invalid { errors, count, .. } => json!({
            "code": refusal.code(),
            "message": refusal.to_string(),
            "errors": errors,
            "count": count,
        }),
        _ => json!({ "code": refusal.code(), "message": refusal.to_string() }),
    };
    answer(status, json!({ "error": error }))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(body),
    )
        .into_response()
}
