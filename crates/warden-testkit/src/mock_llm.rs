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

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

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
        let parsed = match parsed {
            Some(Ok(parsed)) => parsed,
            Some(Err(message)) => {
                return error_response(wire, StatusCode::BAD_REQUEST, &message, None);
            }
            None => {
                let message = "the request body is not valid JSON";
                return error_response(wire, StatusCode::BAD_REQUEST, message, None);
            }
        };
        let script = &parsed.script;
        if let Some(ms) = script.slow_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(status) = script.error {
            let retry_after = script
                .retry_after
                .or((status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
            let message = format!("mock error {}", status.as_u16());
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

/// What the request asks for, read from its body.
#[derive(Debug)]
struct Parsed {
    model: String,
    stream: bool,
    include_usage: bool,
    prompt_tokens: u64,
    last_text: String,
    script: Script,
}

impl Parsed {
    fn from_body(wire: Wire, body: &Value) -> Result<Parsed, String> {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .ok_or("model: field required")?
            .to_owned();
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .ok_or("messages: field required (an array)")?;
        if wire == Wire::Anthropic && body.get("max_tokens").and_then(Value::as_u64).is_none() {
            return Err("max_tokens: field required".to_owned());
        }
        let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let include_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut prompt_tokens = 0u64;
        for message in messages {
            prompt_tokens += 1 + count_words(message.get("content"));
        }
        let mut last_text = String::new();
        if let Some(content) = messages.last().and_then(|m| m.get("content")) {
            text_of(content, &mut last_text);
        }
        let script = Script::parse(&last_text);
        Ok(Parsed {
            model,
            stream,
            include_usage,
            prompt_tokens,
            last_text,
            script,
        })
    }
}

/// The text of a message's content: the string, or its `text` parts joined by a space.
fn text_of(content: &Value, out: &mut String) {
    match content {
        Value::String(s) => out.push_str(s),
        Value::Array(parts) => {
            for text in parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
            {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(text);
            }
        }
        _ => {}
    }
}

/// Words in a content value: strings, `text` parts, and the content of tool results.
fn count_words(content: Option<&Value>) -> u64 {
    match content {
        Some(Value::String(s)) => words(s),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| {
                p.get("text").and_then(Value::as_str).map_or(0, words)
                    + if p.get("type").and_then(Value::as_str) == Some("tool_result") {
                        count_words(p.get("content"))
                    } else {
                        0
                    }
            })
            .sum(),
        _ => 0,
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// The directives found in the last message.
#[derive(Debug, Default)]
struct Script {
    tools: Vec<(String, Map<String, Value>)>,
    error: Option<StatusCode>,
    retry_after: Option<u64>,
    slow_ms: Option<u64>,
    stall_ms: Option<u64>,
    no_usage: bool,
    drop_mid_stream: bool,
}

impl Script {
    fn parse(text: &str) -> Script {
        let mut script = Script::default();
        for (i, _) in text.match_indices('[') {
            let Some(rest) = text.get(i + 1..) else {
                continue;
            };
            if let Some(rest) = rest.strip_prefix("tool:") {
                if let Some(call) = parse_tool(rest) {
                    script.tools.push(call);
                }
            } else if let Some(n) = number_arg(rest, "error:") {
                script.error = u16::try_from(n)
                    .ok()
                    .filter(|n| (400..=599).contains(n))
                    .and_then(|n| StatusCode::from_u16(n).ok());
            } else if let Some(n) = number_arg(rest, "retry-after:") {
                script.retry_after = Some(n);
            } else if let Some(n) = number_arg(rest, "slow:") {
                script.slow_ms = Some(n);
            } else if let Some(n) = number_arg(rest, "stall:") {
                script.stall_ms = Some(n);
            } else if rest.starts_with("no-usage]") {
                script.no_usage = true;
            } else if rest.starts_with("drop-mid-stream]") {
                script.drop_mid_stream = true;
            }
        }
        script
    }
}

/// `KEY:N]` at the start of `rest`.
fn number_arg(rest: &str, key: &str) -> Option<u64> {
    let (n, _) = rest.strip_prefix(key)?.split_once(']')?;
    n.trim().parse().ok()
}

/// `NAME]` or `NAME {json object}]` at the start of `rest`.
fn parse_tool(rest: &str) -> Option<(String, Map<String, Value>)> {
    let end = rest.find(|c: char| c.is_whitespace() || c == ']')?;
    let name = rest.get(..end).filter(|n| !n.is_empty())?;
    let after = rest.get(end..)?.trim_start();
    if after.starts_with(']') {
        return Some((name.to_owned(), Map::new()));
    }
    let mut values = serde_json::Deserializer::from_str(after).into_iter::<Value>();
    let Some(Ok(Value::Object(arguments))) = values.next() else {
        return None;
    };
    let tail = after.get(values.byte_offset()..)?.trim_start();
    tail.starts_with(']').then(|| (name.to_owned(), arguments))
}

/// One tool call of a reply.
struct ToolCall {
    index: usize,
    name: String,
    arguments: Map<String, Value>,
    /// The arguments as compact JSON (OpenAI's `arguments` string, Anthropic's
    /// `partial_json` pieces).
    arguments_json: String,
}

/// The reply to one request, in wire-neutral form.
struct Reply {
    seq: u64,
    created: u64,
    model: String,
    stream: bool,
    include_usage: bool,
    text: String,
    tools: Vec<ToolCall>,
    prompt_tokens: u64,
    completion_tokens: u64,
    usage: bool,
    stall_ms: Option<u64>,
    drop_mid_stream: bool,
}

#[expect(
    clippy::disallowed_methods,
    reason = "a mock provider stamps replies with the wall clock, like the real ones"
)]
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Reply {
    fn new(prefix: &str, seq: u64, parsed: Parsed) -> Reply {
        let Parsed {
            model,
            stream,
            include_usage,
            prompt_tokens,
            last_text,
            script,
        } = parsed;
        let mut text = String::with_capacity(prefix.len() + 6 + last_text.len());
        text.push_str(prefix);
        let tools: Vec<ToolCall> = script
            .tools
            .into_iter()
            .enumerate()
            .map(|(index, (name, arguments))| ToolCall {
                index,
                arguments_json: Value::Object(arguments.clone()).to_string(),
                name,
                arguments,
            })
            .collect();
        if tools.is_empty() {
            text.push_str("echo: ");
            text.push_str(&last_text);
        } else {
            let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
            let _ = write!(text, "calling {}", names.join(", "));
        }
        let completion_tokens = words(&text)
            + tools
                .iter()
                .map(|t| 1 + words(&t.arguments_json))
                .sum::<u64>();
        Reply {
            seq,
            created: unix_now(),
            model,
            stream,
            include_usage,
            text,
            tools,
            prompt_tokens,
            completion_tokens,
            usage: !script.no_usage,
            stall_ms: script.stall_ms,
            drop_mid_stream: script.drop_mid_stream,
        }
    }

    fn finish_reason(&self) -> &'static str {
        if self.tools.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
    }

    fn stop_reason(&self) -> &'static str {
        if self.tools.is_empty() {
            "end_turn"
        } else {
            "tool_use"
        }
    }

    fn openai_id(&self) -> String {
        format!("chatcmpl-mock{:08}", self.seq)
    }

    fn openai_usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }

    fn openai_json(&self) -> Response {
        let mut message = json!({"role": "assistant", "content": self.text, "refusal": null});
        if !self.tools.is_empty() {
            let calls: Vec<Value> = self
                .tools
                .iter()
                .map(|t| {
                    json!({
                        "id": openai_call_id(self.seq, t.index),
                        "type": "function",
                        "function": {"name": t.name, "arguments": t.arguments_json},
                    })
                })
                .collect();
            if let Some(m) = message.as_object_mut() {
                m.insert("tool_calls".to_owned(), Value::Array(calls));
            }
        }
        let mut body = json!({
            "id": self.openai_id(),
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.finish_reason(),
            }],
            "system_fingerprint": "fp_mock",
            "x_mock_extra": {"kept": true},
        });
        if self.usage
            && let Some(b) = body.as_object_mut()
        {
            b.insert("usage".to_owned(), self.openai_usage());
        }
        self.json_body(&body)
    }

    fn openai_sse(&self) -> Response {
        let id = self.openai_id();
        let with_usage = self.include_usage && self.usage;
        let chunk = |delta: Value, finish: Option<&str>| {
            let mut chunk = json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            if with_usage && let Some(c) = chunk.as_object_mut() {
                c.insert("usage".to_owned(), Value::Null);
            }
            sse_data(&chunk)
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        )];
        for piece in split_words(&self.text) {
            events.push(chunk(json!({"content": piece}), None));
        }
        for t in &self.tools {
            events.push(chunk(
                json!({"tool_calls": [{
                    "index": t.index,
                    "id": openai_call_id(self.seq, t.index),
                    "type": "function",
                    "function": {"name": t.name, "arguments": ""},
                }]}),
                None,
            ));
            for piece in split_json(&t.arguments_json) {
                events.push(chunk(
                    json!({"tool_calls": [{"index": t.index, "function": {"arguments": piece}}]}),
                    None,
                ));
            }
        }
        events.push(chunk(json!({}), Some(self.finish_reason())));
        if with_usage {
            events.push(sse_data(&json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_mock",
                "choices": [],
                "usage": self.openai_usage(),
            })));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        self.sse_body(events)
    }

    fn anthropic_id(&self) -> String {
        format!("msg_mock{:016}", self.seq)
    }

    fn anthropic_json(&self) -> Response {
        let mut content = vec![json!({"type": "text", "text": self.text})];
        for t in &self.tools {
            content.push(json!({
                "type": "tool_use",
                "id": anthropic_tool_id(self.seq, t.index),
                "name": t.name,
                "input": t.arguments,
            }));
        }
        let mut body = json!({
            "id": self.anthropic_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason(),
            "stop_sequence": null,
            "x_mock_extra": {"kept": true},
        });
        if self.usage
            && let Some(b) = body.as_object_mut()
        {
            b.insert(
                "usage".to_owned(),
                json!({"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens}),
            );
        }
        self.json_body(&body)
    }

    fn anthropic_sse(&self) -> Response {
        let mut message = json!({
            "id": self.anthropic_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
        });
        if self.usage
            && let Some(m) = message.as_object_mut()
        {
            m.insert(
                "usage".to_owned(),
                json!({"input_tokens": self.prompt_tokens, "output_tokens": 1}),
            );
        }
        let mut events = vec![
            sse_event(
                "message_start",
                &json!({"type": "message_start", "message": message}),
            ),
            sse_event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            sse_event("ping", &json!({"type": "ping"})),
        ];
        for piece in split_words(&self.text) {
            events.push(sse_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        events.push(sse_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ));
        for t in &self.tools {
            let index = t.index + 1;
            events.push(sse_event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use",
                    "id": anthropic_tool_id(self.seq, t.index),
                    "name": t.name,
                    "input": {},
                }}),
            ));
            for piece in std::iter::once("").chain(split_json(&t.arguments_json)) {
                events.push(sse_event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}),
                ));
            }
            events.push(sse_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
        let mut delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason(), "stop_sequence": null},
        });
        if self.usage
            && let Some(d) = delta.as_object_mut()
        {
            d.insert(
                "usage".to_owned(),
                json!({"output_tokens": self.completion_tokens}),
            );
        }
        events.push(sse_event("message_delta", &delta));
        events.push(sse_event("message_stop", &json!({"type": "message_stop"})));
        self.sse_body(events)
    }

    fn json_body(&self, body: &Value) -> Response {
        if !self.drop_mid_stream {
            return json_response(StatusCode::OK, body);
        }
        let bytes = Bytes::from(body.to_string());
        let half = bytes.slice(..bytes.len() / 2);
        let steps = vec![Step::Data(half), Step::Abort];
        let mut response = Response::new(steps_body(steps));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    /// Frames `events`: a stall after the first two, or an abort after them.
    fn sse_body(&self, events: Vec<Bytes>) -> Response {
        const SENT_BEFORE: usize = 2;
        let mut steps = Vec::with_capacity(events.len() + 1);
        for (i, event) in events.into_iter().enumerate() {
            if i == SENT_BEFORE {
                if self.drop_mid_stream {
                    steps.push(Step::Abort);
                    break;
                }
                if let Some(ms) = self.stall_ms {
                    steps.push(Step::Pause(Duration::from_millis(ms)));
                }
            }
            steps.push(Step::Data(event));
        }
        let mut response = Response::new(steps_body(steps));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

fn openai_call_id(seq: u64, index: usize) -> String {
    format!("call_mock{seq:08}x{index}")
}

fn anthropic_tool_id(seq: u64, index: usize) -> String {
    format!("toolu_mock{seq:08}x{index}")
}

/// Splits `text` into word-sized pieces that concatenate back to it (a piece is a word with the
/// whitespace before it).
fn split_words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let start = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        let end = rest
            .get(start..)
            .and_then(|r| r.find(char::is_whitespace))
            .map_or(rest.len(), |e| start + e);
        let (piece, tail) = rest.split_at_checked(end)?;
        rest = tail;
        Some(piece)
    })
}

/// Splits a JSON text into a few pieces (at char boundaries) that concatenate back to it.
fn split_json(json: &str) -> impl Iterator<Item = &str> {
    const PIECES: usize = 3;
    let step = json.len().div_ceil(PIECES).max(1);
    let mut rest = json;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = step.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at_checked(end)?;
        rest = tail;
        Some(piece)
    })
}

fn sse_data(value: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    // Writing a `Value` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn sse_event(event: &str, value: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// One step of a response body.
enum Step {
    Data(Bytes),
    Pause(Duration),
    /// Fail the body: hyper then closes the connection without ending the message.
    Abort,
}

fn steps_body(steps: Vec<Step>) -> Body {
    let stream = futures_util::stream::unfold(steps.into_iter(), |mut steps| async move {
        loop {
            match steps.next()? {
                Step::Data(bytes) => return Some((Ok(bytes), steps)),
                Step::Pause(pause) => tokio::time::sleep(pause).await,
                Step::Abort => {
                    // Let hyper flush what was sent so far: it writes when the body is pending.
                    tokio::task::yield_now().await;
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the mock drops the connection mid-stream",
                    );
                    return Some((Err(error), steps));
                }
            }
        }
    });
    Body::from_stream(stream)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error in the provider's shape.
fn error_response(
    wire: Wire,
    status: StatusCode,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let code = status.as_u16();
    let body = match wire {
        Wire::OpenAi => {
            let (kind, code) = match code {
                401 => ("invalid_request_error", json!("invalid_api_key")),
                404 => ("invalid_request_error", json!("model_not_found")),
                429 => ("requests", json!("rate_limit_exceeded")),
                500..=599 => ("server_error", Value::Null),
                _ => ("invalid_request_error", Value::Null),
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        Wire::Anthropic => {
            let kind = match code {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                500..=599 => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    };
    let mut response = json_response(status, &body);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests;
