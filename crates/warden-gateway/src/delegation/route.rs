//! `POST /v1/sessions/delegate` on the agent plane: the bearer is the parent's session token
//! (the plane's authentication has refused operator tokens, unknown, revoked and expired
//! session tokens before this runs); the body is `{"agent", "task"?, "ttl"?}` (unknown fields
//! refused, at most [`MAX_DELEGATE_BODY`] bytes). 201 with the child's id, token (shown once),
//! agent, expiry and chain; 403 `{"error": {"code", "message"}}` with the refusal's code; 400
//! for a malformed body; 503 when the ledger could not record the child.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use warden_operator::{ApiError, BodyBytes};
use warden_session::Session;

use super::{Delegate, DelegationRefusal, DelegationVia, code, delegate, record_refusal, refusal};
use crate::app_state::AppState;

/// The largest body the route reads, in bytes (a task is at most
/// [`warden_session::MAX_TASK_BYTES`]; JSON escaping can double it).
pub const MAX_DELEGATE_BODY: usize = 4 * warden_session::MAX_TASK_BYTES;

/// The body of `POST /v1/sessions/delegate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DelegateBody {
    /// The agent the child session is for.
    agent: String,
    /// The child's task (default: the parent's).
    #[serde(default)]
    task: Option<String>,
    /// The child's lifetime (`30m`; default: until the parent expires).
    #[serde(default)]
    ttl: Option<String>,
}

/// `POST /v1/sessions/delegate`.
pub(crate) async fn delegate_route(
    State(state): State<Arc<AppState>>,
    Extension(parent): Extension<Arc<Session>>,
    body: Result<BodyBytes, ApiError>,
) -> Response {
    let BodyBytes(bytes) = match body {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let body: DelegateBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::invalid_request(format!(
                "the body must be {{\"agent\": ID, \"task\": TEXT?, \"ttl\": \"30m\"?}}: {e}"
            ))
            .into_response();
        }
    };
    let ttl = match body.ttl.as_deref() {
        None => None,
        Some(t) => match warden_core::text::parse_duration(t) {
            Some(d) => Some(d),
            None => {
                let refused = refusal(
                    code::INVALID,
                    "`ttl` must be a duration such as `30m` or `8h`, at most 30d".to_owned(),
                );
                record_refusal(&state, &parent, &body.agent, DelegationVia::Api, &refused).await;
                return refused_response(&refused);
            }
        },
    };
    let request = Delegate {
        agent: body.agent,
        task: body.task,
        ttl,
    };
    match delegate(&state, &parent, request, DelegationVia::Api).await {
        Ok(d) => (
            StatusCode::CREATED,
            axum::Json(json!({
                "id": d.opened.id,
                "token": d.opened.token,
                "agent": d.session.agent,
                "expires_at": d.opened.expires_at,
                "chain": d.session.chain,
            })),
        )
            .into_response(),
        Err(refused) => refused_response(&refused),
    }
}

fn refused_response(refused: &DelegationRefusal) -> Response {
    let status = if refused.code == code::LEDGER_UNAVAILABLE {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::FORBIDDEN
    };
    ApiError::new(status, refused.code, refused.message.clone()).into_response()
}
