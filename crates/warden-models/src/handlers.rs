//! The three endpoints: `POST /v1/chat/completions` and `POST /v1/messages` (one model call
//! each, in the caller's protocol), and `GET /v1/models` (the charter's aliases).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use uuid::Uuid;
use warden_core::TraceContext;
use warden_llm::Protocol;
use warden_session::{BudgetRefused, Session};

use crate::answer::ForwardedAnswer;
use crate::capture::ModelCall;
use crate::errors::protocol_error;
use crate::provider_actions;
use crate::proxy::ModelProxy;
use crate::routing::forward;
use crate::system_message::system_message;

/// `POST /v1/chat/completions`: a call in OpenAI's protocol.
pub(crate) async fn chat_completions(
    State(proxy): State<Arc<ModelProxy>>,
    Extension(session): Extension<Arc<Session>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    model_call(proxy, session, Protocol::OpenAi, headers, body).await
}

/// The error code of a call whose session's agent has no charter in force.
const NO_CHARTER: &str = "no_charter";

/// `POST /v1/messages`: a call in Anthropic's protocol.
pub(crate) async fn messages(
    State(proxy): State<Arc<ModelProxy>>,
    Extension(session): Extension<Arc<Session>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    model_call(proxy, session, Protocol::Anthropic, headers, body).await
}

/// `GET /v1/models`: the charter's aliases, in Anthropic's shape when the client sends
/// `anthropic-version`, OpenAI's otherwise.
pub(crate) async fn models(
    State(proxy): State<Arc<ModelProxy>>,
    Extension(session): Extension<Arc<Session>>,
    headers: HeaderMap,
) -> Response {
    // The session's agent's aliases only; an agent without a charter in force has none.
    let charter = proxy.charter.agent(&session.agent);
    let models = charter
        .as_deref()
        .map_or(&[][..], |c| &c.inventory.models[..]);
    if headers.contains_key("anthropic-version") {
        let data: Vec<Value> = models
            .iter()
            .map(|m| json!({ "type": "model", "id": m.alias, "display_name": m.alias, "created_at": "1970-01-01T00:00:00Z" }))
            .collect();
        let first = data.first().and_then(|d| d.get("id")).cloned();
        let last = data.last().and_then(|d| d.get("id")).cloned();
        Json(json!({ "data": data, "has_more": false, "first_id": first, "last_id": last }))
            .into_response()
    } else {
        let data: Vec<Value> = models
            .iter()
            .map(
                |m| json!({ "id": m.alias, "object": "model", "created": 0, "owned_by": "warden" }),
            )
            .collect();
        Json(json!({ "object": "list", "data": data })).into_response()
    }
}

/// A call refused before it was forwarded, as the agent is answered.
struct RefusedCall {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The control that refused it, recorded with the refusal.
    control: Option<String>,
}

/// Records a refused call (`model_refused`) and answers the refusal in the caller's protocol,
/// whether or not the record could be written: nothing was forwarded.
async fn refuse(
    proxy: &ModelProxy,
    call: &ModelCall,
    labels: &[&Arc<str>],
    refused: RefusedCall,
) -> Response {
    if let Err(e) = proxy
        .recorder
        .append(call.refused(refused.code, labels, refused.control.as_deref()))
        .await
    {
        tracing::error!(error = %e, "The ledger cannot record a refused model call.");
    }
    protocol_error(
        call.protocol,
        refused.status,
        refused.code,
        &refused.message,
    )
}

/// One model call: read the request → refuse it under the frozen posture → resolve the alias
/// → refuse it for the session's labels → decide its provider-side actions → check the budgets → record the request while
/// forwarding it → answer (a stream starts relaying only once the request is
/// recorded) → record the outcome.
async fn model_call(
    proxy: Arc<ModelProxy>,
    session: Arc<Session>,
    protocol: Protocol,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return protocol_error(protocol, e.status(), "invalid_request", &e.body_text());
        }
    };
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return protocol_error(
                protocol,
                StatusCode::BAD_REQUEST,
                "invalid_json",
                &format!("the request body is not valid JSON: {e}"),
            );
        }
    };
    let inspected = match warden_llm::inspect(protocol, &parsed) {
        Ok(i) => i,
        Err(m) => {
            return protocol_error(protocol, StatusCode::BAD_REQUEST, "invalid_request", &m);
        }
    };
    let now = proxy.clock.now();
    if session.is_revoked() || session.is_expired(now) {
        return protocol_error(
            protocol,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "the session is revoked or expired",
        );
    }
    // The session's agent's charter, loaded once for the whole call; an agent without a
    // charter in force is refused (fail closed).
    let Some(charter) = proxy.charter.agent(&session.agent) else {
        return protocol_error(
            protocol,
            StatusCode::FORBIDDEN,
            NO_CHARTER,
            &format!(
                "agent `{}` has no charter in force at this gateway",
                session.agent
            ),
        );
    };
    let mut call = ModelCall {
        id: Uuid::now_v7().to_string(),
        system_message: charter
            .context
            .system_message
            .then(|| system_message(&charter)),
        charter,
        session: session.clone(),
        protocol,
        alias: inspected.model.clone(),
        stream: inspected.stream,
        prompt_text: inspected.prompt_text,
        last_user: inspected.last_user,
        started: Instant::now(),
        attempts: Vec::new(),
        reservation: None,
        // Read from the headers only: never forwarded to a provider (as before).
        trace: TraceContext::from_headers(
            headers.get_all("traceparent").iter().map(|v| v.as_bytes()),
            headers.get_all("tracestate").iter().map(|v| v.as_bytes()),
        )
        .map(Box::new),
    };
    // The frozen posture (or a control refusing the session) stops every call before anything
    // else is looked at (as it stops every action in the decision); the refusal is recorded,
    // and answered whether or not the record could be written.
    let applied = proxy.controls.applying(&session, None, now);
    if let Some(why) = applied.stopped() {
        let code = if applied.session_revoked.is_some() {
            "session_revoked"
        } else {
            "posture_frozen"
        };
        return refuse(
            &proxy,
            &call,
            &[],
            RefusedCall {
                status: StatusCode::FORBIDDEN,
                code,
                message: format!("{why}; no model call is forwarded until an operator lifts it"),
                control: applied
                    .session_revoked
                    .as_ref()
                    .or(applied.posture_control.as_ref())
                    .map(|c| c.id.clone()),
            },
        )
        .await;
    }
    let charter = call.charter.clone();
    let Some(model) = charter
        .inventory
        .models
        .iter()
        .find(|m| m.alias == inspected.model)
    else {
        let known: Vec<&str> = charter
            .inventory
            .models
            .iter()
            .map(|m| m.alias.as_str())
            .collect();
        return protocol_error(
            protocol,
            StatusCode::NOT_FOUND,
            "model_not_found",
            &format!(
                "model `{}` is not in the charter; models: {}",
                inspected.model,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        );
    };
    // The charter keeps sessions carrying some data labels from some aliases.
    let labels = session.labels();
    let denied = model.denied_labels(&labels);
    if !denied.is_empty() {
        let names: Vec<String> = denied.iter().map(|l| format!("`{l}`")).collect();
        return refuse(
            &proxy,
            &call,
            &denied,
            RefusedCall {
                status: StatusCode::FORBIDDEN,
                code: "label_denied",
                message: format!(
                    "the session carries data labelled {}, which the charter keeps from model `{}`",
                    names.join(", "),
                    model.alias
                ),
                control: None,
            },
        )
        .await;
    }
    // What the request asks the provider itself to do (hosted tools, MCP servers, URLs it
    // fetches, beta features) is decided under the charter and recorded; only allows pass.
    if let Err(refused) = provider_actions::check(&proxy, &call, &parsed, &headers).await {
        return refused;
    }
    // Reserve before forward: the call holds what it may use (its prompt and its largest
    // completion) against the budgets until it is counted, so concurrent calls cannot
    // overrun them.
    match proxy
        .budgets
        .reserve_async(
            &session,
            now,
            reservation_tokens(&call.prompt_text, &parsed),
        )
        .await
    {
        Ok(reservation) => call.reservation = Some(reservation),
        // Fail closed: budgets that cannot be read admit nothing.
        Err(BudgetRefused::Unavailable(e)) => {
            tracing::error!(error = %e, "The token budgets cannot be read; the model call is refused.");
            return protocol_error(
                protocol,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the token budgets cannot be checked (the state store is unavailable), so the call was not forwarded",
            );
        }
        Err(BudgetRefused::Exceeded(exceeded)) => {
            if let Err(e) = proxy.recorder.append(call.budget_exceeded(&exceeded)).await {
                tracing::error!(error = %e, "The ledger cannot record a refused model call.");
            }
            return protocol_error(
                protocol,
                StatusCode::TOO_MANY_REQUESTS,
                "budget_exceeded",
                &exceeded.message(),
            );
        }
    }
    let requested = call.requested(call.system_message.is_some(), &parsed);
    let Value::Object(request) = parsed else {
        return protocol_error(
            protocol,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body must be a JSON object",
        );
    };
    // Record before forward: the request is durable before a byte of it leaves for a
    // provider. If the ledger cannot take it, nothing is sent.
    if let Err(e) = proxy.recorder.append(requested).await {
        // A session past its capture quota is refused for good (the refusal is recorded, small,
        // by the recorder): a distinct, non-retryable error rather than "ledger unavailable".
        if let Some(q) = e
            .source
            .as_deref()
            .and_then(|s| s.downcast_ref::<warden_session::QuotaExhausted>())
        {
            return protocol_error(
                protocol,
                StatusCode::FORBIDDEN,
                "capture_quota_exhausted",
                &q.to_string(),
            );
        }
        tracing::error!(error = %e, "The ledger cannot record a model request; it is not forwarded.");
        return protocol_error(
            protocol,
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
            "the request could not be recorded, so it was not forwarded",
        );
    }
    let forwarded = forward(&proxy, model, &request, &headers, call).await;
    match forwarded {
        // A complete answer reaches the agent only once its completion is recorded.
        ForwardedAnswer::Complete { response, outcome } => match outcome.record(&proxy).await {
            Ok(()) => response,
            Err(_) => protocol_error(
                protocol,
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                "the answer could not be recorded, so it is withheld",
            ),
        },
        ForwardedAnswer::Streaming {
            response,
            start_relay,
        } => {
            start_relay.send(()).ok();
            response
        }
        // The failure is answered whether or not its record could be written: it is a refusal.
        ForwardedAnswer::Unanswered { response, outcome } => {
            let _ = outcome.record(&proxy).await;
            response
        }
    }
}

/// The completion reserved for a call that names no largest completion (`max_tokens`,
/// `max_completion_tokens`), in tokens.
const COMPLETION_CEILING_TOKENS: u64 = 4096;

/// The tokens a call may use, reserved against the token budgets before it is forwarded: its
/// prompt (estimated) and its largest completion — the request's `max_tokens` (or OpenAI's
/// `max_completion_tokens`), else [`COMPLETION_CEILING_TOKENS`].
fn reservation_tokens(prompt_text: &str, request: &Value) -> u64 {
    let completion = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| request.get(*k).and_then(Value::as_u64))
        .unwrap_or(COMPLETION_CEILING_TOKENS);
    warden_llm::estimate_tokens(prompt_text).saturating_add(completion)
}
