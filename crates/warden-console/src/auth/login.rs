//! `GET /ui/login` (the form), `POST /ui/login` (sign-in) and `POST /ui/logout`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use warden_core::text::rfc3339;
use warden_core::{NewRecord, RecordKind};
use warden_session::tokens::{self, Plane};
use warden_session::{OperatorIdentity, OperatorRole};

use super::web::{self, Refusal};
use super::{ConsoleSession, CsrfForm, SESSION_TTL, record_signed_out};
use crate::ConsoleState;
use crate::page::{Layout, render_with};

/// The sign-in page.
#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    /// The (empty) layout.
    pub(crate) layout: Layout,
    /// The form's token, also in the pre-sign-in cookie.
    pub(crate) csrf: String,
    /// Why the last attempt was refused (empty on a first visit).
    pub(crate) message: String,
}

/// The sign-in form with `status` and `message`, and a fresh pre-sign-in cookie.
fn login_page(state: &ConsoleState, status: StatusCode, message: &str) -> Response {
    let csrf = match web::random_token() {
        Ok(t) => t,
        Err((status, message)) => {
            return crate::page::error_page(Layout::default(), status, message);
        }
    };
    let cookie = web::set_cookie(
        web::login_cookie(state.tls),
        &csrf,
        web::LOGIN_FORM_SECS,
        state.tls,
    );
    let mut response = render_with(
        status,
        &LoginPage {
            layout: Layout::default(),
            csrf,
            message: message.to_owned(),
        },
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `GET /ui/login`.
pub(super) async fn form(State(state): State<Arc<ConsoleState>>) -> Response {
    login_page(&state, StatusCode::OK, "")
}

/// `POST /ui/login` (`token`, `csrf`).
pub(super) async fn sign_in(State(state): State<Arc<ConsoleState>>, req: Request) -> Response {
    match sign_in_checked(&state, req).await {
        Ok(response) => response,
        Err((status, message)) => login_page(&state, status, message),
    }
}

async fn sign_in_checked(state: &Arc<ConsoleState>, req: Request) -> Result<Response, Refusal> {
    let headers = req.headers().clone();
    web::same_origin(&headers, state.tls)?;
    let mut pairs = web::form_pairs(req, state).await?;
    let csrf = web::take_field(&mut pairs, "csrf")?;
    let bound = web::cookie(&headers, web::login_cookie(state.tls));
    match (csrf, bound) {
        (Some(c), Some(b)) if web::secrets_equal(&c, b) => {}
        _ => {
            return Err((
                StatusCode::FORBIDDEN,
                "the sign-in form expired or was not sent from this page; sign in again",
            ));
        }
    }
    let token = web::take_field(&mut pairs, "token")?.unwrap_or_default();
    let token = token.trim();
    if token.is_empty() || token.len() > 256 {
        return Err((
            StatusCode::BAD_REQUEST,
            "paste an operator credential (`wo_…`)",
        ));
    }
    // By prefix, before any look-up: an agent's token never reaches a store.
    match tokens::plane_of(token) {
        Some(Plane::Operator) => {}
        Some(Plane::Agent) => {
            return Err((
                StatusCode::FORBIDDEN,
                "this is an agent's session token (`wa_…`); the console takes an operator credential (`wo_…`)",
            ));
        }
        None => {
            return Err((
                StatusCode::UNAUTHORIZED,
                "this is not an operator credential (`wo_…`)",
            ));
        }
    }
    let identity = match state.operator.operators.authenticate(token).await {
        Ok(Some(identity)) => identity,
        Ok(None) => {
            return Err((
                StatusCode::UNAUTHORIZED,
                "this operator credential is unknown or revoked",
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "Operator authentication failed.");
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the state store is unavailable; try again",
            ));
        }
    };
    if identity.role == OperatorRole::Observer {
        return Err((
            StatusCode::FORBIDDEN,
            "nothing here for an observer credential: the console is for admins and approvers",
        ));
    }
    if !identity.recorded {
        // Recorded before its first use, as on the operator plane (one function for both).
        warden_operator::record_offline_issue(&state.operator, &identity)
            .await
            .map_err(|e| {
                let sentence = if e.code == "ledger_unavailable" {
                    "this credential was made offline and its issue cannot be recorded yet, so it is not accepted"
                } else {
                    "the state store is unavailable; try again"
                };
                (StatusCode::SERVICE_UNAVAILABLE, sentence)
            })?;
    }
    open_session(state, identity).await
}

/// Opens a console session for `identity`: a place reserved, the sign-in recorded, then the
/// session usable and the cookie set.
async fn open_session(
    state: &Arc<ConsoleState>,
    identity: OperatorIdentity,
) -> Result<Response, Refusal> {
    let value = web::random_token()?;
    let csrf = web::random_token()?;
    let id: String = web::random_token()?.chars().take(16).collect();
    let key = tokens::hash(&value);
    let expires = state.operator.clock.now().saturating_add(SESSION_TTL);
    let home = match identity.role {
        OperatorRole::Admin => "/ui",
        _ => "/ui/approvals",
    };
    let payload = json!({
        "console_session": id,
        "credential": identity.id,
        "name": identity.name,
        "role": identity.role.as_str(),
        "principal": identity.role.principal(),
        "expires_at": rfc3339(expires),
    });
    let session = ConsoleSession {
        id,
        identity,
        csrf,
        expires,
        ready: false,
        ended: CancellationToken::new(),
    };
    if !state.signins.reserve(key, session) {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the console holds as many sessions as it can (1024); sign in again when others have signed out or expired",
        ));
    }
    let record = NewRecord::new(None, RecordKind::ConsoleSignedIn, payload);
    if let Err(e) = state.operator.recorder.append(record).await {
        state.signins.remove(&key);
        tracing::error!(error = %e, "The ledger cannot record a console sign-in; it is refused.");
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the ledger cannot record the sign-in, so it is refused; try again",
        ));
    }
    state.signins.activate(&key);
    let mut response = Redirect::to(home).into_response();
    let max_age = SESSION_TTL.whole_seconds();
    for cookie in [
        web::set_cookie(web::session_cookie(state.tls), &value, max_age, state.tls),
        web::set_cookie(web::login_cookie(state.tls), "", 0, state.tls),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// The sign-out form: nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct SignOut {}

/// `POST /ui/logout`: the console session ends (its cookie is worthless from now on), is
/// recorded, and the cookie is cleared.
pub(super) async fn sign_out(
    State(state): State<Arc<ConsoleState>>,
    CsrfForm { signed, .. }: CsrfForm<SignOut>,
) -> Response {
    if let Some(s) = state.signins.remove_by_id(&signed.session) {
        record_signed_out(&state, &s, "signed_out").await;
    }
    let mut response = Redirect::to("/ui/login").into_response();
    let clear = web::set_cookie(web::session_cookie(state.tls), "", 0, state.tls);
    if let Ok(v) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
