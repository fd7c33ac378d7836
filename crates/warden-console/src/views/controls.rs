//! Alerts and controls (admin): the observer's alerts, newest first and paged, each with its
//! evidence linked as `/ui/records/N`; the controls in force; and lifting one, with a reason,
//! through [`ControlDesk::lift`](warden_operator::controls::ControlDesk::lift) — the same
//! write path as `POST /v1/controls/{id}/lift`: `control_lifted` is recorded before the
//! control stops applying, and a ledger that cannot record it leaves it in force.

mod rows;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use warden_operator::controls::{DeskError, MAX_REASON_BYTES};
use warden_session::Actor;

use self::rows::{AlertRow, ControlRow};
use crate::ConsoleState;
use crate::auth::{CsrfForm, Signed};
use crate::page::{Layout, error_page, render};

/// Alerts on one page.
pub const ALERTS_PER_PAGE: u64 = 50;
/// The longest control id looked up (ours are UUIDs).
const MAX_ID: usize = 64;
const TAB: &str = "controls";

/// The page.
#[derive(Template)]
#[template(path = "controls.html")]
struct ControlsPage {
    layout: Layout,
    controls: Vec<ControlRow>,
    alerts: Vec<AlertRow>,
    /// Paged back (`?before=`): the live alerts part is the first page only.
    paged: bool,
    older: Option<u64>,
}

/// The controls in force (live part).
#[derive(Template)]
#[template(path = "controls_in_force.html")]
struct InForcePart {
    layout: Layout,
    controls: Vec<ControlRow>,
}

/// The newest alerts (live part).
#[derive(Template)]
#[template(path = "controls_alerts.html")]
struct AlertsPart {
    alerts: Vec<AlertRow>,
    older: Option<u64>,
}

/// `?before=SEQ`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    #[serde(default)]
    before: Option<u64>,
}

#[expect(
    clippy::result_large_err,
    reason = "a page is the refusal; it is built once, on the refusing path"
)]
fn admin_only(signed: &Signed) -> Result<(), Response> {
    signed.require_admin(TAB)
}

/// The controls in force (expiries that passed are recorded first, as the API does).
async fn in_force(state: &ConsoleState) -> Vec<ControlRow> {
    let desk = &state.operator.controls;
    desk.sweep().await;
    desk.controls
        .in_force(desk.now())
        .iter()
        .map(ControlRow::of)
        .collect()
}

/// Alerts with `seq < before`, newest first, one page; and where the next page starts.
async fn alerts(
    state: &ConsoleState,
    signed: &Signed,
    before: Option<u64>,
) -> Result<(Vec<AlertRow>, Option<u64>), Response> {
    let records = state
        .ledger
        .newest_of_kinds(&["observer_alert"], before, ALERTS_PER_PAGE)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "The ledger cannot be read for alerts.");
            error_page(
                signed.layout(TAB),
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger cannot be read; try again",
            )
        })?;
    let full = u64::try_from(records.len()).unwrap_or(u64::MAX) >= ALERTS_PER_PAGE;
    let older = if full {
        records.last().map(|r| r.seq)
    } else {
        None
    };
    Ok((records.iter().map(AlertRow::of).collect(), older))
}

/// `GET /ui/controls[?before=SEQ]`.
async fn page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Response {
    if let Err(refused) = admin_only(&signed) {
        return refused;
    }
    let Ok(Query(paging)) = paging else {
        return error_page(
            signed.layout(TAB),
            StatusCode::BAD_REQUEST,
            "`before` is a ledger sequence number",
        );
    };
    let (alerts, older) = match alerts(&state, &signed, paging.before).await {
        Ok(a) => a,
        Err(page) => return page,
    };
    render(&ControlsPage {
        layout: signed.layout(TAB),
        controls: in_force(&state).await,
        alerts,
        paged: paging.before.is_some(),
        older,
    })
}

fn fragment<T: Template>(part: &T) -> Response {
    match part.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "A console fragment failed to render.");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `GET /ui/controls/in-force` (live part).
async fn in_force_part(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    if let Err(refused) = admin_only(&signed) {
        return refused;
    }
    fragment(&InForcePart {
        layout: signed.layout(TAB),
        controls: in_force(&state).await,
    })
}

/// `GET /ui/controls/alerts` (live part: the newest page).
async fn alerts_part(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    if let Err(refused) = admin_only(&signed) {
        return refused;
    }
    match alerts(&state, &signed, None).await {
        Ok((alerts, older)) => fragment(&AlertsPart { alerts, older }),
        Err(page) => page,
    }
}

/// The lift form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiftForm {
    #[serde(default)]
    reason: String,
}

/// `POST /ui/controls/{id}/lift` (admin; a reason is required).
async fn lift(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    CsrfForm { signed, form }: CsrfForm<LiftForm>,
) -> Response {
    if let Err(refused) = admin_only(&signed) {
        return refused;
    }
    let layout = signed.layout(TAB);
    let reason = form.reason.trim();
    if reason.is_empty() || reason.len() > MAX_REASON_BYTES {
        return error_page(
            layout,
            StatusCode::BAD_REQUEST,
            format!("a lift needs a reason of 1 to {MAX_REASON_BYTES} bytes"),
        );
    }
    if id.is_empty() || id.len() > MAX_ID {
        return error_page(layout, StatusCode::NOT_FOUND, "there is no such control");
    }
    let by = Actor {
        id: signed.identity.id.clone(),
        name: signed.identity.name.clone(),
        role: signed.identity.role.as_str().to_owned(),
    };
    match state
        .operator
        .controls
        .lift(&id, by, reason, Vec::new())
        .await
    {
        Ok(_) => Redirect::to("/ui/controls").into_response(),
        Err(e) => {
            let status = match &e {
                DeskError::Unknown(_) => StatusCode::NOT_FOUND,
                DeskError::NotInForce(_) | DeskError::TooMany => StatusCode::CONFLICT,
                DeskError::Ledger(_) | DeskError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            error_page(layout, status, format!("the control was not lifted: {e}"))
        }
    }
}

/// The view's routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/ui/controls", get(page))
        .route("/ui/controls/in-force", get(in_force_part))
        .route("/ui/controls/alerts", get(alerts_part))
        .route("/ui/controls/{id}/lift", post(lift))
}
