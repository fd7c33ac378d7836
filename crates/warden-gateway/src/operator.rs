//! The operator plane: authentication and sessions (approvals are in
//! [`approvals_api`](crate::approvals_api)).
//!
//! Every route but `/healthz` and the signed approval links needs an operator token (`Authorization: Bearer wo_…`). Agent
//! session tokens are refused here, by their prefix, with a message that says so.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use warden_audit::{NewRecord, RecordKind};

use crate::app_state::AppState;
use crate::decide_api::api_error;
use warden_session::tokens::{self, Plane};
use warden_session::{MAX_TASK_BYTES, MAX_TTL, OperatorIdentity, OperatorRole};

/// Authenticates operator requests.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(tokens::bearer)
        .map(str::to_owned);
    let Some(token) = presented else {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "an operator token is required (`Authorization: Bearer wo_…`)",
        );
    };
    if tokens::plane_of(&token) == Some(Plane::Agent) {
        if req.uri().path().starts_with("/v1/approvals") {
            // The agent's own credential on the approval channel: refused, and recorded.
            let session = state.sessions.authenticate(&token).map(|s| s.id.clone());
            let payload = json!({
                "path": req.uri().path(),
                "method": req.method().as_str(),
                "credential": "agent_session",
                "channel": "operator_plane",
                "refusal": "agent_credential",
                "message": "agent session tokens are refused on the operator plane",
            });
            state
                .governor
                .approvals()
                .record_refused(session.as_deref(), payload)
                .await;
        }
        return api_error(
            StatusCode::FORBIDDEN,
            "wrong_plane",
            "agent session tokens are refused on the operator plane",
        );
    }
    match state.operators.authenticate(&token).await {
        Ok(Some(identity)) => {
            // Approver credentials read and decide approvals; everything else is an admin's.
            if identity.role != OperatorRole::Admin
                && !req.uri().path().starts_with("/v1/approvals")
            {
                return api_error(
                    StatusCode::FORBIDDEN,
                    "admin_only",
                    "an approver's credential may only read and decide approvals",
                );
            }
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Ok(None) => api_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "invalid operator token",
        ),
        Err(e) => {
            tracing::error!(error = %e, "Operator authentication failed.");
            api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the state store is unavailable",
            )
        }
    }
}

/// The body of `POST /v1/sessions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSession {
    /// The agent: the charter's identity id.
    pub agent: String,
    /// The principal the agent acts for.
    pub user: String,
    /// The task.
    #[serde(default)]
    pub task: Option<String>,
    /// Lifetime, as a duration (`1h`); default `1h`.
    #[serde(default)]
    pub ttl: Option<String>,
}

/// `POST /v1/sessions`.
pub async fn open_session(
    State(state): State<Arc<AppState>>,
    Extension(operator): Extension<OperatorIdentity>,
    body: Result<Json<OpenSession>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return api_error(e.status(), "invalid_request", e.body_text()),
    };
    let charter = &state.governor.charter;
    if req.agent != charter.identity.id {
        return api_error(
            StatusCode::BAD_REQUEST,
            "unknown_agent",
            format!(
                "this gateway governs agent `{}`, not `{}`",
                charter.identity.id, req.agent
            ),
        );
    }
    let Some(principal) = charter.authority.principal(&req.user) else {
        let mut known: Vec<&str> = charter.authority.principals.keys().map(|k| &**k).collect();
        known.sort_unstable();
        return api_error(
            StatusCode::BAD_REQUEST,
            "unknown_user",
            format!(
                "`{}` is not a principal of the charter; principals: {}",
                req.user,
                known.join(", ")
            ),
        );
    };
    let ttl = match req.ttl.as_deref() {
        None => Duration::from_secs(3600),
        Some(t) => match warden_charter::parse_duration(t) {
            Some(d) if d <= MAX_TTL => d,
            _ => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_ttl",
                    format!("`ttl` `{t}` must be a duration such as `30m` or `8h`, at most 30d"),
                );
            }
        },
    };
    let task = req.task.unwrap_or_default();
    if task.len() > MAX_TASK_BYTES {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_task",
            format!("`task` is longer than {MAX_TASK_BYTES} bytes"),
        );
    }
    let now = state.governor.now();
    let (opened, session) = match state
        .sessions
        .open_session(&req.agent, &req.user, &task, ttl, now)
        .await
    {
        Ok(x) => x,
        Err(e) => {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            );
        }
    };
    let record = NewRecord {
        session: Some(session.id.clone()),
        kind: RecordKind::SessionOpened,
        payload: json!({
            "session": session.id,
            "agent": session.agent,
            "principal": session.principal,
            "roles": principal.roles,
            "task": session.task,
            "expires_at": opened.expires_at,
            "by": operator.name,
            "charter": charter.hash,
        }),
    };
    if let Err(e) = state.governor.ledger().append(record).await {
        // Fail closed: a session the ledger does not know about must not work.
        let _ = state.sessions.revoke(&session.id, now).await;
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
            format!("the session could not be recorded: {e}"),
        );
    }
    (StatusCode::CREATED, Json(opened)).into_response()
}

/// `GET /v1/sessions`.
pub async fn list_sessions(State(state): State<Arc<AppState>>) -> Response {
    let now = state.governor.now();
    Json(json!({ "sessions": state.sessions.list(now) })).into_response()
}

/// `POST /v1/sessions/{id}/revoke`.
pub async fn revoke_session(
    State(state): State<Arc<AppState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
) -> Response {
    let now = state.governor.now();
    match state.sessions.revoke(&id, now).await {
        Ok(true) => {
            let record = NewRecord {
                session: Some(id.clone()),
                kind: RecordKind::SessionRevoked,
                payload: json!({ "session": id, "by": operator.name }),
            };
            if let Err(e) = state.governor.ledger().append(record).await {
                tracing::error!(error = %e, "The ledger cannot record a revocation; the session stays revoked.");
            }
            Json(json!({ "session": id, "revoked": true })).into_response()
        }
        Ok(false) => api_error(
            StatusCode::NOT_FOUND,
            "unknown_session",
            format!("no active session `{id}`"),
        ),
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
    }
}
