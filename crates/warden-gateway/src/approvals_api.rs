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
use warden_approval::{LinkAction, Status};

use crate::app_state::AppState;
use crate::decide_api::api_error;
use warden_approval::workflow::{Choice, DecideError, Decider, MAX_LIST, request_json};
use warden_session::{OperatorIdentity, OperatorRole, Session};

fn decide_error(e: DecideError) -> Response {
    api_error(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.code,
        e.message,
    )
}

/// `GET /v1/approvals?status=…` (default `pending`; `all` for every status).
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let status = match q.get("status").map(String::as_str) {
        None => Some(Status::Pending),
        Some("all") => None,
        Some(s) => match Status::parse(s) {
            Some(s) => Some(s),
            None => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!(
                        "`status` is one of pending, granted, denied, timed_out, used, all; not `{s}`"
                    ),
                );
            }
        },
    };
    match state
        .governor
        .approvals()
        .store()
        .list(status, MAX_LIST)
        .await
    {
        Ok(reqs) => Json(json!({ "approvals": reqs.iter().map(request_json).collect::<Vec<_>>() }))
            .into_response(),
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
    }
}

/// `GET /v1/approvals/{id}`.
pub async fn show(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match state.governor.approvals().store().get(&id).await {
        Ok(Some(req)) => Json(request_json(&req)).into_response(),
        Ok(None) => api_error(
            StatusCode::NOT_FOUND,
            "unknown_approval",
            format!("no approval request `{id}`"),
        ),
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
    }
}

/// The body of approve and deny.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    /// Why (optional; recorded).
    #[serde(default)]
    pub reason: Option<String>,
}

async fn decide_as(
    state: &AppState,
    operator: &OperatorIdentity,
    id: &str,
    choice: Choice,
    body: Option<DecideBody>,
) -> Response {
    let decider = Decider {
        credential: &operator.name,
        principal: operator.role.principal(),
        channel: "api",
    };
    let reason = body.and_then(|b| b.reason).filter(|r| !r.trim().is_empty());
    match state
        .governor
        .approvals()
        .decide(id, &decider, choice, reason)
        .await
    {
        Ok(d) => Json(json!({ "outcome": d.outcome, "approval": request_json(&d.request) }))
            .into_response(),
        Err(e) => decide_error(e),
    }
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
pub async fn approve(
    State(state): State<Arc<AppState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    match optional_body(&body) {
        Ok(b) => decide_as(&state, &operator, &id, Choice::Approve, b).await,
        Err(m) => api_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    }
}

/// `POST /v1/approvals/{id}/deny`.
pub async fn deny(
    State(state): State<Arc<AppState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    match optional_body(&body) {
        Ok(b) => decide_as(&state, &operator, &id, Choice::Deny, b).await,
        Err(m) => api_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    }
}

/// The query of a signed link.
#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    /// The principal the link was minted for.
    pub approver: String,
    /// Expiry, Unix seconds.
    pub expires: i64,
    /// The signature.
    pub sig: String,
}

/// Verifies a link; records and answers the refusal when it does not hold.
async fn verify_link(
    state: &AppState,
    id: &str,
    action: &str,
    q: &LinkQuery,
) -> Result<LinkAction, Response> {
    let approvals = state.governor.approvals();
    let refuse = |code: &'static str, message: &str, status: StatusCode| {
        let payload = json!({
            "approval": id,
            "attempted": action,
            "credential": "link",
            "principal": q.approver,
            "channel": "link",
            "refusal": code,
            "message": message,
        });
        let response = api_error(status, code, message.to_owned());
        (payload, response)
    };
    let Some(link_action) = LinkAction::parse(action) else {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "a link is `/link/approve` or `/link/deny`",
        ));
    };
    let (payload, response) =
        if !approvals
            .signer()
            .verify_link(link_action, id, &q.approver, q.expires, &q.sig)
        {
            refuse(
                "bad_signature",
                "this link's signature does not hold: it was changed or not made by this gateway",
                StatusCode::FORBIDDEN,
            )
        } else if approvals.now().unix_timestamp() >= q.expires {
            refuse("link_expired", "this link has expired", StatusCode::GONE)
        } else {
            return Ok(link_action);
        };
    let session = approvals
        .store()
        .get(id)
        .await
        .ok()
        .flatten()
        .map(|r| r.session);
    approvals.record_refused(session.as_deref(), payload).await;
    Err(response)
}

/// `GET /v1/approvals/{id}/link/{action}?approver=…&expires=…&sig=…`: a confirmation page.
/// Nothing is decided by a `GET`.
pub async fn link_page(
    State(state): State<Arc<AppState>>,
    Path((id, action)): Path<(String, String)>,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad_link(&e),
    };
    if let Err(r) = verify_link(&state, &id, &action, &q).await {
        return r;
    }
    let summary = match state.governor.approvals().store().get(&id).await {
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
    Html(page).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `POST /v1/approvals/{id}/link/{action}?approver=…&expires=…&sig=…`: decides as the
/// approver the link was minted for (with every authority check of the API).
pub async fn link_decide(
    State(state): State<Arc<AppState>>,
    Path((id, action)): Path<(String, String)>,
    query: Result<Query<LinkQuery>, QueryRejection>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad_link(&e),
    };
    // A browser posting the confirmation form gets a page back; a program gets JSON.
    let from_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let link_action = match verify_link(&state, &id, &action, &q).await {
        Ok(a) => a,
        Err(r) => return r,
    };
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
    let decided = state
        .governor
        .approvals()
        .decide(&id, &decider, choice, reason)
        .await;
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
        return (status, Html(page)).into_response();
    }
    match decided {
        Ok(d) => Json(json!({ "outcome": d.outcome, "approval": request_json(&d.request) }))
            .into_response(),
        Err(e) => decide_error(e),
    }
}

fn bad_link(e: &QueryRejection) -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "invalid_link",
        format!("a link carries `approver`, `expires` and `sig`: {e}"),
    )
}

/// Agent plane: any approvals path. The agent's own credential is refused on the approval
/// channel, and the attempt is recorded.
pub async fn agent_refused(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Arc<Session>>,
    req: Request,
) -> Response {
    let payload = json!({
        "path": req.uri().path(),
        "method": req.method().as_str(),
        "credential": "agent_session",
        "channel": "agent_plane",
        "refusal": "agent_credential",
        "message": "approvals are decided on the operator plane by approvers, never by the agent",
    });
    state
        .governor
        .approvals()
        .record_refused(Some(&session.id), payload)
        .await;
    api_error(
        StatusCode::FORBIDDEN,
        "agent_credential",
        "approvals are decided on the operator plane by approvers, never by the agent",
    )
}

/// The body of `POST /v1/operator-tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    /// A name, for the record.
    pub name: String,
    /// `admin` or `approver`.
    pub role: String,
    /// The charter principal of an approver's credential.
    #[serde(default)]
    pub principal: Option<String>,
}

/// `POST /v1/operator-tokens` (admins only): issues an operator credential; the token is
/// shown once and stored as a hash.
pub async fn issue_token(
    State(state): State<Arc<AppState>>,
    Extension(operator): Extension<OperatorIdentity>,
    body: Result<Json<IssueToken>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if operator.role != OperatorRole::Admin {
        return api_error(
            StatusCode::FORBIDDEN,
            "admin_only",
            "only an admin credential may issue operator credentials",
        );
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return api_error(e.status(), "invalid_request", e.body_text()),
    };
    if req.name.trim().is_empty() || req.name.len() > 128 {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`name` must be 1 to 128 bytes",
        );
    }
    let role = match (req.role.as_str(), req.principal) {
        ("admin", None) => OperatorRole::Admin,
        ("approver", Some(p)) => {
            if state.governor.charter.authority.principal(&p).is_none() {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "unknown_principal",
                    format!("`{p}` is not a principal of the charter"),
                );
            }
            OperatorRole::Approver(p)
        }
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "`role` is `admin` (no `principal`) or `approver` (with the charter `principal` it acts as)",
            );
        }
    };
    let now = state.governor.now();
    match state.operators.create(&req.name, role.clone(), now).await {
        Ok(token) => {
            let record = warden_audit::NewRecord {
                session: None,
                kind: warden_audit::RecordKind::OperatorTokenIssued,
                payload: json!({
                    "name": req.name,
                    "role": role.as_str(),
                    "principal": role.principal(),
                    "by": operator.name,
                }),
            };
            if let Err(e) = state.governor.ledger().append(record).await {
                tracing::error!(error = %e, "The ledger cannot record an issued operator credential.");
            }
            (
                StatusCode::CREATED,
                Json(json!({
                    "name": req.name,
                    "role": role.as_str(),
                    "principal": role.principal(),
                    "token": token,
                })),
            )
                .into_response()
        }
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
    }
}
