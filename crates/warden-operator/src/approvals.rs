//! The approval channel's HTTP surface (documented in docs/api.md).
//!
//! Operator plane, with an operator token: list, show, approve (optionally `remember`), deny,
//! reverse a denial (the signed links are in
//! [`links`](crate::links)). Agent plane: every approvals path answers 403 and is recorded —
//! an agent never reaches the approval channel.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use warden_approval::workflow::{Choice, Decider, MAX_LIST, request_json};
use warden_approval::{Approvals, Status};
use warden_session::{OperatorIdentity, Session};

use crate::OperatorState;
use crate::error::{ApiError, BodyBytes};

/// `GET /v1/approvals?status=…` (default `pending`; `all` for every status).
pub(crate) async fn list(
    State(state): State<Arc<OperatorState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let status = match q.get("status").map(String::as_str) {
        None => Some(Status::Pending),
        Some("all") => None,
        Some(s) => match Status::parse(s) {
            Some(s) => Some(s),
            None => {
                return Err(ApiError::invalid_request(format!(
                    "`status` is one of pending, granted, denied, timed_out, used, voided, all; not `{s}`"
                )));
            }
        },
    };
    let reqs = state
        .approvals
        .store()
        .list(status, MAX_LIST)
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?;
    let approvals: Vec<_> = reqs.iter().map(request_json).collect();
    Ok(Json(json!({ "approvals": approvals })).into_response())
}

/// `GET /v1/approvals/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<OperatorState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.approvals.store().get(&id).await {
        Ok(Some(req)) => Ok(Json(request_json(&req)).into_response()),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_approval",
            format!("no approval request `{id}`"),
        )),
        Err(e) => Err(ApiError::store_unavailable(e.to_string())),
    }
}

/// The body of approve and deny.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecideBody {
    /// Why (optional; recorded).
    #[serde(default)]
    pub(crate) reason: Option<String>,
    /// On approve: remember the values the request's rules name in `approval.remember` for
    /// the session once the grant is used (refused, `400 remember_not_allowed`, when they
    /// name none, and on deny).
    #[serde(default)]
    pub(crate) remember: bool,
}

async fn decide_as(
    state: &OperatorState,
    operator: &OperatorIdentity,
    id: &str,
    choice: Option<Choice>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body = optional_body(body).map_err(ApiError::invalid_request)?;
    let decider = Decider {
        credential: &operator.name,
        principal: operator.role.principal(),
        channel: "api",
        target: None,
        credential_id: Some(&operator.id),
    };
    let remember = body.as_ref().is_some_and(|b| b.remember);
    let reason = body.and_then(|b| b.reason).filter(|r| !r.trim().is_empty());
    let d = match choice {
        Some(choice) => {
            state
                .approvals
                .decide_remembering(id, &decider, choice, reason, remember)
                .await?
        }
        None if remember => {
            return Err(ApiError::invalid_request(
                "`remember` is given on approve, not on a reversal",
            ));
        }
        None => state.approvals.reverse(id, &decider, reason).await?,
    };
    Ok(Json(json!({ "outcome": d.outcome, "approval": request_json(&d.request) })).into_response())
}

/// Reads an optional JSON body (`reason`, `remember`): empty means none.
fn optional_body(bytes: &[u8]) -> Result<Option<DecideBody>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| {
            format!("the body must be `{{\"reason\": \"…\", \"remember\": true}}` (both optional) or empty: {e}")
        })
}

/// `POST /v1/approvals/{id}/approve`.
pub(crate) async fn approve(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    decide_as(&state, &operator, &id, Some(Choice::Approve), &body).await
}

/// `POST /v1/approvals/{id}/deny`.
pub(crate) async fn deny(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    decide_as(&state, &operator, &id, Some(Choice::Deny), &body).await
}

/// `POST /v1/approvals/{id}/reverse` (`{"reason": …}`): makes a denied request pending again,
/// before its deadline, for an approver with authority for it.
pub(crate) async fn reverse(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    decide_as(&state, &operator, &id, None, &body).await
}

/// Agent plane: any approvals path. The agent's own credential is refused on the approval
/// channel, and the attempt is recorded.
pub(crate) async fn agent_refused(
    State(approvals): State<Arc<Approvals>>,
    Extension(session): Extension<Arc<Session>>,
    req: Request,
) -> ApiError {
    const WHY: &str =
        "approvals are decided on the operator plane by approvers, never by the agent";
    let payload = agent_credential_refusal(&req, "agent_plane", WHY);
    approvals.record_refused(Some(&session.id), payload).await;
    ApiError::new(StatusCode::FORBIDDEN, "agent_credential", WHY)
}

/// The `approval_refused` payload of an agent's session token presented on the approval
/// channel, through `channel`.
pub(crate) fn agent_credential_refusal(req: &Request, channel: &str, message: &str) -> Value {
    json!({
        "path": req.uri().path(),
        "method": req.method().as_str(),
        "credential": "agent_session",
        "channel": channel,
        "refusal": "agent_credential",
        "message": message,
    })
}
