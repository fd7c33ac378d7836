//! The agent sessions operators open, list and revoke. Opening and revoking are recorded;
//! a session the ledger could not record is revoked at once (fail closed).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use warden_core::{NewRecord, RecordKind};
use warden_session::{MAX_TASK_BYTES, MAX_TTL, OperatorIdentity};

use crate::OperatorState;
use crate::error::{ApiError, JsonBody};

/// The body of `POST /v1/sessions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenSession {
    /// The agent: the charter's identity id.
    agent: String,
    /// The principal the agent acts for.
    user: String,
    /// The task.
    #[serde(default)]
    task: Option<String>,
    /// Lifetime, as a duration (`1h`); default `1h`.
    #[serde(default)]
    ttl: Option<String>,
}

/// `POST /v1/sessions`.
pub(crate) async fn open_session(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    JsonBody(req): JsonBody<OpenSession>,
) -> Result<Response, ApiError> {
    let charter = &state.charter;
    if req.agent != charter.identity.id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_agent",
            format!(
                "this gateway governs agent `{}`, not `{}`",
                charter.identity.id, req.agent
            ),
        ));
    }
    let Some(principal) = charter.authority.principal(&req.user) else {
        let mut known: Vec<&str> = charter.authority.principals.keys().map(|k| &**k).collect();
        known.sort_unstable();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_user",
            format!(
                "`{}` is not a principal of the charter; principals: {}",
                req.user,
                known.join(", ")
            ),
        ));
    };
    let ttl = match req.ttl.as_deref() {
        None => Duration::from_secs(3600),
        Some(t) => match warden_core::text::parse_duration(t) {
            Some(d) if d <= MAX_TTL => d,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_ttl",
                    format!("`ttl` `{t}` must be a duration such as `30m` or `8h`, at most 30d"),
                ));
            }
        },
    };
    let task = req.task.unwrap_or_default();
    if task.len() > MAX_TASK_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_task",
            format!("`task` is longer than {MAX_TASK_BYTES} bytes"),
        ));
    }
    let now = state.clock.now();
    let (opened, session) = state
        .sessions
        .open_session(&req.agent, &req.user, &task, ttl, now)
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?;
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
    if let Err(e) = state.recorder.append(record).await {
        // Fail closed: a session the ledger does not know about must not work.
        let _ = state.sessions.revoke(&session.id, now).await;
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
            format!("the session could not be recorded: {e}"),
        ));
    }
    Ok((StatusCode::CREATED, Json(opened)).into_response())
}

/// `GET /v1/sessions`.
pub(crate) async fn list_sessions(State(state): State<Arc<OperatorState>>) -> Response {
    let now = state.clock.now();
    Json(json!({ "sessions": state.sessions.list(now) })).into_response()
}

/// `POST /v1/sessions/{id}/revoke`.
pub(crate) async fn revoke_session(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let revoked = state
        .sessions
        .revoke(&id, now)
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?;
    if !revoked {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            format!("no active session `{id}`"),
        ));
    }
    let record = NewRecord {
        session: Some(id.clone()),
        kind: RecordKind::SessionRevoked,
        payload: json!({ "session": id, "by": operator.name }),
    };
    if let Err(e) = state.recorder.append(record).await {
        tracing::error!(error = %e, "The ledger cannot record a revocation; the session stays revoked.");
    }
    Ok(Json(json!({ "session": id, "revoked": true })).into_response())
}
