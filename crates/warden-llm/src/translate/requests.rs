//! Requests, agent → provider: OpenAI chat completions to Anthropic messages and back.

use serde_json::{Map, Value, json};

use super::{joined_text, str_of};
use crate::Protocol;

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
