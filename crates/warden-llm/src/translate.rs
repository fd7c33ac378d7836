//! Translation between OpenAI chat completions and Anthropic messages, so the model proxy can
//! route a request in one protocol to a provider that speaks the other, and hand the answer
//! back in the agent's protocol: [`request`] (agent → provider), [`response`] and [`error`]
//! (provider → agent, complete bodies) and [`StreamTranslator`] (provider → agent, SSE).
//! Every function is the identity when both protocols are the same.
//!
//! What has no counterpart is dropped, never invented:
//!
//! - OpenAI → Anthropic requests: `n`, `presence_penalty`, `frequency_penalty`, `logit_bias`,
//!   `logprobs`, `top_logprobs`, `seed`, `response_format`, `stream_options`, `store`,
//!   `reasoning_effort`, `modalities`, `audio`, `prediction`, `service_tag`, message `name`s and
//!   assistant `refusal`s. `temperature` is clamped to Anthropic's `0..=1`. Content parts other
//!   than text and image (audio, files), image URLs that are neither http(s) nor base64
//!   `data:` URLs, and tool-call arguments that are not JSON are errors. `parallel_tool_calls:
//!   false` becomes `disable_parallel_tool_use`.
//! - Anthropic → OpenAI requests: `top_k`, `thinking`, `cache_control`, `citations`,
//!   `metadata` other than `user_id`, `thinking`/`redacted_thinking` blocks, document blocks
//!   and `is_error` on tool results. Server tools (a `type` other than `custom`) are errors.
//! - Responses: only the first OpenAI choice; Anthropic `thinking` blocks; logprobs.
//!   Arguments of an OpenAI tool call that are not JSON stay a string in `input`.
//! - Streams: Anthropic `thinking` and `signature` deltas, `ping`s; OpenAI `refusal` deltas.
//!   An OpenAI stream reports its input tokens only at the end, so the Anthropic
//!   `message_start` says `input_tokens: 0` and the real count is in `message_delta`'s usage.

use serde_json::{Map, Value, json};

use crate::{Protocol, SseEvent};

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn num_of(v: Option<&Value>, key: &str) -> u64 {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The texts of a `content` (a string, or parts/blocks with `text`), joined by `sep`.
fn joined_text(content: &Value, sep: &str) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| str_of(p, "text"))
            .collect::<Vec<_>>()
            .join(sep),
        _ => String::new(),
    }
}

/// Translates a request body `from` the agent's protocol `to` the provider's. `Err` is a
/// sentence for a 400 in the agent's protocol.
pub fn request(
    from: Protocol,
    to: Protocol,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    match (from, to) {
        (Protocol::OpenAi, Protocol::Anthropic) => openai_to_anthropic(body),
        (Protocol::Anthropic, Protocol::OpenAi) => anthropic_to_openai(body),
        _ => Ok(body.clone()),
    }
}

/// An OpenAI content part as an Anthropic block.
fn openai_part(part: &Value) -> Result<Value, String> {
    match str_of(part, "type") {
        Some("text") => Ok(json!({"type": "text", "text": str_of(part, "text").unwrap_or("")})),
        Some("image_url") => {
            let url = part
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .ok_or("an image_url part has no url")?;
            if url.starts_with("https://") || url.starts_with("http://") {
                return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
            }
            let Some((media, data)) = url
                .strip_prefix("data:")
                .and_then(|rest| rest.split_once(";base64,"))
            else {
                return Err("an image URL must be http(s) or a base64 data: URL".to_owned());
            };
            Ok(
                json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
            )
        }
        other => Err(format!(
            "content parts of type {} cannot be sent to an Anthropic model",
            other.unwrap_or("(none)")
        )),
    }
}

/// An OpenAI message `content` as Anthropic blocks.
fn openai_content(content: Option<&Value>) -> Result<Vec<Value>, String> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts.iter().map(openai_part).collect(),
        Some(_) => Err("a message `content` must be a string or an array".to_owned()),
    }
}

fn openai_to_anthropic(body: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut system: Vec<String> = Vec::new();
    // (role, blocks), consecutive same roles merged.
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("`messages` is required and must be an array")?;
    for m in messages {
        let content = m.get("content");
        let (role, blocks) = match str_of(m, "role") {
            Some("system" | "developer") => {
                system.push(content.map(|c| joined_text(c, "\n\n")).unwrap_or_default());
                continue;
            }
            Some("user") => ("user", openai_content(content)?),
            Some("assistant") => {
                let mut blocks = openai_content(content)?;
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = call
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .ok_or("a tool call has no function name")?;
                    let raw = call
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let input = if raw.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str::<Value>(raw).map_err(|_| {
                            format!("the arguments of the call to {name} are not JSON")
                        })?
                    };
                    blocks.push(
                        json!({"type": "tool_use", "id": str_of(call, "id").unwrap_or(""),
                        "name": name, "input": input}),
                    );
                }
                ("assistant", blocks)
            }
            Some("tool") => {
                let id = str_of(m, "tool_call_id").ok_or("a tool message has no tool_call_id")?;
                let text = content.map(|c| joined_text(c, "\n\n")).unwrap_or_default();
                (
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": text})],
                )
            }
            other => {
                return Err(format!(
                    "messages of role {} cannot be sent to an Anthropic model",
                    other.unwrap_or("(none)")
                ));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, prev)) if *last == role => prev.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks)| {
            let content = match blocks.as_slice() {
                [only] if str_of(only, "type") == Some("text") => {
                    only.get("text").cloned().unwrap_or_default()
                }
                _ => Value::Array(blocks),
            };
            json!({"role": role, "content": content})
        })
        .collect();

    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));
    let max = body
        .get("max_completion_tokens")
        .filter(|v| v.is_u64())
        .or_else(|| body.get("max_tokens").filter(|v| v.is_u64()))
        .cloned()
        .unwrap_or(json!(4096));
    out.insert("max_tokens".into(), max);
    if let Some(t) = body.get("temperature").and_then(Value::as_f64) {
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = body.get("top_p").filter(|v| v.is_number()) {
        out.insert("top_p".into(), p.clone());
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(list)) if !list.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(list.clone()));
        }
        _ => {}
    }
    if let Some(s) = body.get("stream").filter(|v| v.is_boolean()) {
        out.insert("stream".into(), s.clone());
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let mut list = Vec::new();
        for t in tools {
            let f = t.get("function").ok_or("a tool has no `function`")?;
            let name = str_of(f, "name").ok_or("a tool function has no name")?;
            let mut tool = json!({"name": name,
                "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object"}))});
            if let (Some(d), Some(obj)) = (f.get("description"), tool.as_object_mut()) {
                obj.insert("description".into(), d.clone());
            }
            list.push(tool);
        }
        out.insert("tools".into(), Value::Array(list));
    }
    let mut choice = match body.get("tool_choice") {
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            other => return Err(format!("tool_choice {other} has no Anthropic counterpart")),
        },
        Some(c @ Value::Object(_)) => {
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or("tool_choice names no function")?;
            Some(json!({"type": "tool", "name": name}))
        }
        _ => None,
    };
    if body.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if let Some(obj) = c.as_object_mut()
            && obj.get("type").and_then(Value::as_str) != Some("none")
        {
            obj.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    if let Some(u) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    Ok(out)
}

/// An Anthropic image block as an OpenAI `image_url` part.
fn anthropic_image(block: &Value) -> Result<Value, String> {
    let source = block.get("source").ok_or("an image block has no source")?;
    let url = match str_of(source, "type") {
        Some("url") => str_of(source, "url")
            .ok_or("an image source has no url")?
            .to_owned(),
        Some("base64") => format!(
            "data:{};base64,{}",
            str_of(source, "media_type").unwrap_or("image/png"),
            str_of(source, "data").unwrap_or("")
        ),
        _ => return Err("only url and base64 image sources can be sent to an OpenAI model".into()),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn anthropic_to_openai(body: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut messages = Vec::new();
    if let Some(system) = body.get("system") {
        let text = joined_text(system, "\n\n");
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let source = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("`messages` is required and must be an array")?;
    for m in source {
        let role = match str_of(m, "role") {
            Some("user") => "user",
            Some("assistant") => "assistant",
            other => {
                return Err(format!(
                    "messages of role {} cannot be sent to an OpenAI model",
                    other.unwrap_or("(none)")
                ));
            }
        };
        let blocks = match m.get("content") {
            Some(Value::String(s)) => {
                messages.push(json!({"role": role, "content": s}));
                continue;
            }
            Some(Value::Array(blocks)) => blocks,
            _ => return Err("a message `content` must be a string or an array".to_owned()),
        };
        let mut texts: Vec<&str> = Vec::new();
        let mut parts: Vec<Value> = Vec::new();
        let mut has_image = false;
        let mut calls = Vec::new();
        for b in blocks {
            match str_of(b, "type") {
                Some("text") => {
                    let t = str_of(b, "text").unwrap_or("");
                    texts.push(t);
                    parts.push(json!({"type": "text", "text": t}));
                }
                Some("image") => {
                    has_image = true;
                    parts.push(anthropic_image(b)?);
                }
                Some("tool_use") => {
                    let input = b.get("input").cloned().unwrap_or(json!({}));
                    calls.push(
                        json!({"id": str_of(b, "id").unwrap_or(""), "type": "function",
                        "function": {"name": str_of(b, "name").unwrap_or(""),
                                     "arguments": input.to_string()}}),
                    );
                }
                Some("tool_result") => {
                    let text = b.get("content").map(|c| joined_text(c, "\n\n"));
                    messages.push(json!({"role": "tool",
                        "tool_call_id": str_of(b, "tool_use_id").unwrap_or(""),
                        "content": text.unwrap_or_default()}));
                }
                _ => {}
            }
        }
        let content = if has_image {
            Value::Array(parts)
        } else if texts.is_empty() {
            Value::Null
        } else {
            Value::String(texts.join("\n\n"))
        };
        if role == "assistant" && !calls.is_empty() {
            messages.push(json!({"role": role, "content": content, "tool_calls": calls}));
        } else if !content.is_null() {
            messages.push(json!({"role": role, "content": content}));
        }
    }

    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }
    out.insert("messages".into(), Value::Array(messages));
    for key in ["max_tokens", "temperature", "top_p"] {
        if let Some(v) = body.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(s) = body.get("stop_sequences").filter(|v| v.is_array()) {
        out.insert("stop".into(), s.clone());
    }
    if let Some(s) = body.get("stream").filter(|v| v.is_boolean()) {
        out.insert("stream".into(), s.clone());
        if s == &Value::Bool(true) {
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let mut list = Vec::new();
        for t in tools {
            if let Some(kind) = str_of(t, "type").filter(|k| *k != "custom") {
                return Err(format!("the tool type {kind} has no OpenAI counterpart"));
            }
            let name = str_of(t, "name").ok_or("a tool has no name")?;
            let mut function = json!({"name": name,
                "parameters": t.get("input_schema").cloned().unwrap_or(json!({"type": "object"}))});
            if let (Some(d), Some(obj)) = (t.get("description"), function.as_object_mut()) {
                obj.insert("description".into(), d.clone());
            }
            list.push(json!({"type": "function", "function": function}));
        }
        out.insert("tools".into(), Value::Array(list));
    }
    if let Some(c) = body.get("tool_choice") {
        let mapped = match str_of(c, "type") {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function",
                "function": {"name": str_of(c, "name").ok_or("tool_choice names no tool")?}}),
            _ => return Err("tool_choice has no OpenAI counterpart".to_owned()),
        };
        out.insert("tool_choice".into(), mapped);
        if c.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
            out.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    if let Some(u) = body.get("metadata").and_then(|m| str_of(m, "user_id")) {
        out.insert("user".into(), json!(u));
    }
    Ok(out)
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        _ => "end_turn",
    }
}

/// OpenAI usage from Anthropic usage (cached input tokens counted in the prompt).
fn openai_usage(usage: Option<&Value>) -> Value {
    let cache_read = num_of(usage, "cache_read_input_tokens");
    let prompt = num_of(usage, "input_tokens")
        .saturating_add(num_of(usage, "cache_creation_input_tokens"))
        .saturating_add(cache_read);
    let completion = num_of(usage, "output_tokens");
    let mut u = json!({"prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion)});
    if cache_read > 0
        && let Some(obj) = u.as_object_mut()
    {
        obj.insert(
            "prompt_tokens_details".into(),
            json!({"cached_tokens": cache_read}),
        );
    }
    u
}

/// Anthropic usage from OpenAI usage (cached prompt tokens as cache reads).
fn anthropic_usage(usage: Option<&Value>) -> Value {
    let cached = usage
        .and_then(|u| u.pointer("/prompt_tokens_details/cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let prompt = num_of(usage, "prompt_tokens");
    let mut u = json!({"input_tokens": prompt.saturating_sub(cached),
        "output_tokens": num_of(usage, "completion_tokens")});
    if cached > 0
        && let Some(obj) = u.as_object_mut()
    {
        obj.insert("cache_read_input_tokens".into(), json!(cached));
    }
    u
}

/// Tool-call arguments (a JSON string) as an Anthropic `input`.
fn input_of(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Translates a complete response body `from` the provider's protocol `to` the agent's.
pub fn response(from: Protocol, to: Protocol, body: &Value) -> Value {
    match (from, to) {
        (Protocol::Anthropic, Protocol::OpenAi) => {
            let mut texts = Vec::new();
            let mut calls = Vec::new();
            for b in body
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match str_of(b, "type") {
                    Some("text") => texts.push(str_of(b, "text").unwrap_or("")),
                    Some("tool_use") => calls.push(json!({"id": str_of(b, "id").unwrap_or(""),
                        "type": "function", "function": {"name": str_of(b, "name").unwrap_or(""),
                        "arguments": b.get("input").cloned().unwrap_or(json!({})).to_string()}})),
                    _ => {}
                }
            }
            let mut message = json!({"role": "assistant",
                "content": if texts.is_empty() { Value::Null } else { json!(texts.concat()) }});
            if !calls.is_empty()
                && let Some(obj) = message.as_object_mut()
            {
                obj.insert("tool_calls".into(), Value::Array(calls));
            }
            json!({"id": body.get("id").cloned().unwrap_or(json!("")),
                "object": "chat.completion", "created": 0,
                "model": body.get("model").cloned().unwrap_or(json!("")),
                "choices": [{"index": 0, "message": message,
                    "finish_reason": str_of(body, "stop_reason").map(finish_reason)}],
                "usage": openai_usage(body.get("usage"))})
        }
        (Protocol::OpenAi, Protocol::Anthropic) => {
            let choice = body
                .get("choices")
                .and_then(Value::as_array)
                .and_then(|c| c.first());
            let message = choice.and_then(|c| c.get("message"));
            let mut content = Vec::new();
            if let Some(t) = message
                .and_then(|m| m.get("content"))
                .map(|c| joined_text(c, ""))
                .filter(|t| !t.is_empty())
            {
                content.push(json!({"type": "text", "text": t}));
            }
            for call in message
                .and_then(|m| m.get("tool_calls"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let f = call.get("function");
                content.push(
                    json!({"type": "tool_use", "id": str_of(call, "id").unwrap_or(""),
                    "name": f.and_then(|f| str_of(f, "name")).unwrap_or(""),
                    "input": input_of(f.and_then(|f| str_of(f, "arguments")).unwrap_or(""))}),
                );
            }
            json!({"id": body.get("id").cloned().unwrap_or(json!("")), "type": "message",
                "role": "assistant", "model": body.get("model").cloned().unwrap_or(json!("")),
                "content": content,
                "stop_reason": choice.and_then(|c| str_of(c, "finish_reason")).map(stop_reason),
                "stop_sequence": null, "usage": anthropic_usage(body.get("usage"))})
        }
        _ => body.clone(),
    }
}

/// Re-shapes a provider's error body (HTTP `status`) `from` its protocol `to` the agent's.
pub fn error(from: Protocol, to: Protocol, status: u16, body: &Value) -> Value {
    if from == to {
        return body.clone();
    }
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .or_else(|| str_of(body, "message"))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("the provider answered HTTP {status}"));
    let code = body
        .pointer("/error/code")
        .and_then(Value::as_str)
        .or_else(|| body.pointer("/error/type").and_then(Value::as_str))
        .unwrap_or("provider_error");
    to.error_body(status, code, &message)
}

/// Translates a provider's stream, event by event, into the agent's protocol.
#[derive(Debug)]
pub struct StreamTranslator {
    from: Protocol,
    to: Protocol,
    model: String,
    id: String,
    /// A first event has been sent (OpenAI: the role chunk; Anthropic: `message_start`).
    started: bool,
    /// The end has been sent (`[DONE]` or `message_stop`).
    done: bool,
    /// Anthropic → OpenAI: Anthropic block index → OpenAI tool-call index.
    tool_index: std::collections::BTreeMap<u64, u64>,
    /// OpenAI → Anthropic: OpenAI tool-call index → Anthropic block index.
    block_index: std::collections::BTreeMap<u64, u64>,
    /// The next tool-call index (to OpenAI) or block index (to Anthropic).
    next: u64,
    /// To Anthropic: the open block (its index, whether it is text).
    open: Option<(u64, bool)>,
    /// To Anthropic: the mapped stop reason.
    stop: Option<&'static str>,
    /// The usage so far, in the provider's shape.
    usage: Option<Value>,
}

fn data_event(v: &Value) -> SseEvent {
    SseEvent {
        event: None,
        data: v.to_string(),
    }
}

fn named_event(v: &Value) -> SseEvent {
    SseEvent {
        event: str_of(v, "type").map(str::to_owned),
        data: v.to_string(),
    }
}

impl StreamTranslator {
    /// A translator of a stream `from` the provider's protocol `to` the agent's; `model` is
    /// the name the agent's events carry.
    pub fn new(from: Protocol, to: Protocol, model: &str) -> StreamTranslator {
        StreamTranslator {
            from,
            to,
            model: model.to_owned(),
            id: String::new(),
            started: false,
            done: false,
            tool_index: std::collections::BTreeMap::new(),
            block_index: std::collections::BTreeMap::new(),
            next: 0,
            open: None,
            stop: None,
            usage: None,
        }
    }

    /// The agent's events for one provider event.
    pub fn event(&mut self, e: &SseEvent) -> Vec<SseEvent> {
        match (self.from, self.to) {
            (Protocol::Anthropic, Protocol::OpenAi) => self.anthropic_event(e),
            (Protocol::OpenAi, Protocol::Anthropic) => self.openai_event(e),
            _ => vec![e.clone()],
        }
    }

    /// What is left to send when the provider's stream ends. A stream that ended without
    /// its end marker gets one only when it said why it stopped (an OpenAI `finish_reason`);
    /// otherwise the truncation stays visible to the agent.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        if self.from == Protocol::OpenAi
            && self.to == Protocol::Anthropic
            && !self.done
            && self.stop.is_some()
        {
            return self.close_anthropic();
        }
        Vec::new()
    }

    fn chunk(&self, choices: Value) -> SseEvent {
        data_event(
            &json!({"id": self.id, "object": "chat.completion.chunk", "created": 0,
            "model": self.model, "choices": choices}),
        )
    }

    fn delta(&self, delta: Value, finish: Option<&str>) -> SseEvent {
        self.chunk(json!([{"index": 0, "delta": delta, "finish_reason": finish}]))
    }

    fn anthropic_event(&mut self, e: &SseEvent) -> Vec<SseEvent> {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match str_of(&v, "type") {
            Some("message_start") => {
                self.id = v
                    .pointer("/message/id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                self.usage = v.pointer("/message/usage").cloned();
                self.started = true;
                out.push(self.delta(json!({"role": "assistant", "content": ""}), None));
            }
            Some("content_block_start") => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match str_of(block, "type") {
                    Some("text") => {
                        if let Some(t) = str_of(block, "text").filter(|t| !t.is_empty()) {
                            out.push(self.delta(json!({"content": t}), None));
                        }
                    }
                    Some("tool_use") => {
                        let n = self.next;
                        self.next = n.saturating_add(1);
                        self.tool_index.insert(index, n);
                        let input = block
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()));
                        let arguments = input.map(Value::to_string).unwrap_or_default();
                        out.push(self.delta(
                            json!({"tool_calls": [{"index": n, "id": str_of(block, "id").unwrap_or(""),
                                "type": "function", "function": {"name": str_of(block, "name").unwrap_or(""),
                                "arguments": arguments}}]}),
                            None,
                        ));
                    }
                    _ => {}
                }
            }
            Some("content_block_delta") => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match str_of(delta, "type") {
                    Some("text_delta") => {
                        if let Some(t) = str_of(delta, "text") {
                            out.push(self.delta(json!({"content": t}), None));
                        }
                    }
                    Some("input_json_delta") => {
                        if let (Some(p), Some(n)) =
                            (str_of(delta, "partial_json"), self.tool_index.get(&index))
                        {
                            out.push(self.delta(
                                json!({"tool_calls": [{"index": n, "function": {"arguments": p}}]}),
                                None,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                if let Some(u) = v.get("usage").and_then(Value::as_object) {
                    let merged = self.usage.get_or_insert_with(|| json!({}));
                    if let Some(m) = merged.as_object_mut() {
                        for (k, val) in u {
                            m.insert(k.clone(), val.clone());
                        }
                    }
                }
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.push(self.delta(json!({}), Some(finish_reason(r))));
                }
            }
            Some("message_stop") => {
                if let Some(u) = self.usage.as_ref() {
                    out.push(data_event(
                        &json!({"id": self.id, "object": "chat.completion.chunk",
                        "created": 0, "model": self.model, "choices": [],
                        "usage": openai_usage(Some(u))}),
                    ));
                }
                self.done = true;
                out.push(SseEvent {
                    event: None,
                    data: "[DONE]".to_owned(),
                });
            }
            Some("error") => {
                let code = v
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                let message = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("the provider's stream failed");
                out.push(data_event(&Protocol::OpenAi.error_body(500, code, message)));
            }
            _ => {}
        }
        out
    }

    fn start_anthropic(&mut self, out: &mut Vec<SseEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(named_event(
            &json!({"type": "message_start", "message": {"id": self.id,
            "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ));
    }

    fn close_block(&mut self, out: &mut Vec<SseEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(named_event(
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn open_block(&mut self, block: Value, text: bool, out: &mut Vec<SseEvent>) -> u64 {
        self.close_block(out);
        let index = self.next;
        self.next = index.saturating_add(1);
        self.open = Some((index, text));
        out.push(named_event(
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn close_anthropic(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.start_anthropic(&mut out);
        self.close_block(&mut out);
        let usage = anthropic_usage(self.usage.as_ref());
        out.push(named_event(&json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null},
            "usage": usage})));
        out.push(named_event(&json!({"type": "message_stop"})));
        self.done = true;
        out
    }

    fn openai_event(&mut self, e: &SseEvent) -> Vec<SseEvent> {
        if self.done {
            return Vec::new();
        }
        if e.data.trim() == "[DONE]" {
            return self.close_anthropic();
        }
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(err) = v.get("error") {
            let message = str_of(err, "message").unwrap_or("the provider's stream failed");
            out.push(named_event(&Protocol::Anthropic.error_body(
                500,
                "api_error",
                message,
            )));
            return out;
        }
        if self.id.is_empty()
            && let Some(id) = str_of(&v, "id")
        {
            self.id = id.to_owned();
        }
        self.start_anthropic(&mut out);
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        for choice in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        {
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            if let Some(t) = str_of(delta, "content").filter(|t| !t.is_empty()) {
                let index = match self.open {
                    Some((i, true)) => i,
                    _ => self.open_block(json!({"type": "text", "text": ""}), true, &mut out),
                };
                out.push(named_event(
                    &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": t}}),
                ));
            }
            for tc in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let n = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
                let index = match self.block_index.get(&n) {
                    Some(i) => *i,
                    None => {
                        let block = json!({"type": "tool_use", "id": str_of(tc, "id").unwrap_or(""),
                            "name": tc.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
                            "input": {}});
                        let i = self.open_block(block, false, &mut out);
                        self.block_index.insert(n, i);
                        i
                    }
                };
                if let Some(a) = tc
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .filter(|a| !a.is_empty())
                {
                    out.push(named_event(
                        &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": a}}),
                    ));
                }
            }
            if let Some(r) = str_of(choice, "finish_reason") {
                self.stop = Some(stop_reason(r));
                self.close_block(&mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
