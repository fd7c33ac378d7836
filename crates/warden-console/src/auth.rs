//! Sign-in, console sessions and CSRF (skeleton: the shell part builds it).
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

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;
use warden_session::{OperatorIdentity, OperatorRole};

use crate::ConsoleState;
use crate::page::{Layout, error_page};

/// The console sessions: bounded, in memory, keyed by the hash of the cookie's value.
#[derive(Debug, Default)]
pub struct SignIns {}

/// The signed-in operator of a request.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The operator credential it signed in with.
    pub identity: OperatorIdentity,
    /// The console session's CSRF token.
    pub csrf: String,
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

impl FromRequestParts<Arc<ConsoleState>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &Arc<ConsoleState>,
    ) -> Result<Self, Self::Rejection> {
        // Skeleton: nobody is signed in yet.
        if parts.method == http::Method::GET {
            Err(Redirect::to("/ui/login").into_response())
        } else {
            Err(error_page(
                Layout::default(),
                StatusCode::UNAUTHORIZED,
                "sign in first",
            ))
        }
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
        let (mut parts, _body) = req.into_parts();
        let _signed = Signed::from_request_parts(&mut parts, state).await?;
        // Skeleton: no form passes yet.
        Err(error_page(
            Layout::default(),
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong",
        ))
    }
}

/// Ends expired console sessions (recording `console_signed_out`) until the gateway stops
/// (skeleton: waits for the stop).
pub(crate) async fn sweep(state: Arc<ConsoleState>) {
    state.stop.cancelled().await;
}

/// The sign-in and sign-out routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
}
