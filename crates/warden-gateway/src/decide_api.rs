//! The decide API, for agents that are not on MCP (documented in docs/api.md).
//!
//! `POST /v1/decide` `{ "tool": "server.tool", "arguments": {…} }` decides (and records) an
//! action and answers with the verdict and an action id; the agent runs an allowed action
//! itself and reports with `POST /v1/actions/{id}/result`. Same governor, same ledger records
//! as MCP calls.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use warden_core::TraceContext;
use warden_core::gate::{ActionOutcome, ContentPart, RefusalReason, Via};
use warden_operator::{ApiError, JsonBody};
use warden_session::Session;

use crate::app_state::AppState;
use crate::governor::Waiting;
use crate::governor::results::Closes;
use crate::pending_results::{Awaiting, TakeError};

/// Largest `output` recorded for label matching, in bytes.
const MAX_OUTPUT_TEXT: usize = 1024 * 1024;

/// The body of `POST /v1/decide`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// `server.tool` (or `server__tool`, as MCP lists it).
    pub tool: String,
    /// The arguments (an object; default `{}`).
    #[serde(default)]
    pub arguments: Option<Value>,
    /// For an action that needs approval: how long to wait for the decision (`30s`, at most
    /// [`MAX_WAIT`]); default `0s`, answer `pending` at once. Send the same action again to
    /// pick up the decision.
    #[serde(default)]
    pub wait: Option<String>,
}

/// The longest a decide-API call waits for an approval.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// `POST /v1/decide`.
pub async fn decide(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Arc<Session>>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<DecideRequest>,
) -> Result<Response, ApiError> {
    let args = req.arguments.unwrap_or_else(|| json!({}));
    if !args.is_object() {
        return Err(ApiError::invalid_request(
            "`arguments` must be a JSON object",
        ));
    }
    let max_wait = match req.wait.as_deref() {
        None | Some("0s" | "0") => std::time::Duration::ZERO,
        Some(w) => match warden_charter::parse_duration(w) {
            Some(d) if d <= MAX_WAIT => d,
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "`wait` `{w}` must be a duration such as `30s`, at most 300s"
                )));
            }
        },
    };
    // The charter's `server.tool`; `server__tool`, the name MCP lists, is accepted too (and
    // recorded as `called_as`).
    let tool = warden_charter::charter_tool_name(&req.tool).into_owned();
    let trace = trace_of(&headers);
    let waiting = Waiting {
        trace: trace.as_ref(),
        max_wait: Some(max_wait),
        cancel: None,
        progress: None,
        called_as: (tool != req.tool).then_some(req.tool.as_str()),
    };
    match state
        .governor
        .authorize_waiting(&session, &tool, args, Via::DecideApi, waiting)
        .await
    {
        Ok(allowed) => {
            let body = json!({
                "action": allowed.action_id,
                "verdict": "allow",
                "decision": allowed.decision,
                "arguments": allowed.args,
            });
            state
                .pending
                .keep(&state.governor, &session.id, &tool, allowed)
                .await;
            Ok((StatusCode::OK, Json(body)).into_response())
        }
        Err(refused) => {
            let pending = refused.reason == RefusalReason::ApprovalPending;
            let approval = refused.approval.as_ref().map(|a| {
                json!({
                    "id": a.id,
                    "status": a.status,
                    "deadline": a.deadline,
                    "approvers": a.approvers,
                    "quorum": a.quorum,
                })
            });
            let body = json!({
                "action": refused.action_id,
                "verdict": if pending { "ask" } else { "deny" },
                "refusal": refused.reason.as_str(),
                "message": refused.message,
                "decision": refused.decision,
                "approval": approval,
            });
            let status = if pending {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(body)).into_response())
        }
    }
}

/// The W3C trace context of the request's `traceparent` and `tracestate` headers, when valid
/// (a header sent twice is ignored).
fn trace_of(headers: &HeaderMap) -> Option<TraceContext> {
    TraceContext::from_headers(
        headers.get_all("traceparent").iter().map(|v| v.as_bytes()),
        headers.get_all("tracestate").iter().map(|v| v.as_bytes()),
    )
}

/// The body of `POST /v1/actions/{id}/result`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultReport {
    /// `ok` or `error`.
    pub status: String,
    /// What the action produced (text or JSON), for the record's size and the data labels.
    #[serde(default)]
    pub output: Option<Value>,
    /// The error, when `status` is `error`.
    #[serde(default)]
    pub error: Option<String>,
}

/// `POST /v1/actions/{id}/result`.
pub async fn result(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Arc<Session>>,
    Path(id): Path<String>,
    JsonBody(report): JsonBody<ResultReport>,
) -> Result<Response, ApiError> {
    let status = match report.status.as_str() {
        "ok" => "ok",
        "error" => "tool_error",
        other => {
            return Err(ApiError::invalid_request(format!(
                "`status` is `ok` or `error`, not `{other}`"
            )));
        }
    };
    let awaiting = state
        .pending
        .take_for_report(&id, &session.id)
        .await
        .map_err(|e| match e {
            TakeError::Unknown(code) => ApiError::new(
                code,
                "unknown_action",
                format!("no allowed action `{id}` of this session is waiting for its result"),
            ),
            TakeError::Store(e) => ApiError::store_unavailable(format!(
                "the result cannot be taken now (the state store failed: {e}); the action stays pending, report it again"
            )),
        })?;
    let text = match &report.output {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let size_bytes = text.len();
    // The whole output is captured (bounded and redacted by the governor); the label
    // patterns see its first MiB.
    let content = if report.output.is_some() {
        vec![ContentPart::Text(text.clone())]
    } else {
        Vec::new()
    };
    let mut text = text;
    if text.len() > MAX_OUTPUT_TEXT {
        let mut end = MAX_OUTPUT_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    let outcome = ActionOutcome {
        status,
        size_bytes,
        error: report.error,
        text,
        content,
    };
    let recorded = match &awaiting {
        Awaiting::Here(tool, allowed) => {
            state
                .governor
                .record_result(&session, tool, allowed, &outcome)
                .await
        }
        Awaiting::Shared(claim) => {
            let closes = Closes {
                action_id: &claim.action_id,
                args: &claim.args,
                elapsed: claim.elapsed,
                allowed_on: Some(&claim.allowed_on),
            };
            state
                .governor
                .record_closing(&session, &claim.tool, closes, &outcome)
                .await
        }
    };
    // Recorded: the action is closed on every instance (its row deleted). Not recorded: the
    // row is released (dropped with its transaction) and the action stays pending.
    if let (Ok(_), Awaiting::Shared(claim)) = (&recorded, awaiting)
        && let Err(e) = claim.close().await
    {
        tracing::error!(error = %e, action = %id, "A reported result was recorded, but its action could not be closed in the store; its deadline will record it as unknown too.");
    }
    match recorded {
        Ok(labels) => Ok((
            StatusCode::OK,
            Json(json!({ "action": id, "recorded": true, "labels_added": labels })),
        )
            .into_response()),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
            format!("the result could not be recorded: {e}"),
        )),
    }
}
