//! The control API: `POST /v1/controls` (admin or observer) sets a control or records an
//! alert, `GET /v1/controls` lists those in force (`?all=true`: the newest 1000 of all),
//! `POST /v1/controls/{id}/lift` (admin only) lifts one, and `POST /v1/observer/heartbeat`
//! (admin or observer; only the observer's feeds the dead man's switch).
//!
//! What it guarantees: a body with an unknown field, a target the gateway does not know (an
//! agent other than the charter's, a principal not in the charter, a session never opened) or
//! a tool outside the inventory is refused and changes nothing; a control is recorded
//! (`control_set`) before it is answered and before it takes effect; a lift is recorded
//! (`control_lifted`) before the control stops applying; at most
//! [`MAX_CONTROLS_IN_FORCE`](warden_session::controls::MAX_CONTROLS_IN_FORCE) controls are in
//! force (`409 too_many_controls` beyond).

mod desk;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use warden_core::{NewRecord, RecordKind};
use warden_session::{Actor, Control, ControlAction, ControlScope, OperatorIdentity};

pub use desk::{ControlDesk, DeskError};

use crate::OperatorState;
use crate::error::{ApiError, JsonBody};

/// Longest reason (of a control, or of a lift), in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Most evidence sequence numbers a control carries.
pub const MAX_EVIDENCE: usize = 1000;
/// Longest detector id, in bytes.
pub const MAX_DETECTOR_BYTES: usize = 128;
/// Longest expiry, in seconds (a year).
pub const MAX_EXPIRES_IN_SECS: u64 = 31_536_000;

/// The body of `POST /v1/controls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetControl {
    action: ControlAction,
    scope: ControlScope,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    tool: Option<String>,
    reason: String,
    #[serde(default)]
    expires_in_secs: Option<u64>,
    #[serde(default)]
    evidence: Vec<u64>,
    #[serde(default)]
    detector: Option<String>,
}

/// The body of `POST /v1/controls/{id}/lift`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LiftControl {
    reason: String,
}

/// The query of `GET /v1/controls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    all: bool,
}

/// The body of `POST /v1/observer/heartbeat`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Heartbeat {
    /// The ledger sequence number the observer has read up to (not acted on).
    #[expect(
        dead_code,
        reason = "part of the contract; the gateway does not act on it yet"
    )]
    head: u64,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

impl From<DeskError> for ApiError {
    fn from(e: DeskError) -> ApiError {
        let (status, code) = match &e {
            DeskError::TooMany => (StatusCode::CONFLICT, "too_many_controls"),
            DeskError::Unknown(_) => (StatusCode::NOT_FOUND, "unknown_control"),
            DeskError::NotInForce(_) => (StatusCode::CONFLICT, "not_in_force"),
            DeskError::Ledger(_) => (StatusCode::SERVICE_UNAVAILABLE, "ledger_unavailable"),
            DeskError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// The credential as a control names it.
pub(crate) fn actor(operator: &OperatorIdentity) -> Actor {
    Actor {
        id: operator.id.clone(),
        name: operator.name.clone(),
        role: operator.role.as_str().to_owned(),
    }
}

fn check_reason(reason: &str) -> Result<(), ApiError> {
    if reason.is_empty() || reason.len() > MAX_REASON_BYTES {
        return Err(bad(
            "invalid_reason",
            format!("`reason` must be 1 to {MAX_REASON_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Checks the target of a control against the charter and the sessions.
async fn check_target(state: &OperatorState, req: &SetControl) -> Result<(), ApiError> {
    let charter = state.charter.load();
    let target = req.target.as_deref();
    match (req.scope, target) {
        (ControlScope::Gateway, None) => Ok(()),
        (ControlScope::Gateway, Some(_)) => Err(bad(
            "invalid_target",
            "a gateway-scoped control has no `target`",
        )),
        (_, None) => Err(bad(
            "invalid_target",
            "an agent, principal or session control needs a `target`",
        )),
        (ControlScope::Agent, Some(t)) => {
            if charter.get(t).is_some() {
                Ok(())
            } else {
                Err(bad(
                    "unknown_agent",
                    format!(
                        "`{}` is not an agent of this gateway; agents: {}",
                        shorten(t),
                        charter.agents().collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        }
        (ControlScope::Principal, Some(t)) => {
            match charter.any(|c| c.authority.principal(t).is_some()) {
                true => Ok(()),
                false => Err(bad(
                    "unknown_principal",
                    format!("`{}` is not a principal of the charter", shorten(t)),
                )),
            }
        }
        // On a fleet the session may be held by another instance only: the store answers.
        (ControlScope::Session, Some(t)) => match state.sessions.get_current(t).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(bad(
                "unknown_session",
                format!("no session `{}`", shorten(t)),
            )),
            Err(_) => Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the shared store cannot be read; try again",
            )),
        },
    }
}

/// The tool of a `freeze_tool`, as the charter names it (`server.tool`; `server__tool` is
/// accepted), if the inventory has it or it is one of the model proxy's provider-side actions
/// (`model.web_search`, ...).
fn check_tool(state: &OperatorState, req: &SetControl) -> Result<Option<String>, ApiError> {
    let charter = state.charter.load();
    match (req.action, req.tool.as_deref()) {
        (ControlAction::FreezeTool, None) => Err(bad(
            "invalid_tool",
            "a `freeze_tool` control needs a `tool`",
        )),
        (ControlAction::FreezeTool, Some(t)) => {
            let name = if t.contains('.') {
                t.to_owned()
            } else {
                t.replacen("__", ".", 1)
            };
            if charter.any(|c| c.is_inventoried(&name))
                || warden_charter::CompiledCharter::is_model_tool(&name)
            {
                Ok(Some(name))
            } else {
                Err(bad(
                    "unknown_tool",
                    format!("`{}` is not a tool of the charter's inventory", shorten(t)),
                ))
            }
        }
        (_, Some(_)) => Err(bad(
            "invalid_tool",
            "only a `freeze_tool` control names a `tool`",
        )),
        (_, None) => Ok(None),
    }
}

/// A user value cut for an error message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or_default()),
        None => s.to_owned(),
    }
}

/// `POST /v1/controls`.
pub(crate) async fn set(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    JsonBody(req): JsonBody<SetControl>,
) -> Result<Response, ApiError> {
    check_reason(&req.reason)?;
    check_target(&state, &req).await?;
    let tool = check_tool(&state, &req)?;
    if req.evidence.len() > MAX_EVIDENCE {
        return Err(bad(
            "invalid_evidence",
            format!("`evidence` lists at most {MAX_EVIDENCE} sequence numbers"),
        ));
    }
    if req
        .detector
        .as_ref()
        .is_some_and(|d| d.is_empty() || d.len() > MAX_DETECTOR_BYTES)
    {
        return Err(bad(
            "invalid_detector",
            format!("`detector` must be 1 to {MAX_DETECTOR_BYTES} bytes"),
        ));
    }
    let desk = &state.controls;
    let now = desk.now();
    let expires_at = match req.expires_in_secs {
        None => None,
        Some(s) if (1..=MAX_EXPIRES_IN_SECS).contains(&s) => {
            now.checked_add(time::Duration::try_from(Duration::from_secs(s)).unwrap_or_default())
        }
        Some(_) => {
            return Err(bad(
                "invalid_expiry",
                format!("`expires_in_secs` must be 1 to {MAX_EXPIRES_IN_SECS}"),
            ));
        }
    };
    let alert = req.action == ControlAction::Alert;
    let control = Control {
        id: uuid::Uuid::now_v7().to_string(),
        action: req.action,
        scope: req.scope,
        target: req.target,
        tool,
        reason: req.reason,
        evidence: req.evidence,
        detector: req.detector,
        set_by: actor(&operator),
        set_at: now,
        expires_at: if alert { None } else { expires_at },
        lifted_at: alert.then_some(now),
        lifted_by: None,
        lift_reason: None,
    };
    let control = desk.set(control, Vec::new()).await?;
    if control.action == ControlAction::RevokeSession
        && control.scope == ControlScope::Session
        && let Some(id) = &control.target
    {
        revoke_session(&state, id, &control).await;
    }
    Ok((StatusCode::CREATED, Json(json!({ "control": control }))).into_response())
}

/// A session-scoped `revoke_session` revokes the session the usual way too: its token stops
/// working. The control already refuses its actions, so a failure here is logged.
async fn revoke_session(state: &OperatorState, id: &str, control: &Control) {
    match state.sessions.revoke(id, state.clock.now()).await {
        Ok(true) => {
            let record = NewRecord {
                session: Some(id.to_owned()),
                kind: RecordKind::SessionRevoked,
                payload: json!({ "session": id, "by": control.set_by.name, "control": control.id }),
            };
            if let Err(e) = state.recorder.append(record).await {
                tracing::error!(error = %e, "The ledger cannot record a revocation; the session stays revoked.");
            }
            crate::sessions::revoke_descendants(state, id).await;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "A session could not be revoked in the state store; the control refuses its actions.");
        }
    }
}

/// `GET /v1/controls`.
pub(crate) async fn list(
    State(state): State<Arc<OperatorState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    // Expiries passed are recorded before anyone is told what is in force.
    state.controls.sweep().await;
    let controls = if q.all {
        state
            .controls
            .controls
            .list_all()
            .await
            .map_err(|e| ApiError::store_unavailable(e.to_string()))?
    } else {
        state.controls.controls.in_force(state.controls.now())
    };
    Ok(Json(json!({ "controls": controls })).into_response())
}

/// `POST /v1/controls/{id}/lift` (the authentication layer lets only an admin reach it).
pub(crate) async fn lift(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<LiftControl>,
) -> Result<Response, ApiError> {
    check_reason(&req.reason)?;
    let control = state
        .controls
        .lift(&id, actor(&operator), &req.reason, Vec::new())
        .await?;
    Ok(Json(json!({ "control": control })).into_response())
}

/// `POST /v1/observer/heartbeat`: `204`; only an observer credential's feeds the dead man's
/// switch.
pub(crate) async fn heartbeat(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    JsonBody(_beat): JsonBody<Heartbeat>,
) -> StatusCode {
    if operator.role == warden_session::OperatorRole::Observer {
        state.controls.observer_heard();
    }
    StatusCode::NO_CONTENT
}
