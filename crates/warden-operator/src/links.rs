//! The signed approve/deny links the webhook sends, on the operator plane without a token:
//! the signature is the credential. `GET` shows a confirmation page (link previewers fetch
//! links; a `GET` never decides), `POST` decides as the approver the link was minted for. A
//! changed or expired link is refused, and the refusal recorded.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use warden_approval::signing::Link;
use warden_approval::workflow::{Choice, Decider, request_json};
use warden_approval::{Approvals, LinkAction};

use crate::OperatorState;
use crate::approvals::DecideBody;
use crate::error::{ApiError, BodyBytes};

/// The query of a signed link.
#[derive(Debug, Deserialize)]
pub(crate) struct LinkQuery {
    /// The principal the link was minted for.
    approver: String,
    /// The delivery target the link was sent to.
    via: String,
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
    source: &str,
) -> Result<LinkAction, ApiError> {
    let Some(link_action) = LinkAction::parse(action) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "a link is `/link/approve` or `/link/deny`: a link never reverses a denial (that is `POST /v1/approvals/{id}/reverse` with an approver's token)",
        ));
    };
    let refusal = if !approvals.signer().verify_link(
        &Link {
            action: link_action,
            request: id,
            approver: &q.approver,
            via: &q.via,
            expires_unix: q.expires,
        },
        &q.sig,
    ) {
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
    // No credential holds: recorded once per source and window, then counted (the request is
    // not looked up either, so a flood costs no store reads).
    approvals
        .record_anonymous_refusal(source, None, payload)
        .await;
    Err(refusal)
}

/// `GET /v1/approvals/{id}/link/{action}?approver=…&expires=…&sig=…`: a confirmation page.
/// Nothing is decided by a `GET`.
pub(crate) async fn link_page(
    State(state): State<Arc<OperatorState>>,
    Path((id, action)): Path<(String, String)>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| bad_link(&e))?;
    verify_link(&state.approvals, &id, &action, &q, &source(peer.as_ref())).await?;
    let (summary, context) = match state.approvals.store().get(&id).await {
        Ok(Some(req)) => (
            format!(
                "{} (on behalf of {}) wants to call {} with {}. Why: {}. Status: {}.",
                req.agent,
                req.principal,
                req.tool,
                serde_json::to_string(&req.arguments).unwrap_or_default(),
                req.why,
                req.status
            ),
            context_html(&req),
        ),
        _ => (format!("approval request {id}"), String::new()),
    };
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>warden approval</title>\
         <p>{}</p>{context}<p>A link approves or denies only: it cannot approve \"for this \
         session\" (remember) nor reverse a denial; use the operator API or `warden approvals` \
         for those.</p><form method=post><input type=text name=reason placeholder=reason>\
         <button type=submit>{} as {}</button></form>",
        escape(&summary),
        escape(&action),
        escape(&q.approver)
    );
    Ok(Html(page).into_response())
}

/// The earlier refusals of the same action and where the judged argument values were found,
/// as HTML (escaped; empty when there are none).
fn context_html(req: &warden_approval::ApprovalRequest) -> String {
    let mut out = String::new();
    if !req.earlier.is_empty() {
        out.push_str("<p>Earlier refusals of this exact action in this session:</p><ul>");
        for e in &req.earlier {
            out.push_str(&format!(
                "<li>{} {} at {}</li>",
                escape(&e.id),
                e.status,
                warden_core::text::rfc3339(e.at)
            ));
        }
        out.push_str("</ul>");
    }
    if !req.provenance.is_empty() {
        out.push_str("<p>Where the arguments come from:</p><ul>");
        for p in &req.provenance {
            let from = match (&p.trusted, p.found.is_empty()) {
                (Some(t), _) => format!("stated in trusted text: {t}"),
                (None, false) => {
                    let found: Vec<String> = p
                        .found
                        .iter()
                        .map(|f| {
                            let labels: Vec<&str> = f.labels.iter().map(|l| &**l).collect();
                            format!(
                                "`{}` in ledger record {} ({})",
                                f.part,
                                f.seq,
                                labels.join(", ")
                            )
                        })
                        .collect();
                    format!("found in untrusted content: {}", found.join("; "))
                }
                (None, true) => "not found in trusted text nor in indexed content".to_owned(),
            };
            let incomplete = if p.incomplete {
                " (the session's index is incomplete)"
            } else {
                ""
            };
            out.push_str(&format!(
                "<li>{} = {} (rule {}): {}{incomplete}</li>",
                escape(&p.argument),
                escape(&p.value),
                escape(&p.rule),
                escape(&from)
            ));
        }
        out.push_str("</ul>");
    }
    out
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
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
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
    let link_action =
        verify_link(&state.approvals, &id, &action, &q, &source(peer.as_ref())).await?;
    // A form post (`reason=…`) or JSON (`{"reason": …}`); both optional.
    let json_body = serde_json::from_slice::<DecideBody>(&body).ok();
    if json_body.as_ref().is_some_and(|b| b.remember) {
        // Remembering makes values trusted for the session: an approver's token only.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "link_cannot_remember",
            "a link approves this call only; approving \"for this session\" (remember) is done through the operator API or `warden approvals approve --remember`",
        ));
    }
    let reason = json_body
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
        target: Some(&q.via),
        credential_id: None,
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

/// The client's address, when the listener provides it (`unknown` otherwise): the source
/// anonymous refusals are counted by.
pub(crate) fn source(peer: Option<&Extension<ConnectInfo<SocketAddr>>>) -> String {
    peer.map_or_else(
        || "unknown".to_owned(),
        |Extension(ConnectInfo(a))| a.ip().to_string(),
    )
}

fn bad_link(e: &QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_link",
        format!("a link carries `approver`, `via`, `expires` and `sig`: {e}"),
    )
}
