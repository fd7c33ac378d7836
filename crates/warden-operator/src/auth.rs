//! Operator authentication: the layer in front of every protected operator route.
//!
//! A request needs an operator token (`Authorization: Bearer wo_…`). An agent's session token
//! is refused by its prefix, with a message that says so, and recorded when it was aimed at
//! the approval channel. An approver's credential reaches the approvals and nothing else.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use warden_session::OperatorRole;
use warden_session::tokens::{self, Plane};

use crate::OperatorState;
use crate::approvals::agent_credential_refusal;
use crate::error::ApiError;

/// Authenticates operator requests.
pub(crate) async fn authenticate(
    State(state): State<Arc<OperatorState>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(tokens::bearer)
        .map(str::to_owned);
    let Some(token) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "an operator token is required (`Authorization: Bearer wo_…`)",
        ));
    };
    if tokens::plane_of(&token) == Some(Plane::Agent) {
        if req.uri().path().starts_with("/v1/approvals") {
            // The agent's own credential on the approval channel: refused, and recorded.
            let session = state.sessions.authenticate(&token).map(|s| s.id.clone());
            let payload = agent_credential_refusal(
                &req,
                "operator_plane",
                "agent session tokens are refused on the operator plane",
            );
            state
                .approvals
                .record_refused(session.as_deref(), payload)
                .await;
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_plane",
            "agent session tokens are refused on the operator plane",
        ));
    }
    match state.operators.authenticate(&token).await {
        Ok(Some(identity)) => {
            // Approver credentials read and decide approvals; everything else is an admin's.
            if identity.role != OperatorRole::Admin
                && !req.uri().path().starts_with("/v1/approvals")
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "admin_only",
                    "an approver's credential may only read and decide approvals",
                ));
            }
            req.extensions_mut().insert(identity);
            Ok(next.run(req).await)
        }
        Ok(None) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "invalid operator token",
        )),
        Err(e) => {
            tracing::error!(error = %e, "Operator authentication failed.");
            Err(ApiError::store_unavailable(
                "the state store is unavailable",
            ))
        }
    }
}
