//! The model proxy on the agent plane: `POST /v1/chat/completions` (OpenAI),
//! `POST /v1/messages` (Anthropic) and `GET /v1/models`, with the session token as the API key.
//!
//! For each call: read the request (bounded) → resolve the charter's model alias → check the
//! token budgets → record the request in the ledger, while forwarding it to the alias's first
//! route (the provider's key from the environment, never the agent's token) → fall back to the
//! next route on a connection error, a timeout, a 5xx or a 429 (whose `Retry-After` keeps the
//! route aside) — never once bytes of a stream reached the agent → answer with the provider's
//! response, unknown fields untouched → record the completion (a stream assembled from its
//! chunks as they pass, without holding them), its usage, and every tool call the model
//! proposed as an intent → count the tokens.
//!
//! Errors are answered in the caller's protocol (OpenAI or Anthropic error objects). A route
//! of the other protocol gets the request translated (`warden_llm::translate`), and its answer
//! — complete or streamed — translated back; a request that cannot be translated skips that
//! route.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio_util::task::TaskTracker;
use uuid::Uuid;
use warden_audit::{Ledger, NewRecord, RecordKind};
use warden_charter::{CompiledCharter, Model, ModelRoute, Provider};
use warden_llm::{
    Assembler, Completion, Protocol, SseEvent, SseParser, StreamTranslator, Usage, estimate_tokens,
    translate,
};

use crate::app_state::AppState;
use warden_session::Session;
use warden_session::{CountedTokens as Counted, TokenBudgets};

/// Largest provider response body read, in bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Largest single SSE event captured; a larger one stops the capture, never the stream.
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// Chunks buffered between the provider and a slow agent.
const STREAM_BUFFER: usize = 64;
/// How long a 429 without `Retry-After` keeps a route aside.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Longest text excerpt kept for an approval's model turns.
const TURN_EXCERPT: usize = 1000;
/// Headers of a provider response passed back to the agent.
const PASSED_HEADERS: [&str; 4] = [
    "content-type",
    "x-request-id",
    "request-id",
    "openai-processing-ms",
];

/// The model proxy's state.
pub struct ModelProxy {
    client: reqwest::Client,
    keys: HashMap<String, String>,
    cooldown: Mutex<HashMap<(String, usize), Instant>>,
    budgets: TokenBudgets,
    system_message: Option<String>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for ModelProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelProxy")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The charter's identity and context, as a system message.
pub fn system_message(charter: &CompiledCharter) -> String {
    let id = &charter.identity;
    let ctx = &charter.context;
    let mut s = format!(
        "You are {}: {}. You serve {}.",
        id.name,
        id.purpose.trim().trim_end_matches('.'),
        id.serves.trim().trim_end_matches('.')
    );
    for v in &id.values {
        s.push_str("\nValue: ");
        s.push_str(v);
    }
    for b in &id.boundaries {
        s.push_str("\nBoundary: ");
        s.push_str(b);
    }
    for (k, v) in [
        ("Organisation", &ctx.organisation),
        ("Mission", &ctx.mission),
        ("Environment", &ctx.environment),
    ] {
        if let Some(v) = v {
            s.push_str(&format!("\n{k}: {v}"));
        }
    }
    for (k, v) in &ctx.state {
        s.push_str(&format!("\nState: {k} = {v}"));
    }
    s
}

impl ModelProxy {
    /// The proxy for `charter`: provider keys read once from the environment.
    pub fn new(
        charter: &CompiledCharter,
        budgets: TokenBudgets,
        tasks: TaskTracker,
        env: Option<&HashMap<String, String>>,
    ) -> anyhow::Result<ModelProxy> {
        let mut keys = HashMap::new();
        for route in charter.inventory.models.iter().flat_map(|m| &m.routes) {
            if let Some(name) = &route.api_key_env {
                let value = match env {
                    Some(map) => map.get(name).cloned(),
                    None => std::env::var(name).ok(),
                };
                match value {
                    Some(v) if !v.is_empty() => {
                        keys.insert(name.clone(), v);
                    }
                    _ => {
                        tracing::warn!(variable = %name, model = %route.model, "A provider key variable is not set; that route is called without a key.")
                    }
                }
            }
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(256)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(ModelProxy {
            client,
            keys,
            cooldown: Mutex::default(),
            budgets,
            system_message: charter
                .context
                .system_message
                .then(|| system_message(charter)),
            tasks,
        })
    }
}

/// An error in the caller's protocol.
fn error(protocol: Protocol, status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(protocol.error_body(status.as_u16(), code, message)),
    )
        .into_response()
}

/// The endpoint URL of a route.
fn endpoint(route: &ModelRoute, protocol: Protocol) -> String {
    let base = route.base_url.as_str().trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/{}", protocol.endpoint())
    } else {
        format!("{base}/v1/{}", protocol.endpoint())
    }
}

fn protocol_of(p: Provider) -> Protocol {
    match p {
        Provider::Openai => Protocol::OpenAi,
        Provider::Anthropic => Protocol::Anthropic,
    }
}

fn excerpt(s: &str) -> String {
    if s.len() <= TURN_EXCERPT {
        return s.to_owned();
    }
    let mut end = TURN_EXCERPT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or_default())
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Arc<Session>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    proxy(state, session, Protocol::OpenAi, headers, body).await
}

/// `POST /v1/messages`.
pub async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Arc<Session>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    proxy(state, session, Protocol::Anthropic, headers, body).await
}

/// `GET /v1/models`: the charter's aliases, in Anthropic's shape when the client sends
/// `anthropic-version`, OpenAI's otherwise.
pub async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let models = &state.governor.charter.inventory.models;
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

/// One model call, as recorded.
struct Call {
    id: String,
    session: Arc<Session>,
    protocol: Protocol,
    alias: String,
    stream: bool,
    prompt_text: String,
    last_user: String,
    started: Instant,
    attempts: Vec<Value>,
}

async fn proxy(
    state: Arc<AppState>,
    session: Arc<Session>,
    protocol: Protocol,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return error(protocol, e.status(), "invalid_request", &e.body_text());
        }
    };
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                protocol,
                StatusCode::BAD_REQUEST,
                "invalid_json",
                &format!("the request body is not valid JSON: {e}"),
            );
        }
    };
    let inspected = match warden_llm::inspect(protocol, &parsed) {
        Ok(i) => i,
        Err(m) => return error(protocol, StatusCode::BAD_REQUEST, "invalid_request", &m),
    };
    let gov = &state.governor;
    let now = gov.now();
    if session.is_revoked() || session.is_expired(now) {
        return error(
            protocol,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "the session is revoked or expired",
        );
    }
    let charter = gov.charter.clone();
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
        return error(
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
    let proxy = &state.models;
    let call = Call {
        id: Uuid::now_v7().to_string(),
        session: session.clone(),
        protocol,
        alias: model.alias.clone(),
        stream: inspected.stream,
        prompt_text: inspected.prompt_text,
        last_user: inspected.last_user,
        started: Instant::now(),
        attempts: Vec::new(),
    };
    if let Err(exceeded) = proxy.budgets.check(&session, now) {
        let message = exceeded.message();
        let record = NewRecord {
            session: Some(session.id.clone()),
            kind: RecordKind::BudgetExceeded,
            payload: json!({
                "call": call.id,
                "alias": call.alias,
                "per": exceeded.per.as_str(),
                "limit": exceeded.limit,
                "used": exceeded.used,
            }),
        };
        if let Err(e) = gov.ledger().append(record).await {
            tracing::error!(error = %e, "The ledger cannot record a refused model call.");
        }
        return error(
            protocol,
            StatusCode::TOO_MANY_REQUESTS,
            "budget_exceeded",
            &message,
        );
    }
    let requested = NewRecord {
        session: Some(session.id.clone()),
        kind: RecordKind::ModelRequested,
        payload: json!({
            "call": call.id,
            "protocol": protocol.as_str(),
            "alias": call.alias,
            "stream": call.stream,
            "system_message": proxy.system_message.is_some(),
            "request": parsed,
        }),
    };
    let Value::Object(request) = parsed else {
        return error(
            protocol,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body must be a JSON object",
        );
    };
    // The request is recorded while it is forwarded; nothing is answered unless it was.
    let ledger = gov.ledger().clone();
    let (recorded, forwarded) = tokio::join!(
        ledger.append(requested),
        forward(&state, model, &request, &headers, call)
    );
    if let Err(e) = recorded {
        tracing::error!(error = %e, "The ledger cannot record a model request; the answer is withheld.");
        return error(
            protocol,
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
            "the request could not be recorded, so the answer is withheld",
        );
    }
    match forwarded {
        Forwarded::Answer { response, capture } => {
            let state = state.clone();
            proxy
                .tasks
                .spawn(async move { capture.record(&state).await });
            response
        }
        Forwarded::Stream { response, start } => {
            start.send(()).ok();
            response
        }
        Forwarded::Failed { response, capture } => {
            capture.record(&state).await;
            response
        }
    }
}

/// A call that was answered.
struct Done {
    call: Call,
    route: Value,
    status: u16,
    body: Option<Value>,
    completion: Completion,
    usage: Usage,
    counted: Counted,
}

/// What to record once the answer is on its way.
enum Capture {
    /// A complete response (or a provider error passed through).
    Completed(Box<Done>),
    /// Every route failed.
    Failed { call: Call },
}

enum Forwarded {
    /// A complete answer, recorded after it is sent.
    Answer {
        response: Response,
        capture: Capture,
    },
    /// A stream: its task starts relaying when `start` fires (after the request is recorded)
    /// and records the completion at its end.
    Stream {
        response: Response,
        start: tokio::sync::oneshot::Sender<()>,
    },
    /// Nothing answered.
    Failed {
        response: Response,
        capture: Capture,
    },
}

fn route_json(route: &ModelRoute) -> Value {
    json!({ "provider": protocol_of(route.provider).as_str(), "model": route.model, "base_url": route.base_url.as_str() })
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
        .min(MAX_RETRY_AFTER)
}

/// Tries the alias's routes in order.
async fn forward(
    state: &Arc<AppState>,
    model: &Model,
    request: &serde_json::Map<String, Value>,
    agent_headers: &HeaderMap,
    mut call: Call,
) -> Forwarded {
    let proxy = &state.models;
    let protocol = call.protocol;
    let mut soonest_retry: Option<Duration> = None;
    for (index, route) in model.routes.iter().enumerate() {
        let upstream_protocol = protocol_of(route.provider);
        let key = (model.alias.clone(), index);
        let now = Instant::now();
        let cooling = proxy
            .cooldown
            .lock()
            .ok()
            .and_then(|c| c.get(&key).copied())
            .filter(|until| *until > now);
        if let Some(until) = cooling {
            let left = until - now;
            soonest_retry = Some(soonest_retry.map_or(left, |s| s.min(left)));
            call.attempts
                .push(json!({ "route": index, "skipped": "rate limited (Retry-After)" }));
            continue;
        }
        // A route of the other protocol gets the request translated (and its answer back).
        let mut body = match translate::request(protocol, upstream_protocol, request) {
            Ok(b) => b,
            Err(e) => {
                call.attempts.push(
                    json!({ "route": index, "error": format!("cannot translate the request: {e}") }),
                );
                continue;
            }
        };
        let hide_usage = warden_llm::prepare(
            upstream_protocol,
            &mut body,
            &route.model,
            proxy.system_message.as_deref(),
            call.stream,
        );
        let mut req = proxy
            .client
            .post(endpoint(route, upstream_protocol))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .json(&body);
        let key_value = route.api_key_env.as_ref().and_then(|e| proxy.keys.get(e));
        match upstream_protocol {
            Protocol::OpenAi => {
                if let Some(k) = key_value {
                    req = req.bearer_auth(k);
                }
            }
            Protocol::Anthropic => {
                if let Some(k) = key_value {
                    req = req.header("x-api-key", k);
                }
                let version = agent_headers
                    .get("anthropic-version")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("2023-06-01");
                req = req.header("anthropic-version", version);
                if let Some(beta) = agent_headers
                    .get("anthropic-beta")
                    .and_then(|v| v.to_str().ok())
                {
                    req = req.header("anthropic-beta", beta);
                }
            }
        }
        let sent = tokio::time::timeout(route.timeout, req.send()).await;
        let upstream = match sent {
            Err(_) => {
                call.attempts
                    .push(json!({ "route": index, "error": "timeout" }));
                continue;
            }
            Ok(Err(e)) => {
                call.attempts.push(json!({ "route": index, "error": if e.is_connect() { "connection failed" } else { "request failed" } }));
                continue;
            }
            Ok(Ok(r)) => r,
        };
        let status = upstream.status().as_u16();
        if status == 429 {
            let wait = retry_after(upstream.headers());
            if let Ok(mut c) = proxy.cooldown.lock() {
                c.insert(key, Instant::now() + wait);
            }
            soonest_retry = Some(soonest_retry.map_or(wait, |s| s.min(wait)));
            call.attempts.push(
                json!({ "route": index, "status": 429, "retry_after_seconds": wait.as_secs() }),
            );
            continue;
        }
        if status >= 500 {
            call.attempts
                .push(json!({ "route": index, "status": status }));
            continue;
        }
        let is_stream = upstream
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut passed = HeaderMap::new();
        for name in PASSED_HEADERS {
            if let Some(v) = upstream.headers().get(name)
                && let Ok(v) = HeaderValue::from_bytes(v.as_bytes())
            {
                passed.insert(name, v);
            }
        }
        call.attempts
            .push(json!({ "route": index, "status": status }));
        if call.stream && is_stream && (200..300).contains(&status) {
            let agent_wants_usage = request
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                == Some(true);
            let relay = Relay {
                upstream_protocol,
                hide_usage: hide_usage || !agent_wants_usage,
            };
            return stream(state.clone(), upstream, route, call, relay, passed);
        }
        // A complete body: read it (bounded, within the route's timeout); a failure here is
        // still before any byte reached the agent, so the next route may answer.
        let read = tokio::time::timeout(route.timeout, read_bounded(upstream)).await;
        let bytes = match read {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                if let Some(a) = call.attempts.last_mut() {
                    *a = json!({ "route": index, "status": status, "error": e });
                }
                continue;
            }
            Err(_) => {
                if let Some(a) = call.attempts.last_mut() {
                    *a = json!({ "route": index, "status": status, "error": "timeout reading the response" });
                }
                continue;
            }
        };
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let ok = (200..300).contains(&status);
        let completion = match (&body, ok) {
            (Some(b), true) => warden_llm::read_response(upstream_protocol, b),
            _ => Completion::default(),
        };
        let bytes = match (&body, upstream_protocol == protocol) {
            (_, true) | (None, false) => bytes,
            (Some(b), false) => {
                let translated = if ok {
                    translate::response(upstream_protocol, protocol, b)
                } else {
                    translate::error(upstream_protocol, protocol, status, b)
                };
                passed.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                serde_json::to_vec(&translated).unwrap_or_default()
            }
        };
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        *response.headers_mut() = passed;
        // Counted before the agent has the answer, so its next call sees the tokens.
        let usage = usage_of(&call, &completion, (200..300).contains(&status));
        let counted = proxy
            .budgets
            .count(&call.session, state.governor.now(), usage.total());
        return Forwarded::Answer {
            response,
            capture: Capture::Completed(Box::new(Done {
                call,
                route: route_json(route),
                status,
                body,
                completion,
                usage,
                counted,
            })),
        };
    }
    let response = match soonest_retry {
        Some(wait) => {
            let mut r = error(
                protocol,
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &format!(
                    "every provider of `{}` is rate limited; retry after {}s",
                    model.alias,
                    wait.as_secs().max(1)
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
            r
        }
        None => error(
            protocol,
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            &format!("no provider of `{}` answered", model.alias),
        ),
    };
    Forwarded::Failed {
        response,
        capture: Capture::Failed { call },
    }
}

async fn read_bounded(mut r: reqwest::Response) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    loop {
        match r.chunk().await {
            Ok(Some(c)) => {
                if out.len() + c.len() > MAX_RESPONSE_BYTES {
                    return Err("response larger than the limit");
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(_) => return Err("connection lost reading the response"),
        }
    }
}

/// Relays a stream to the agent as it arrives, assembling the completion on the way.
/// How a stream is relayed.
struct Relay {
    /// The provider's protocol (the agent's is the call's).
    upstream_protocol: Protocol,
    /// Leave out OpenAI usage-only chunks (the agent did not ask for them).
    hide_usage: bool,
}

/// Writes events as SSE text.
fn frame(events: &[SseEvent], out: &mut String) {
    for e in events {
        if let Some(name) = &e.event {
            out.push_str("event: ");
            out.push_str(name);
            out.push('\n');
        }
        for line in e.data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
}

/// Whether an OpenAI chunk carries only usage.
fn usage_only(e: &SseEvent) -> bool {
    serde_json::from_str::<Value>(&e.data).is_ok_and(|v| {
        v.get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
            && v.get("usage").is_some_and(|u| !u.is_null())
    })
}

fn stream(
    state: Arc<AppState>,
    upstream: reqwest::Response,
    route: &ModelRoute,
    call: Call,
    relay: Relay,
    passed: HeaderMap,
) -> Forwarded {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(STREAM_BUFFER);
    let (start_tx, start_rx) = tokio::sync::oneshot::channel::<()>();
    let idle = route.timeout;
    let mut translator = (relay.upstream_protocol != call.protocol)
        .then(|| StreamTranslator::new(relay.upstream_protocol, call.protocol, &route.model));
    let route = route_json(route);
    let protocol = relay.upstream_protocol;
    let agent_protocol = call.protocol;
    let hide_usage = relay.hide_usage;
    let tasks = state.models.tasks.clone();
    tasks.spawn(async move {
        // Relay only once the request is recorded (or not at all if it is not).
        if start_rx.await.is_err() {
            return;
        }
        let mut parser = SseParser::new(MAX_EVENT_BYTES);
        let mut assembler = Assembler::new(protocol);
        let mut capturing = true;
        let mut bytes = upstream.bytes_stream();
        let mut outcome = "ok";
        loop {
            let next = tokio::time::timeout(idle, bytes.next()).await;
            let chunk = match next {
                Err(_) => {
                    outcome = "upstream_timeout";
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(_))) => {
                    outcome = "upstream_error";
                    break;
                }
                Ok(Some(Ok(c))) => c,
            };
            let events = if capturing {
                match parser.push(&chunk) {
                    Ok(e) => e,
                    Err(_) => {
                        capturing = false;
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let out = if let Some(t) = translator.as_mut().filter(|_| capturing) {
                // Another protocol: the agent gets the translated events.
                let mut out = String::new();
                for e in &events {
                    assembler.feed(e);
                    let translated: Vec<SseEvent> = t
                        .event(e)
                        .into_iter()
                        .filter(|x| {
                            !(hide_usage && agent_protocol == Protocol::OpenAi && usage_only(x))
                        })
                        .collect();
                    frame(&translated, &mut out);
                }
                Bytes::from(out)
            } else if hide_usage && protocol == Protocol::OpenAi && capturing {
                // Re-frame the events, leaving out the usage chunk the agent did not ask for.
                let mut out = String::new();
                for e in &events {
                    if assembler.feed(e) {
                        continue;
                    }
                    frame(std::slice::from_ref(e), &mut out);
                }
                Bytes::from(out)
            } else {
                for e in &events {
                    assembler.feed(e);
                }
                chunk
            };
            if !out.is_empty() && tx.send(Ok(out)).await.is_err() {
                outcome = "client_closed";
                break;
            }
        }
        if outcome == "ok"
            && let Some(t) = translator.as_mut()
        {
            let mut out = String::new();
            frame(&t.finish(), &mut out);
            if !out.is_empty() {
                let _ = tx.send(Ok(Bytes::from(out))).await;
            }
        }
        let complete = assembler.complete;
        let completion = assembler.finish();
        // Counted before the agent sees the end of the stream.
        let usage = usage_of(&call, &completion, true);
        let counted =
            state
                .models
                .budgets
                .count(&call.session, state.governor.now(), usage.total());
        if outcome == "upstream_error" || outcome == "upstream_timeout" {
            // Abort the agent's response: a cut-off stream must not look complete.
            let _ = tx
                .send(Err(std::io::Error::other(format!(
                    "the provider's stream ended early ({outcome})"
                ))))
                .await;
        }
        drop(tx);
        let mut call = call;
        if let Some(a) = call.attempts.last_mut()
            && let Some(o) = a.as_object_mut()
        {
            o.insert(
                "stream".to_owned(),
                json!({ "outcome": outcome, "complete": complete }),
            );
        }
        let capture = Capture::Completed(Box::new(Done {
            call,
            route,
            status: 200,
            body: None,
            completion,
            usage,
            counted,
        }));
        capture.record(&state).await;
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut response = Response::new(body);
    *response.headers_mut() = passed;
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    Forwarded::Stream {
        response,
        start: start_tx,
    }
}

impl Capture {
    /// Records the completion, its intents and usage; counts the tokens; keeps the turn for
    /// approvals.
    async fn record(self, state: &AppState) {
        let ledger: &Ledger = state.governor.ledger();
        match self {
            Capture::Failed { call } => {
                let record = NewRecord {
                    session: Some(call.session.id.clone()),
                    kind: RecordKind::ModelFailed,
                    payload: json!({ "call": call.id, "alias": call.alias, "attempts": call.attempts, "duration_ms": ms(call.started) }),
                };
                if let Err(e) = ledger.append(record).await {
                    tracing::error!(error = %e, "The ledger cannot record a failed model call.");
                }
            }
            Capture::Completed(done) => {
                let Done {
                    call,
                    route,
                    status,
                    body,
                    completion,
                    usage,
                    counted,
                } = *done;
                record_completion(state, call, route, status, body, completion, usage).await;
                state.models.budgets.persist(counted).await;
            }
        }
    }
}

fn ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The call's usage: the provider's, or an estimate for a successful call without one.
fn usage_of(call: &Call, completion: &Completion, ok: bool) -> Usage {
    match completion.usage {
        Some(u) => u,
        None if ok => Usage {
            input_tokens: estimate_tokens(&call.prompt_text),
            output_tokens: estimate_tokens(&completion.text).saturating_add(
                completion
                    .intents
                    .iter()
                    .map(|i| {
                        estimate_tokens(&i.arguments.to_string())
                            .saturating_add(estimate_tokens(&i.tool))
                    })
                    .sum::<u64>(),
            ),
            estimated: true,
        },
        None => Usage::default(),
    }
}

async fn record_completion(
    state: &AppState,
    call: Call,
    route: Value,
    status: u16,
    body: Option<Value>,
    completion: Completion,
    usage: Usage,
) {
    let ok = (200..300).contains(&status);
    let sid = Some(call.session.id.clone());
    let mut batch = vec![NewRecord {
        session: sid.clone(),
        kind: RecordKind::ModelCompleted,
        payload: json!({
            "call": call.id,
            "alias": call.alias,
            "route": route,
            "status": status,
            "stream": call.stream,
            "completion": { "text": completion.text, "finish_reason": completion.finish_reason },
            "response": body,
            "usage": usage,
            "intents": completion.intents.len(),
            "attempts": call.attempts,
            "duration_ms": ms(call.started),
        }),
    }];
    for intent in &completion.intents {
        batch.push(NewRecord {
            session: sid.clone(),
            kind: RecordKind::ModelIntent,
            payload: json!({ "call": call.id, "id": intent.id, "tool": intent.tool, "arguments": intent.arguments }),
        });
    }
    if let Err(e) = state.governor.ledger().append_batch(batch).await {
        tracing::error!(error = %e, "The ledger cannot record a model completion.");
    }
    if ok {
        state.governor.model_turns().push(
            &call.session.id,
            json!({
                "call": call.id,
                "alias": call.alias,
                "prompt": excerpt(&call.last_user),
                "completion": excerpt(&completion.text),
                "intents": completion.intents,
            }),
        );
    }
}
