//! The reply to one request, wire-neutral, and its OpenAI and Anthropic bodies and streams.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::framing::{
    Step, json_response, split_json, split_words, sse_data, sse_event, steps_body,
};
use super::script::{Parsed, words};

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
pub(super) struct Reply {
    seq: u64,
    created: u64,
    model: String,
    pub(super) stream: bool,
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
    pub(super) fn new(prefix: &str, seq: u64, parsed: Parsed) -> Reply {
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

    pub(super) fn openai_json(&self) -> Response {
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

    pub(super) fn openai_sse(&self) -> Response {
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

    pub(super) fn anthropic_json(&self) -> Response {
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

    pub(super) fn anthropic_sse(&self) -> Response {
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
