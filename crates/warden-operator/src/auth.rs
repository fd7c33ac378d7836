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
use serde_json::json;
use warden_core::{NewRecord, RecordKind};
use warden_session::tokens::{self, Plane};
use warden_session::{OperatorIdentity, OperatorRole};

use crate::OperatorState;
use crate::approvals::agent_credential_refusal;
use crate::error::ApiError;

/// Authenticates operator requests: the layer in front of every route that takes an operator
/// token, here and in the gateway (its audit routes).
pub async fn authenticate(
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
            // Only to attribute the refusal (refused whatever the store answers).
            let session = state
                .sessions
                .authenticate_current(&token)
                .await
                .ok()
                .flatten()
                .map(|s| s.id.clone());
            let payload = agent_credential_refusal(
                &req,
                "operator_plane",
                "agent session tokens are refused on the operator plane",
            );
            match session {
                Some(s) => state.approvals.record_refused(Some(&s), payload).await,
                // Any `wa_…` string, no session behind it: no credential, so throttled.
                None => {
                    let peer = req
                        .extensions()
                        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                        .map(|c| axum::Extension(*c));
                    let source = crate::links::source(peer.as_ref());
                    state
                        .approvals
                        .record_anonymous_refusal(&source, None, payload)
                        .await;
                }
            }
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_plane",
            "agent session tokens are refused on the operator plane",
        ));
    }
    match state.operators.authenticate(&token).await {
        Ok(Some(identity)) => {
            role_may(&identity.role, req.method(), req.uri().path())?;
            if !identity.recorded {
                record_offline_issue(&state, &identity).await?;
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

/// Whether a credential of `role` may reach `method path`: an admin everything; an approver
/// the approvals, and asking to issue approver credentials (the handler checks the charter's
/// enrolment); the observer only what [`OBSERVER_ROUTES`] lists.
fn role_may(role: &OperatorRole, method: &http::Method, path: &str) -> Result<(), ApiError> {
    match role {
        OperatorRole::Admin => Ok(()),
        OperatorRole::Approver(_) => {
            if path.starts_with("/v1/approvals")
                || (path == "/v1/operator-tokens" && method == http::Method::POST)
            {
                Ok(())
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "admin_only",
                    "an approver's credential may only read and decide approvals",
                ))
            }
        }
        OperatorRole::Observer => {
            if OBSERVER_ROUTES
                .iter()
                .any(|(m, p)| method.as_str() == *m && path == *p)
                || (method == http::Method::GET && path.starts_with("/v1/agents/"))
            {
                Ok(())
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "observer_only",
                    "an observer's credential may only read the ledger stream, the metrics, the signed checkpoints and the agent inventory, send its heartbeat and set controls",
                ))
            }
        }
    }
}

/// Everything an observer credential may reach (method, exact path): reading the ledger
/// stream and the metrics, listing and setting controls, its heartbeat, and the signed
/// checkpoints and proofs a monitor reads (the gateway's audit routes), and the agent
/// inventory (`/v1/agents`; one agent, `GET /v1/agents/{id}`, is let through by its prefix).
/// Lifting a control (`/v1/controls/{id}/lift`) is not here: lifting is an admin's.
pub(crate) const OBSERVER_ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/ledger/stream"),
    ("GET", "/v1/instances"),
    ("GET", "/v1/audit/checkpoint"),
    ("GET", "/v1/audit/consistency"),
    ("GET", "/v1/audit/inclusion"),
    ("GET", "/metrics"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/controls"),
    ("POST", "/v1/controls"),
    ("POST", "/v1/observer/heartbeat"),
];

/// A credential made offline (`warden operator create-token`, or the bootstrap token) is
/// recorded before its first use — on the operator plane and in the console alike; if the
/// ledger cannot take the record (`503 ledger_unavailable`), or the state store cannot mark it
/// recorded (`503 store_unavailable`), it is not used.
pub async fn record_offline_issue(
    state: &OperatorState,
    identity: &OperatorIdentity,
) -> Result<(), ApiError> {
    let record = NewRecord {
        session: None,
        kind: RecordKind::OperatorTokenIssued,
        payload: json!({
            "id": identity.id,
            "name": identity.name,
            "role": identity.role.as_str(),
            "principal": identity.role.principal(),
            "by": null,
            "offline": true,
        }),
    };
    if let Err(e) = state.recorder.append(record).await {
        tracing::error!(error = %e, "The ledger cannot record an offline operator credential; it is not used.");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
            format!(
                "this credential was made offline and its issue could not be recorded, so it is not accepted yet: {e}"
            ),
        ));
    }
    state
        .operators
        .mark_recorded(&identity.id, state.clock.now())
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))
}
