//! The agent sessions operators open, list, show and revoke, and the instructions an admin
//! adds to a session's trusted text. Opening, revoking and instructing are recorded; a session
//! the ledger could not record is revoked at once, and an instruction the ledger could not
//! record is not in force (fail closed).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use warden_core::{NewRecord, RecordKind, TrustedSource};
use warden_session::{MAX_TASK_BYTES, MAX_TTL, OperatorIdentity};

use crate::OperatorState;
use crate::error::{ApiError, JsonBody};

/// The body of `POST /v1/sessions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenSession {
    /// The agent: the identity id of one of the gateway's charters.
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
    let set = state.charter.load();
    let Some(charter) = set.get(&req.agent) else {
        let shown: String = req.agent.chars().take(64).collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_agent",
            format!(
                "`{shown}` is not an agent of this gateway; agents: {}",
                set.agents().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
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
    // On PostgreSQL every instance's sessions, from the shared store.
    match state.sessions.list_current(now).await {
        Ok(sessions) => Json(json!({ "sessions": sessions })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "The sessions could not be listed.");
            ApiError::store_unavailable("the state store is unavailable").into_response()
        }
    }
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
    let cascaded = revoke_descendants(&state, &id).await;
    Ok(Json(json!({ "session": id, "revoked": true, "descendants": cascaded })).into_response())
}

/// Revokes the live descendants of revoked session `id` (its child sessions, theirs, ...),
/// each recorded as `session_revoked` with `reason: parent_revoked` and its `parent`; returns
/// their ids. A failure is logged: decisions for a session with a revoked ancestor are
/// refused whether or not the cascade lands.
pub(crate) async fn revoke_descendants(state: &OperatorState, id: &str) -> Vec<String> {
    let now = state.clock.now();
    let revoked = match state.sessions.revoke_descendants(id, now).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "The descendants of a revoked session could not all be revoked in the state store; their decisions are refused all the same.");
            return Vec::new();
        }
    };
    let mut ids = Vec::with_capacity(revoked.len());
    for (child, parent) in revoked {
        let record = NewRecord {
            session: Some(child.clone()),
            kind: RecordKind::SessionRevoked,
            payload: json!({ "session": child, "reason": "parent_revoked", "parent": parent, "root": id }),
        };
        if let Err(e) = state.recorder.append(record).await {
            tracing::error!(error = %e, "The ledger cannot record a revocation; the session stays revoked.");
        }
        ids.push(child);
    }
    ids
}

/// `GET /v1/sessions/{id}`: one session, with its trusted text and its sources.
pub(crate) async fn show_session(
    State(state): State<Arc<OperatorState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let session = state
        .sessions
        .get(&id)
        .ok_or_else(|| unknown_session(&id))?;
    Ok(Json(session.info(state.clock.now())).into_response())
}

fn unknown_session(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_session",
        format!("no session `{id}`"),
    )
}

/// The longest instruction accepted, in bytes.
pub const MAX_INSTRUCTION_BYTES: usize = 16 * 1024;

/// The body of `POST /v1/sessions/{id}/instructions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Instruction {
    /// The instruction: the principal's own words, trusted like the task.
    text: String,
}

/// `POST /v1/sessions/{id}/instructions` (admins only): adds the principal's words to the
/// session's trusted text. Recorded (`trust_added`) before it is in force, then persisted.
/// Refused, and not recorded: an empty or too long text, an unknown, revoked or expired
/// session, a text past the session's trusted-text bound.
pub(crate) async fn add_instruction(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Instruction>,
) -> Result<Response, ApiError> {
    let text = req.text;
    if text.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_text",
            "`text` must not be empty",
        ));
    }
    if text.len() > MAX_INSTRUCTION_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text_too_large",
            format!("`text` is longer than {MAX_INSTRUCTION_BYTES} bytes"),
        ));
    }
    // On PostgreSQL from the shared store: a session held by another instance takes the
    // instruction too (it follows the notice).
    let session = state
        .sessions
        .get_current(&id)
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?
        .ok_or_else(|| unknown_session(&id))?;
    let now = state.clock.now();
    if session.is_revoked() || session.is_expired(now) {
        let status = if session.is_revoked() {
            "revoked"
        } else {
            "expired"
        };
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "session_ended",
            format!("session `{id}` is {status}; it takes no instruction"),
        ));
    }
    let full = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "trusted_text_full",
            format!(
                "session `{id}`'s trusted text would exceed its bound; open a new session with the task restated"
            ),
        )
    };
    if !session.trusted_fits(text.len()) {
        return Err(full());
    }
    let record = NewRecord {
        session: Some(id.clone()),
        kind: RecordKind::TrustAdded,
        payload: json!({
            "session": id,
            "source": TrustedSource::Instruction { seq: None },
            "text": text,
            "by": operator.id,
        }),
    };
    // Recorded before it is in force: an instruction the ledger does not hold is not trusted.
    let seq = state.recorder.append_seq(record).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
            format!("the instruction could not be recorded, so it is not in force: {e}"),
        )
    })?;
    let source = TrustedSource::Instruction { seq };
    // A concurrent instruction may have filled the bound since the check: recorded, not in
    // force (fail closed).
    session
        .add_trusted(&text, source.clone())
        .map_err(|_| full())?;
    let persisted = match state.sessions.persist_trust(&id, &text, &source).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, session = %id, "An instruction could not be written to the state store; it is in force until the gateway restarts.");
            false
        }
    };
    Ok(Json(json!({ "session": id, "seq": seq, "persisted": persisted })).into_response())
}
