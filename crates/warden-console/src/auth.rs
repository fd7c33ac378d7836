//! Sign-in, console sessions and CSRF.
//!
//! What it guarantees:
//! - **Only an operator credential signs in.** `POST /ui/login` takes an operator credential
//!   (`wo_…`). An agent's session token (`wa_…`) is refused by its prefix, before any look-up
//!   (so its handling cannot be timed against the stores); an observer credential, a revoked
//!   or unknown one are refused with a page. A credential made offline is recorded
//!   (`operator_token_issued`) before its first use, as on the API.
//! - **Recorded before usable.** `console_signed_in` is in the ledger before the console
//!   session can be used; a ledger that cannot take it refuses the sign-in (fail closed).
//!   Sign-out, expiry and a revoked credential end the session and are recorded as
//!   `console_signed_out` (`reason`: `signed_out`, `expired`, `revoked`).
//! - **The cookie is a random bearer secret, kept hashed.** 32 random bytes (base64url) as
//!   the cookie `warden_console` (`__Host-warden_console` with TLS), `Path=/` (what `__Host-`
//!   requires; used the same way without TLS), `HttpOnly`, `SameSite=Strict`, `Secure` with
//!   TLS, `Max-Age` of [`SESSION_TTL`]. The server keeps only its BLAKE3 hash; the session
//!   ends at [`SESSION_TTL`] after sign-in whatever happens (absolute, not sliding).
//! - **Bounded.** At most [`MAX_SIGNINS`] console sessions: beyond, a new sign-in is refused
//!   with a page (`503`), and nobody signed in is evicted.
//! - **Every request re-checks the credential**: a session whose operator credential was
//!   revoked ends at its next request (and its live streams at their next tick).
//! - **CSRF.** Every state-changing form carries the session's CSRF token (32 random bytes,
//!   compared in constant time); the sign-in form carries a token bound to a short-lived
//!   pre-sign-in cookie (double submit). A form from another site (`Origin` not this origin,
//!   `Sec-Fetch-Site: cross-site|same-site`) is refused `403`; a body that is not
//!   `application/x-www-form-urlencoded` `415`; over [`MAX_FORM_BYTES`](crate::MAX_FORM_BYTES)
//!   `413`; malformed `400`. Each a page.
//!
//! Contract the views rely on:
//! - [`Signed`]: the signed-in operator of a request (a valid, unexpired console session whose
//!   credential is still active). As an extractor it rejects a request without one: a `GET`
//!   is redirected to `/ui/login`, anything else gets a `401` page.
//! - [`Signed::layout`]: the page layout for that operator and a tab.
//! - [`Signed::require_admin`]: `Err(403 page)` unless the operator is an admin.
//! - [`CsrfForm<T>`]: a `POST` form (`application/x-www-form-urlencoded`, within
//!   [`MAX_FORM_BYTES`](crate::MAX_FORM_BYTES)) from a signed-in operator whose `csrf` field
//!   matches its console session and whose `Origin` (when sent) is this origin; `T` is the
//!   rest of the form (`serde`; unknown fields are the handler's business).

mod login;
mod store;
pub(crate) mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use warden_core::{NewRecord, RecordKind};
use warden_session::tokens;
use warden_session::{OperatorIdentity, OperatorRole};

pub(crate) use store::{ConsoleSession, Lookup};
pub use store::{MAX_SIGNINS, SignIns};

use crate::ConsoleState;
use crate::page::{Layout, error_page};

/// How long a console session lasts from its sign-in (absolute; signing in again starts a
/// new one).
pub const SESSION_TTL: time::Duration = time::Duration::hours(8);
/// How often expired console sessions are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The signed-in operator of a request.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The operator credential it signed in with.
    pub identity: OperatorIdentity,
    /// The console session's CSRF token.
    pub csrf: String,
    /// The console session's id (not secret: recorded with sign-in and sign-out).
    pub session: String,
    /// Cancelled when the console session ends (sign-out, expiry, revocation).
    pub ended: CancellationToken,
}

impl Signed {
    /// Whether the operator is an admin.
    pub fn is_admin(&self) -> bool {
        matches!(self.identity.role, OperatorRole::Admin)
    }

    /// The layout of a page on `tab` for this operator.
    pub fn layout(&self, tab: &'static str) -> Layout {
        Layout {
            user: self.identity.name.clone(),
            role: self.identity.role.as_str().to_owned(),
            csrf: self.csrf.clone(),
            tab,
            admin: self.is_admin(),
        }
    }

    /// `Err` with a `403` page unless the operator is an admin.
    #[expect(
        clippy::result_large_err,
        reason = "a page is the refusal; it is built once, on the refusing path"
    )]
    pub fn require_admin(&self, tab: &'static str) -> Result<(), Response> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(error_page(
                self.layout(tab),
                StatusCode::FORBIDDEN,
                "this page is for admins",
            ))
        }
    }
}

/// The refusal of a request without a usable console session.
fn not_signed_in(method: &http::Method) -> Response {
    if method == http::Method::GET || method == http::Method::HEAD {
        Redirect::to("/ui/login").into_response()
    } else {
        error_page(Layout::default(), StatusCode::UNAUTHORIZED, "sign in first")
    }
}

/// Records the end of a console session (best effort: the session is gone either way, and
/// an end that cannot be recorded is logged).
pub(crate) async fn record_signed_out(
    state: &ConsoleState,
    session: &ConsoleSession,
    reason: &str,
) {
    let record = NewRecord::new(
        None,
        RecordKind::ConsoleSignedOut,
        json!({
            "console_session": session.id,
            "credential": session.identity.id,
            "name": session.identity.name,
            "role": session.identity.role.as_str(),
            "reason": reason,
        }),
    );
    if let Err(e) = state.operator.recorder.append(record).await {
        tracing::warn!(error = %e, reason, "The end of a console session could not be recorded.");
    }
}

impl FromRequestParts<Arc<ConsoleState>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = web::cookie(&parts.headers, web::session_cookie(state.tls)) else {
            return Err(not_signed_in(&parts.method));
        };
        let key = tokens::hash(value);
        let session = match state.signins.lookup(&key, state.operator.clock.now()) {
            Lookup::Found(s) => s,
            Lookup::Expired(s) => {
                record_signed_out(state, &s, "expired").await;
                return Err(not_signed_in(&parts.method));
            }
            Lookup::Missing => return Err(not_signed_in(&parts.method)),
        };
        match state
            .operator
            .operators
            .is_active(&session.identity.id)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                if let Some(s) = state.signins.remove(&key) {
                    record_signed_out(state, &s, "revoked").await;
                }
                return Err(not_signed_in(&parts.method));
            }
            Err(e) => {
                // Fail closed: a credential the store cannot vouch for signs nothing in.
                tracing::error!(error = %e, "The state store cannot check an operator credential.");
                return Err(error_page(
                    Layout::default(),
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the state store is unavailable; try again",
                ));
            }
        }
        Ok(Signed {
            identity: session.identity,
            csrf: session.csrf,
            session: session.id,
            ended: session.ended,
        })
    }
}

/// A `POST` form from a signed-in operator, its CSRF token checked.
#[derive(Debug, Clone)]
pub struct CsrfForm<T> {
    /// Who posted it.
    pub signed: Signed,
    /// The form's fields (without `csrf`).
    pub form: T,
}

impl<T> FromRequest<Arc<ConsoleState>> for CsrfForm<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request(
        req: Request,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let refuse =
            |(status, message): web::Refusal| error_page(signed.layout(""), status, message);
        web::same_origin(&parts.headers, state.tls).map_err(refuse)?;
        let req = Request::from_parts(parts, body);
        let mut pairs = web::form_pairs(req, state).await.map_err(refuse)?;
        let csrf = web::take_field(&mut pairs, "csrf").map_err(refuse)?;
        if !csrf.is_some_and(|c| web::secrets_equal(&c, &signed.csrf)) {
            return Err(refuse((
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or wrong; reload the page and try again",
            )));
        }
        let form = web::form_as::<T>(&pairs).map_err(refuse)?;
        Ok(CsrfForm { signed, form })
    }
}

/// Ends expired console sessions (recording `console_signed_out`, reason `expired`) every
/// [`SWEEP_EVERY`], until the gateway stops.
pub(crate) async fn sweep(state: Arc<ConsoleState>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.stop.cancelled() => return,
            _ = every.tick() => {}
        }
        for s in state.signins.take_expired(state.operator.clock.now()) {
            record_signed_out(&state, &s, "expired").await;
        }
    }
}

/// The sign-in and sign-out routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/ui/login", get(login::form).post(login::sign_in))
        .route("/ui/logout", post(login::sign_out))
}
