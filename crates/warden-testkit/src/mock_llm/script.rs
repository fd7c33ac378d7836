//! Reading a request: what it asks for, its token count and the directives of its last message.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::Wire;

/// What the request asks for, read from its body.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) model: String,
    pub(super) stream: bool,
    pub(super) include_usage: bool,
    pub(super) prompt_tokens: u64,
    pub(super) last_text: String,
    pub(super) script: Script,
}

impl Parsed {
    pub(super) fn from_body(wire: Wire, body: &Value) -> Result<Parsed, String> {
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

/// A tool of the request whose name the provider would refuse: as the real APIs do, a
/// function name must match `^[a-zA-Z0-9_-]{1,64}$`.
#[derive(Debug, PartialEq)]
pub(super) struct InvalidToolName {
    /// The provider's message.
    pub(super) message: String,
    /// OpenAI's `param` (`tools[i].function.name`).
    pub(super) param: String,
    /// OpenAI's `code`.
    pub(super) code: &'static str,
}

/// The first tool of `body.tools` whose name the provider refuses, in its words: OpenAI's
/// `tools[i].function.name`, Anthropic's `tools[i].name`.
pub(super) fn invalid_tool_name(wire: Wire, body: &Value) -> Option<InvalidToolName> {
    let tools = body.get("tools")?.as_array()?;
    tools.iter().enumerate().find_map(|(i, tool)| {
        let name = match wire {
            Wire::OpenAi => tool.pointer("/function/name"),
            Wire::Anthropic => tool.get("name"),
        }?
        .as_str()
        .unwrap_or_default();
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid_chars && (1..=64).contains(&name.len()) {
            return None;
        }
        let param = format!("tools[{i}].function.name");
        Some(match wire {
            Wire::OpenAi if valid_chars && !name.is_empty() => InvalidToolName {
                message: format!(
                    "Invalid '{param}': string too long. Expected a string with maximum length 64, but got a string with length {} instead.",
                    name.len()
                ),
                param,
                code: "string_above_max_length",
            },
            Wire::OpenAi => InvalidToolName {
                message: format!(
                    "Invalid '{param}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
                ),
                param,
                code: "invalid_value",
            },
            Wire::Anthropic => InvalidToolName {
                message: format!(
                    "tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                ),
                param,
                code: "invalid_value",
            },
        })
    })
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

pub(super) fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// The directives found in the last message.
#[derive(Debug, Default)]
pub(super) struct Script {
    pub(super) tools: Vec<(String, Map<String, Value>)>,
    pub(super) error: Option<StatusCode>,
    pub(super) retry_after: Option<u64>,
    pub(super) slow_ms: Option<u64>,
    pub(super) stall_ms: Option<u64>,
    pub(super) no_usage: bool,
    pub(super) drop_mid_stream: bool,
    pub(super) echo_key: bool,
    pub(super) long: Option<u64>,
}

impl Script {
    pub(super) fn parse(text: &str) -> Script {
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
            } else if let Some(n) = number_arg(rest, "long:") {
                script.long = Some(n.min(10 << 20));
            } else if rest.starts_with("echo-key]") {
                script.echo_key = true;
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
