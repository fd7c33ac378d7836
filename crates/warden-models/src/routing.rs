//! Routing and fallback: a model alias's routes are tried in order. The next route is tried
//! after a connection error, a timeout, a 5xx, a 429 (whose `Retry-After` keeps that route
//! aside for later calls too), a request that cannot be translated to the route's protocol, or
//! a complete body that cannot be read — never once bytes of a stream reached the agent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use warden_charter::{Model, ModelRoute};
use warden_llm::{Completion, Protocol, translate};

use crate::answer::ForwardedAnswer;
use crate::capture::{AnsweredCall, CallOutcome, ModelCall};
use crate::cooldowns::RouteKey;
use crate::errors::protocol_error;
use crate::provider::{endpoint, protocol_of, route_json};
use crate::proxy::ModelProxy;
use crate::relay::{RelayMode, start_relay};

/// Largest provider response body read, in bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// How long a 429 without `Retry-After` keeps a route aside.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Headers of a provider response passed back to the agent.
const PASSED_HEADERS: [&str; 4] = [
    "content-type",
    "x-request-id",
    "request-id",
    "openai-processing-ms",
];

/// How long a 429 keeps its route aside: its `Retry-After` (seconds), bounded.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
        .min(MAX_RETRY_AFTER)
}

/// The provider request of a route: its endpoint, its key (never the agent's token), and
/// Anthropic's version and beta headers from the agent.
fn provider_request(
    proxy: &ModelProxy,
    route: &ModelRoute,
    upstream_protocol: Protocol,
    body: &Map<String, Value>,
    agent_headers: &HeaderMap,
) -> reqwest::RequestBuilder {
    let mut req = proxy
        .client
        .post(endpoint(route, upstream_protocol))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .json(body);
    let key = route.api_key_env.as_ref().and_then(|e| proxy.keys.get(e));
    match upstream_protocol {
        Protocol::OpenAi => {
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
        }
        Protocol::Anthropic => {
            if let Some(k) = key {
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
    req
}

/// Tries the alias's routes in order.
pub(crate) async fn forward(
    proxy: &Arc<ModelProxy>,
    model: &Model,
    request: &Map<String, Value>,
    agent_headers: &HeaderMap,
    mut call: ModelCall,
) -> ForwardedAnswer {
    let protocol = call.protocol;
    let mut soonest_retry: Option<Duration> = None;
    for (index, route) in model.routes.iter().enumerate() {
        let upstream_protocol = protocol_of(route.provider);
        let key = RouteKey {
            alias: model.alias.clone(),
            index,
        };
        if let Some(left) = proxy.cooldowns.remaining(&key, Instant::now()) {
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
            call.system_message.as_deref(),
            call.stream,
        );
        let req = provider_request(proxy, route, upstream_protocol, &body, agent_headers);
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
            // Checked (`wait` is at most MAX_RETRY_AFTER, but no `Instant + Duration` may panic):
            // a cooldown that cannot be computed is not held.
            if let Some(until) = Instant::now().checked_add(wait) {
                proxy.cooldowns.hold(key, until);
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
                && let Ok(v) = HeaderValue::from_bytes(&proxy.secrets.redact_bytes(v.as_bytes()))
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
            let mode = RelayMode {
                upstream_protocol,
                hide_usage: hide_usage || !agent_wants_usage,
            };
            return start_relay(proxy.clone(), upstream, route, call, mode, passed);
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
        return complete_answer(proxy, route, upstream_protocol, status, bytes, passed, call);
    }
    let response = match soonest_retry {
        Some(wait) => {
            let mut r = protocol_error(
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
        None => protocol_error(
            protocol,
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            &format!("no provider of `{}` answered", model.alias),
        ),
    };
    ForwardedAnswer::Unanswered {
        response,
        outcome: CallOutcome::Failed(Box::new(call)),
    }
}

/// The agent's response for a complete provider body (translated to the agent's protocol
/// when the route speaks the other one); the tokens are counted before the agent has it, so
/// its next call sees them.
fn complete_answer(
    proxy: &ModelProxy,
    route: &ModelRoute,
    upstream_protocol: Protocol,
    status: u16,
    bytes: Vec<u8>,
    mut passed: HeaderMap,
    mut call: ModelCall,
) -> ForwardedAnswer {
    let protocol = call.protocol;
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
    // The gateway's secrets never reach the agent (a provider error may echo its key).
    let bytes = proxy.secrets.redact_bytes(&bytes).into_owned();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = passed;
    let usage = call.usage(&completion, ok);
    let counted = proxy
        .budgets
        .count(&call.session, proxy.clock.now(), usage.total())
        .releasing(call.reservation.take());
    ForwardedAnswer::Complete {
        response,
        outcome: CallOutcome::Answered(Box::new(AnsweredCall {
            call,
            route: route_json(route),
            status,
            body,
            completion,
            usage,
            counted,
        })),
    }
}

/// Reads a complete provider body, at most [`MAX_RESPONSE_BYTES`].
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
