//! A complete (non-streamed) response: its text, usage and proposed tool calls.

use serde::Serialize;
use serde_json::Value;

use crate::Protocol;

/// Tokens of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Usage {
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
    /// Whether these are estimates (the provider reported none).
    pub estimated: bool,
}

impl Usage {
    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// A tool call the model proposed: an intent the agent may then attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intent {
    /// The provider's id of the call.
    pub id: Option<String>,
    /// The tool, as the model named it.
    pub tool: String,
    /// The arguments (parsed from OpenAI's JSON string when they parse; the string otherwise).
    pub arguments: Value,
}

/// What a response says.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Completion {
    /// The text the model wrote.
    pub text: String,
    /// Tool calls it proposed.
    pub intents: Vec<Intent>,
    /// Usage, when the provider reported it.
    pub usage: Option<Usage>,
    /// Why it stopped (`stop`, `tool_calls`, `end_turn`, `tool_use`, ...).
    pub finish_reason: Option<String>,
}

/// A rough token count for text without reported usage: one token per four bytes, rounded up.
pub fn estimate_tokens(text: &str) -> u64 {
    u64::try_from(text.len().div_ceil(4)).unwrap_or(u64::MAX)
}

fn num(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

/// Usage in a response's (or a stream event's) `usage` object.
pub(crate) fn usage_of(protocol: Protocol, usage: &Value) -> Option<Usage> {
    let obj = usage.as_object()?;
    Some(match protocol {
        Protocol::OpenAi => Usage {
            input_tokens: num(obj.get("prompt_tokens")),
            output_tokens: num(obj.get("completion_tokens")),
            estimated: false,
        },
        Protocol::Anthropic => Usage {
            input_tokens: num(obj.get("input_tokens"))
                .saturating_add(num(obj.get("cache_creation_input_tokens")))
                .saturating_add(num(obj.get("cache_read_input_tokens"))),
            output_tokens: num(obj.get("output_tokens")),
            estimated: false,
        },
    })
}

/// Tool-call arguments: OpenAI sends a JSON string; keep the parsed value when it parses.
pub(crate) fn arguments_of(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Reads a complete response body.
pub fn read_response(protocol: Protocol, body: &Value) -> Completion {
    let mut c = Completion {
        usage: body.get("usage").and_then(|u| usage_of(protocol, u)),
        ..Completion::default()
    };
    match protocol {
        Protocol::OpenAi => {
            for choice in body
                .get("choices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if c.finish_reason.is_none() {
                    c.finish_reason = choice
                        .get("finish_reason")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                let Some(message) = choice.get("message") else {
                    continue;
                };
                if let Some(t) = message.get("content").and_then(Value::as_str) {
                    c.text.push_str(t);
                }
                for call in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let f = call.get("function");
                    c.intents.push(Intent {
                        id: call.get("id").and_then(Value::as_str).map(str::to_owned),
                        tool: f
                            .and_then(|f| f.get("name"))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        arguments: arguments_of(
                            f.and_then(|f| f.get("arguments"))
                                .and_then(Value::as_str)
                                .unwrap_or("{}"),
                        ),
                    });
                }
            }
        }
        Protocol::Anthropic => {
            c.finish_reason = body
                .get("stop_reason")
                .and_then(Value::as_str)
                .map(str::to_owned);
            for block in body
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str) {
                            c.text.push_str(t);
                        }
                    }
                    Some("tool_use") => c.intents.push(Intent {
                        id: block.get("id").and_then(Value::as_str).map(str::to_owned),
                        tool: block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        arguments: block.get("input").cloned().unwrap_or(Value::Null),
                    }),
                    _ => {}
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_openai_responses() {
        let r = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me look.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "fs.read_file", "arguments": "{\"path\":\"/a\"}"}},
                           {"id": "call_2", "type": "function", "function": {"name": "x", "arguments": "not json"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}});
        let c = read_response(Protocol::OpenAi, &r);
        assert_eq!(c.text, "Let me look.");
        assert_eq!(c.intents[0].tool, "fs.read_file");
        assert_eq!(c.intents[0].arguments, json!({"path": "/a"}));
        assert_eq!(c.intents[1].arguments, json!("not json"));
        assert_eq!(
            c.usage,
            Some(Usage {
                input_tokens: 12,
                output_tokens: 5,
                estimated: false
            })
        );
        assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn reads_anthropic_responses() {
        let r = json!({"type": "message", "stop_reason": "tool_use", "content": [
            {"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "toolu_1", "name": "pay.refund", "input": {"order": 7}}],
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 3}});
        let c = read_response(Protocol::Anthropic, &r);
        assert_eq!(c.text, "Checking.");
        assert_eq!(c.intents[0].tool, "pay.refund");
        assert_eq!(c.intents[0].arguments, json!({"order": 7}));
        assert_eq!(c.usage.unwrap().total(), 17);
        assert_eq!(read_response(Protocol::Anthropic, &json!({})).usage, None);
        assert_eq!(estimate_tokens("abcde"), 2);
    }
}
