//! The approval channel's HTTP surface (documented in docs/api.md).
//!
//! Operator plane, with an operator token: list, show, approve, deny; issuing credentials
//! (admins only). Operator plane, without a token: the signed approve/deny links sent by the
//! webhook — `GET` shows a confirmation page (link previewers fetch links; a `GET` never
//! decides), `POST` decides. Agent plane: every approvals path answers 403 and is recorded —
//! an agent never reaches the approval channel.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use warden_approval::workflow::{Choice, Decider, MAX_LIST, request_json};
use warden_approval::{Approvals, LinkAction, Status};
use warden_core::{NewRecord, RecordKind};
use warden_session::{OperatorIdentity, OperatorRole, Session};

use crate::OperatorState;
use crate::error::{ApiError, BodyBytes, JsonBody};

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
                    "`status` is one of pending, granted, denied, timed_out, used, all; not `{s}`"
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
    reason: Option<String>,
}

async fn decide_as(
    state: &OperatorState,
    operator: &OperatorIdentity,
    id: &str,
    choice: Choice,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body = optional_body(body).map_err(ApiError::invalid_request)?;
    let decider = Decider {
        credential: &operator.name,
        principal: operator.role.principal(),
        channel: "api",
    };
    let reason = body.and_then(|b| b.reason).filter(|r| !r.trim().is_empty());
    let d = state.approvals.decide(id, &decider, choice, reason).await?;
    Ok(Json(json!({ "outcome": d.outcome, "approval": request_json(&d.request) })).into_response())
}

/// Reads an optional JSON body: empty means none.
fn optional_body(bytes: &[u8]) -> Result<Option<DecideBody>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| format!("the body must be `{{\"reason\": \"…\"}}` or empty: {e}"))
}

/// `POST /v1/approvals/{id}/approve`.
pub(crate) async fn approve(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    decide_as(&state, &operator, &id, Choice::Approve, &body).await
}

/// `POST /v1/approvals/{id}/deny`.
pub(crate) async fn deny(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    decide_as(&state, &operator, &id, Choice::Deny, &body).await
}

/// The query of a signed link.
#[derive(Debug, Deserialize)]
pub(crate) struct LinkQuery {
    /// The principal the link was minted for.
    approver: String,
    /// Expiry, Unix seconds.
    expires: i64,
    /// The signature.
    sig: String,
}

/// Verifies a link; records and answers the refusal when it does not hold.
async fn verify_link(
    approvals: &Approvals,
    id: &str,
    action: &str,
    q: &LinkQuery,
) -> Result<LinkAction, ApiError> {
    let Some(link_action) = LinkAction::parse(action) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "a link is `/link/approve` or `/link/deny`",
        ));
    };
    let refusal =
        if !approvals
            .signer()
            .verify_link(link_action, id, &q.approver, q.expires, &q.sig)
        {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "bad_signature",
                "this link's signature does not hold: it was changed or not made by this gateway",
            )
        } else if approvals.now().unix_timestamp() >= q.expires {
            ApiError::new(StatusCode::GONE, "link_expired", "this link has expired")
        } else {
            return Ok(link_action);
        };
    let payload = json!({
        "approval": id,
        "attempted": action,
        "credential": "link",
        "principal": q.approver,
        "channel": "link",
        "refusal": refusal.code,
        "message": refusal.message,
    });
    let session = approvals
        .store()
        .get(id)
        .await
        .ok()
        .flatten()
        .map(|r| r.session);
    approvals.record_refused(session.as_deref(), payload).await;
    Err(refusal)
}

/// `GET /v1/approvals/{id}/link/{action}?approver=…&expires=…&sig=…`: a confirmation page.
/// Nothing is decided by a `GET`.
pub(crate) async fn link_page(
    State(state): State<Arc<OperatorState>>,
    Path((id, action)): Path<(String, String)>,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| bad_link(&e))?;
    verify_link(&state.approvals, &id, &action, &q).await?;
    let summary = match state.approvals.store().get(&id).await {
        Ok(Some(req)) => format!(
            "{} (on behalf of {}) wants to call {} with {}. Why: {}. Status: {}.",
            req.agent,
            req.principal,
            req.tool,
            serde_json::to_string(&req.arguments).unwrap_or_default(),
            req.why,
            req.status
        ),
        _ => format!("approval request {id}"),
    };
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>warden approval</title>\
         <p>{}</p><form method=post><input type=text name=reason placeholder=reason>\
         <button type=submit>{} as {}</button></form>",
        escape(&summary),
        escape(&action),
        escape(&q.approver)
    );
    Ok(Html(page).into_response())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `POST /v1/approvals/{id}/link/{action}?approver=…&expires=…&sig=…`: decides as the
/// approver the link was minted for (with every authority check of the API).
pub(crate) async fn link_decide(
    State(state): State<Arc<OperatorState>>,
    Path((id, action)): Path<(String, String)>,
    query: Result<Query<LinkQuery>, QueryRejection>,
    headers: axum::http::HeaderMap,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| bad_link(&e))?;
    // A browser posting the confirmation form gets a page back; a program gets JSON.
    let from_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let link_action = verify_link(&state.approvals, &id, &action, &q).await?;
    // A form post (`reason=…`) or JSON (`{"reason": …}`); both optional.
    let reason = serde_json::from_slice::<DecideBody>(&body)
        .ok()
        .and_then(|b| b.reason)
        .or_else(|| {
            url::form_urlencoded::parse(&body)
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v.into_owned())
        })
        .filter(|r| !r.trim().is_empty());
    let decider = Decider {
        credential: "link",
        principal: Some(&q.approver),
        channel: "link",
    };
    let choice = match link_action {
        LinkAction::Approve => Choice::Approve,
        LinkAction::Deny => Choice::Deny,
    };
    let decided = state.approvals.decide(&id, &decider, choice, reason).await;
    if from_form {
        let (status, text) = match &decided {
            Ok(d) => (
                StatusCode::OK,
                format!("Done: {} ({}).", d.outcome, d.request.id),
            ),
            Err(e) => (
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                format!("Refused ({}): {}", e.code, e.message),
            ),
        };
        let page = format!(
            "<!doctype html><meta charset=utf-8><title>warden approval</title><p>{}</p>",
            escape(&text)
        );
        return Ok((status, Html(page)).into_response());
    }
    let d = decided?;
    Ok(Json(json!({ "outcome": d.outcome, "approval": request_json(&d.request) })).into_response())
}

fn bad_link(e: &QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_link",
        format!("a link carries `approver`, `expires` and `sig`: {e}"),
    )
}

/// Agent plane: any approvals path. The agent's own credential is refused on the approval
/// channel, and the attempt is recorded.
pub(crate) async fn agent_refused(
    State(approvals): State<Arc<Approvals>>,
    Extension(session): Extension<Arc<Session>>,
    req: Request,
) -> ApiError {
    let payload = json!({
        "path": req.uri().path(),
        "method": req.method().as_str(),
        "credential": "agent_session",
        "channel": "agent_plane",
        "refusal": "agent_credential",
        "message": "approvals are decided on the operator plane by approvers, never by the agent",
    });
    approvals.record_refused(Some(&session.id), payload).await;
    ApiError::new(
        StatusCode::FORBIDDEN,
        "agent_credential",
        "approvals are decided on the operator plane by approvers, never by the agent",
    )
}

/// The body of `POST /v1/operator-tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueToken {
    /// A name, for the record.
    name: String,
    /// `admin` or `approver`.
    role: String,
    /// The charter principal of an approver's credential.
    #[serde(default)]
    principal: Option<String>,
}

/// `POST /v1/operator-tokens` (admins only): issues an operator credential; the token is
/// shown once and stored as a hash.
pub(crate) async fn issue_token(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    body: Result<JsonBody<IssueToken>, ApiError>,
) -> Result<Response, ApiError> {
    if operator.role != OperatorRole::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_only",
            "only an admin credential may issue operator credentials",
        ));
    }
    // The role is checked before the body is looked at: a non-admin learns nothing more.
    let JsonBody(req) = body?;
    if req.name.trim().is_empty() || req.name.len() > 128 {
        return Err(ApiError::invalid_request("`name` must be 1 to 128 bytes"));
    }
    let role = match (req.role.as_str(), req.principal) {
        ("admin", None) => OperatorRole::Admin,
        ("approver", Some(p)) => {
            if state.charter.authority.principal(&p).is_none() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_principal",
                    format!("`{p}` is not a principal of the charter"),
                ));
            }
            OperatorRole::Approver(p)
        }
        _ => {
            return Err(ApiError::invalid_request(
                "`role` is `admin` (no `principal`) or `approver` (with the charter `principal` it acts as)",
            ));
        }
    };
    let now = state.clock.now();
    let token = state
        .operators
        .create(&req.name, role.clone(), now)
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?;
    let record = NewRecord {
        session: None,
        kind: RecordKind::OperatorTokenIssued,
        payload: json!({
            "name": req.name,
            "role": role.as_str(),
            "principal": role.principal(),
            "by": operator.name,
        }),
    };
    if let Err(e) = state.recorder.append(record).await {
        tracing::error!(error = %e, "The ledger cannot record an issued operator credential.");
    }
    let issued = json!({
        "name": req.name,
        "role": role.as_str(),
        "principal": role.principal(),
        "token": token,
    });
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}
