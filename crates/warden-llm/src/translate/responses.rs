//! Complete response and error bodies, provider → agent.

use serde_json::{Value, json};

use super::{anthropic_usage, finish_reason, joined_text, openai_usage, stop_reason, str_of};
use crate::Protocol;

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
