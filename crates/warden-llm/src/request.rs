//! Reading a request, and the few edits the proxy makes to it.

use serde_json::{Map, Value, json};

use crate::Protocol;

/// What the proxy reads from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The model the agent asked for (a charter alias).
    pub model: String,
    /// Whether the agent asked for a stream.
    pub stream: bool,
    /// Every text of the prompt (system and messages), joined by newlines: for token
    /// estimates and search.
    pub prompt_text: String,
    /// The text of the last user message.
    pub last_user: String,
}

/// Every text in a message `content` (a string, or a list of parts/blocks with `text`).
fn content_text(content: &Value, out: &mut String) {
    match content {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(parts) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    out.push_str(t);
                    out.push('\n');
                } else if let Some(c) = p.get("content") {
                    // Anthropic tool_result blocks carry their own content.
                    content_text(c, out);
                }
            }
        }
        _ => {}
    }
}

/// Reads a request body. `Err` is a sentence for a provider-shaped 400.
pub fn inspect(protocol: Protocol, body: &Value) -> Result<Inspected, String> {
    let obj = body
        .as_object()
        .ok_or_else(|| "the request body must be a JSON object".to_owned())?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| "`model` is required and must be a string".to_owned())?
        .to_owned();
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| "`messages` is required and must be an array".to_owned())?;
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`stream` must be a boolean".to_owned()),
    };
    let mut prompt_text = String::new();
    if protocol == Protocol::Anthropic
        && let Some(system) = obj.get("system")
    {
        content_text(system, &mut prompt_text);
    }
    let mut last_user = String::new();
    for m in messages {
        let Some(m) = m.as_object() else {
            return Err("every message must be an object".to_owned());
        };
        if let Some(c) = m.get("content") {
            content_text(c, &mut prompt_text);
            if m.get("role").and_then(Value::as_str) == Some("user") {
                last_user.clear();
                content_text(c, &mut last_user);
            }
        }
    }
    Ok(Inspected {
        model,
        stream,
        prompt_text,
        last_user: last_user.trim_end().to_owned(),
    })
}

/// Edits a request for one provider route: the provider's model name; the charter's system
/// message in front of the agent's, when given; and, for an OpenAI stream, usage in the last
/// chunk. Returns whether usage was asked for on the agent's behalf (the proxy then keeps that
/// extra chunk from the agent). Every other field is left as it was.
pub fn prepare(
    protocol: Protocol,
    body: &mut Map<String, Value>,
    provider_model: &str,
    system: Option<&str>,
    stream: bool,
) -> bool {
    body.insert("model".to_owned(), Value::String(provider_model.to_owned()));
    if let Some(text) = system {
        match protocol {
            Protocol::OpenAi => {
                if let Some(Value::Array(messages)) = body.get_mut("messages") {
                    messages.insert(0, json!({ "role": "system", "content": text }));
                }
            }
            Protocol::Anthropic => {
                let merged = match body.remove("system") {
                    None | Some(Value::Null) => Value::String(text.to_owned()),
                    Some(Value::String(s)) => Value::String(format!("{text}\n\n{s}")),
                    Some(Value::Array(mut blocks)) => {
                        blocks.insert(0, json!({ "type": "text", "text": text }));
                        Value::Array(blocks)
                    }
                    Some(other) => other,
                };
                body.insert("system".to_owned(), merged);
            }
        }
    }
    if protocol == Protocol::OpenAi && stream {
        let asked = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
        if !asked {
            match body.get_mut("stream_options") {
                Some(Value::Object(o)) => {
                    o.insert("include_usage".to_owned(), Value::Bool(true));
                }
                _ => {
                    body.insert(
                        "stream_options".to_owned(),
                        json!({ "include_usage": true }),
                    );
                }
            }
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspects_both_shapes() {
        let o = json!({"model": "fast", "stream": true, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "what now?"}
        ], "x_unknown": 1});
        let i = inspect(Protocol::OpenAi, &o).unwrap();
        assert_eq!((i.model.as_str(), i.stream), ("fast", true));
        assert_eq!(i.last_user, "what now?");
        assert!(i.prompt_text.contains("be brief") && i.prompt_text.contains("hello"));
        let a = json!({"model": "m", "system": "sys", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "42"}]}
        ]});
        let i = inspect(Protocol::Anthropic, &a).unwrap();
        assert!(!i.stream);
        assert!(i.prompt_text.contains("sys") && i.prompt_text.contains("42"));
        for bad in [
            json!([]),
            json!({"messages": []}),
            json!({"model": "m"}),
            json!({"model": "m", "messages": [], "stream": "yes"}),
            json!({"model": 1, "messages": []}),
        ] {
            assert!(inspect(Protocol::OpenAi, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prepare_edits_only_what_it_must() {
        let mut o = json!({"model": "fast", "messages": [{"role": "user", "content": "x"}], "temperature": 0.2, "stream": true})
            .as_object().unwrap().clone();
        assert!(prepare(
            Protocol::OpenAi,
            &mut o,
            "gpt-x",
            Some("You are warden's agent."),
            true
        ));
        assert_eq!(o["model"], "gpt-x");
        assert_eq!(o["messages"][0]["role"], "system");
        assert_eq!(o["messages"][1]["content"], "x");
        assert_eq!(o["temperature"], 0.2);
        assert_eq!(o["stream_options"]["include_usage"], true);
        // Asked for by the agent: nothing to hide.
        let mut o2 =
            json!({"model": "m", "messages": [], "stream_options": {"include_usage": true}})
                .as_object()
                .unwrap()
                .clone();
        assert!(!prepare(Protocol::OpenAi, &mut o2, "p", None, true));

        let mut a =
            json!({"model": "m", "system": [{"type": "text", "text": "agent's"}], "messages": []})
                .as_object()
                .unwrap()
                .clone();
        assert!(!prepare(
            Protocol::Anthropic,
            &mut a,
            "claude-x",
            Some("charter"),
            true
        ));
        assert_eq!(a["system"][0]["text"], "charter");
        assert_eq!(a["system"][1]["text"], "agent's");
        let mut a2 = json!({"model": "m", "system": "agent's", "messages": []})
            .as_object()
            .unwrap()
            .clone();
        prepare(Protocol::Anthropic, &mut a2, "c", Some("charter"), false);
        assert_eq!(a2["system"], "charter\n\nagent's");
        assert!(a2.get("stream_options").is_none());
    }
}
