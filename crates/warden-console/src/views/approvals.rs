//! The approvals inbox: the pending requests the signed-in operator may decide (an admin
//! sees them all, read-only; an approver those its principal has authority for, by the
//! workflow's own check, [`Approvals::eligible`](warden_approval::Approvals::eligible)), a
//! request's page with everything that led to it, and the decision form (and, on a denial
//! before its deadline, the reversal form). A decision goes through
//! [`Approvals::decide_remembering`](warden_approval::Approvals::decide_remembering), a
//! reversal through [`Approvals::reverse`](warden_approval::Approvals::reverse), with the
//! channel `console`: authority, separation of duties, quorum and single use hold exactly as
//! on the API, and a refusal is a page with the workflow's own code and message.

mod detail;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use warden_approval::workflow::MAX_LIST;
use warden_approval::{ApprovalRequest, Status};
use warden_core::text::rfc3339;

use crate::ConsoleState;
use crate::auth::Signed;
use crate::page::{Layout, error_page, render};

/// The inbox page.
#[derive(Template)]
#[template(path = "approvals.html")]
struct InboxPage {
    layout: Layout,
    rows: Vec<Row>,
    admin: bool,
}

/// The inbox's list (also served alone, as the live part `GET /ui/approvals/list`).
#[derive(Template)]
#[template(path = "approvals_list.html")]
struct InboxList {
    rows: Vec<Row>,
    admin: bool,
}

/// One pending request as the inbox lists it.
struct Row {
    id: String,
    tool: String,
    agent: String,
    principal: String,
    task: String,
    requested_at: String,
    deadline: String,
    votes: usize,
    quorum: u32,
    session: String,
}

impl Row {
    fn of(req: &ApprovalRequest) -> Row {
        Row {
            id: req.id.clone(),
            tool: req.tool.clone(),
            agent: req.agent.clone(),
            principal: req.principal.clone(),
            task: crate::page::clip(&req.task, 80).head,
            requested_at: rfc3339(req.requested_at),
            deadline: rfc3339(req.deadline),
            votes: req.approvals.len(),
            quorum: req.quorum,
            session: req.session.clone(),
        }
    }
}

/// Whether `signed` may see request `req`: an admin every one (it cannot decide them: the
/// workflow refuses a credential without a principal); an approver those its principal is
/// eligible for (authority for every rule, and not the requester under separation of
/// duties).
pub(crate) fn may_see(state: &ConsoleState, signed: &Signed, req: &ApprovalRequest) -> bool {
    match signed.identity.role.principal() {
        None => signed.is_admin(),
        Some(p) => state
            .operator
            .approvals
            .eligible(req.deciding_agent(), &req.authority_for, &req.principal)
            .iter()
            .any(|e| e == p),
    }
}

async fn inbox_rows(state: &ConsoleState, signed: &Signed) -> Result<Vec<Row>, Response> {
    let pending = state
        .operator
        .approvals
        .store()
        .list(Some(Status::Pending), MAX_LIST)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "The approval store cannot list requests.");
            error_page(
                signed.layout("approvals"),
                StatusCode::SERVICE_UNAVAILABLE,
                "the approval store is unavailable; try again",
            )
        })?;
    Ok(pending
        .iter()
        .filter(|r| may_see(state, signed, r))
        .map(Row::of)
        .collect())
}

/// `GET /ui/approvals`.
async fn inbox(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    match inbox_rows(&state, &signed).await {
        Ok(rows) => render(&InboxPage {
            admin: signed.is_admin(),
            layout: signed.layout("approvals"),
            rows,
        }),
        Err(page) => page,
    }
}

/// `GET /ui/approvals/list`: the inbox's list alone (live part).
async fn inbox_list(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    match inbox_rows(&state, &signed).await {
        Ok(rows) => match (InboxList {
            rows,
            admin: signed.is_admin(),
        })
        .render()
        {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "The inbox list failed to render.");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        },
        Err(page) => page,
    }
}

/// The view's routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/ui/approvals", get(inbox))
        .route("/ui/approvals/list", get(inbox_list))
        .route("/ui/approvals/{id}", get(detail::show))
        .route("/ui/approvals/{id}/decide", post(detail::decide))
}
