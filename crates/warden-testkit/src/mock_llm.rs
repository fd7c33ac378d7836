//! A scripted mock model provider that speaks both the OpenAI Chat Completions and the
//! Anthropic Messages wire shapes, streaming and not, so one instance serves many tests of the
//! model proxy.
//!
//! Routes: `POST /v1/chat/completions` (OpenAI), `POST /v1/messages` (Anthropic; needs the
//! `x-api-key` and `anthropic-version` headers, else 401), `GET /v1/models` (OpenAI shape).
//!
//! The request picks the behaviour. The text of the last message (`messages[-1].content`, a
//! string or the `text` parts/blocks of a list) may hold directives:
//!
//! | directive | effect |
//! |---|---|
//! | `[tool:NAME {json}]` | the reply calls tool NAME with that object as arguments (the object may be left out: `{}`), plus a short text; several directives give several calls |
//! | `[error:CODE]` | HTTP CODE (400..=599) with the provider's error body; 429 also sends `Retry-After: 1` |
//! | `[retry-after:N]` | with an error: `Retry-After: N` |
//! | `[slow:MS]` | wait MS milliseconds before the response head |
//! | `[stall:MS]` | streaming: send the first events, then wait MS milliseconds |
//! | `[no-usage]` | no usage, streaming or not |
//! | `[drop-mid-stream]` | send part of the body, then abort the connection |
//! | `[long:N]` | the reply text grows by about N bytes of filler words (at most 10 MiB) |
//! | `[echo-key]` | the API key the request carried (`x-api-key`, or the bearer token) is echoed: in the error message with `[error:CODE]`, else at the end of the reply text |
//!
//! A request whose `tools` hold a function name the providers refuse (outside
//! `^[a-zA-Z0-9_-]{1,64}$`: `fs.read`, say) is answered 400 in the provider's shape, as the
//! real APIs answer it (OpenAI: `invalid_request_error` with `param: tools[i].function.name`;
//! Anthropic: `invalid_request_error`).
//!
//! Otherwise the reply is `echo: <last message text>`. Usage: input (prompt) tokens are the
//! whitespace-separated words of every message's text (text parts, tool results) plus one per
//! message; Anthropic's top-level `system` is not counted. Output (completion) tokens are the
//! words of the reply text, plus, per tool call, one and the words of its arguments JSON.
//!
//! [`MockConfig::name`], when not empty, prefixes reply texts with `[NAME] ` and is sent in the
//! `x-mock-name` response header. [`MockConfig::fail_first`] answers 503 to the first N model
//! requests. Both model routes count every request and keep the last one's headers and body
//! (see [`MockLlm`]); `GET /v1/models` is neither counted nor failed.

mod framing;
mod reply;
mod script;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use framing::{error_response, json_response};
use reply::Reply;
use script::Parsed;

/// Per-instance settings.
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// Answer 503 (in the provider's error shape) to the first N model requests.
    pub fail_first: u32,
    /// When not empty: reply texts start with `[NAME] ` and responses carry `x-mock-name: NAME`,
    /// so a test can tell which upstream answered.
    pub name: String,
}

/// One request as the mock received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The request path, e.g. `/v1/messages`.
    pub path: String,
    /// Every header, names in lower case, values lossily decoded, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`null` when it was not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The last request a mock received, shared with the server.
pub type LastRequest = Arc<Mutex<Option<RecordedRequest>>>;

/// What a mock observes: shared with the server, readable by tests.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Model requests received (both model routes; `GET /v1/models` not counted).
    pub requests: Arc<AtomicU64>,
    /// The last model request received.
    pub last: LastRequest,
}

/// A running mock provider.
#[derive(Debug, Clone)]
pub struct MockLlm {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:PORT`; the routes are under
    /// `/v1`.
    pub url: String,
    /// Model requests received so far.
    pub requests: Arc<AtomicU64>,
    /// The last model request received.
    pub last: LastRequest,
}

impl MockLlm {
    /// Model requests received so far.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// A copy of the last model request received.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Serves a mock on an ephemeral loopback port. It runs until the runtime stops.
pub async fn spawn(config: MockConfig) -> std::io::Result<MockLlm> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let observed = Observed::default();
    let mock = MockLlm {
        url: format!("http://{addr}"),
        requests: observed.requests.clone(),
        last: observed.last.clone(),
    };
    let app = router(config, observed);
    #[expect(
        clippy::disallowed_methods,
        reason = "a test peer: it serves until the test's runtime stops, with no shutdown to drain it"
    )]
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(mock)
}

/// The mock's routes, reporting into `observed`.
pub fn router(config: MockConfig, observed: Observed) -> Router {
    let name = HeaderValue::from_str(&config.name)
        .ok()
        .filter(|_| !config.name.is_empty());
    let prefix = if config.name.is_empty() {
        String::new()
    } else {
        format!("[{}] ", config.name)
    };
    let state = Arc::new(Mock {
        fail_first: u64::from(config.fail_first),
        prefix,
        name,
        observed,
    });
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(models))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(state)
}

struct Mock {
    fail_first: u64,
    prefix: String,
    name: Option<HeaderValue>,
    observed: Observed,
}

/// The two wire shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    OpenAi,
    Anthropic,
}

async fn chat_completions(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = mock.handle(Wire::OpenAi, headers, &body).await;
    mock.tag(&mut response);
    response
}

async fn messages(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut response = mock.handle(Wire::Anthropic, headers, &body).await;
    mock.tag(&mut response);
    response
}

async fn models(State(mock): State<Arc<Mock>>) -> Response {
    let data: Vec<Value> = ["mock-model", "gpt-4o-mini", "claude-3-5-haiku-latest"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "warden-mock"}))
        .collect();
    let mut response = json_response(StatusCode::OK, &json!({"object": "list", "data": data}));
    mock.tag(&mut response);
    response
}

async fn not_found() -> Response {
    error_response(
        Wire::OpenAi,
        StatusCode::NOT_FOUND,
        "no such route on the mock",
        None,
    )
}

impl Mock {
    fn tag(&self, response: &mut Response) {
        if let Some(name) = &self.name {
            response.headers_mut().insert("x-mock-name", name.clone());
        }
    }

    async fn handle(&self, wire: Wire, headers: HeaderMap, body: &[u8]) -> Response {
        let seq = self.observed.requests.fetch_add(1, Ordering::SeqCst);
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let parsed = json.as_ref().map(|v| Parsed::from_body(wire, v));
        let invalid_tool = json
            .as_ref()
            .and_then(|v| script::invalid_tool_name(wire, v));
        self.record(wire, &headers, json.unwrap_or(Value::Null));

        if seq < self.fail_first {
            return error_response(
                wire,
                StatusCode::SERVICE_UNAVAILABLE,
                "the mock fails this request (fail_first)",
                None,
            );
        }
        if wire == Wire::Anthropic {
            for required in ["x-api-key", "anthropic-version"] {
                if !headers.contains_key(required) {
                    let message = format!("{required}: header is required");
                    return error_response(wire, StatusCode::UNAUTHORIZED, &message, None);
                }
            }
        }
        // Like the real providers: a function name outside `^[a-zA-Z0-9_-]{1,64}$` in `tools`
        // is a 400 (an MCP tool named `server.tool` handed to the model breaks the turn).
        if let Some(bad) = invalid_tool {
            return framing::invalid_tool_name(wire, &bad);
        }
        let mut parsed = match parsed {
            Some(Ok(parsed)) => parsed,
            Some(Err(message)) => {
                return error_response(wire, StatusCode::BAD_REQUEST, &message, None);
            }
            None => {
                let message = "the request body is not valid JSON";
                return error_response(wire, StatusCode::BAD_REQUEST, message, None);
            }
        };
        let key = headers
            .get("x-api-key")
            .or_else(|| headers.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_start_matches("Bearer ").to_owned())
            .unwrap_or_default();
        if parsed.script.echo_key && parsed.script.error.is_none() {
            parsed.last_text.push_str(&format!(" (your key: {key})"));
        }
        if let Some(n) = parsed.script.long {
            let words = usize::try_from(n / 6).unwrap_or(0);
            parsed.last_text.push_str(&" filler".repeat(words));
        }
        let script = &parsed.script;
        if let Some(ms) = script.slow_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(status) = script.error {
            let retry_after = script
                .retry_after
                .or((status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
            let message = if script.echo_key {
                format!("Incorrect API key provided: {key}")
            } else {
                format!("mock error {}", status.as_u16())
            };
            return error_response(wire, status, &message, retry_after);
        }
        let reply = Reply::new(&self.prefix, seq, parsed);
        match (wire, reply.stream) {
            (Wire::OpenAi, false) => reply.openai_json(),
            (Wire::OpenAi, true) => reply.openai_sse(),
            (Wire::Anthropic, false) => reply.anthropic_json(),
            (Wire::Anthropic, true) => reply.anthropic_sse(),
        }
    }

    fn record(&self, wire: Wire, headers: &HeaderMap, body: Value) {
        let path = match wire {
            Wire::OpenAi => "/v1/chat/completions",
            Wire::Anthropic => "/v1/messages",
        };
        let headers = headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let recorded = RecordedRequest {
            path: path.to_owned(),
            headers,
            body,
        };
        *self
            .observed
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(recorded);
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_tool_names;
