//! Server-sent event streams: the [`SseEvent`] vocabulary, and an assembler that rebuilds a
//! stream's text, tool calls and usage from its events as they pass through. Reading the events
//! out of the bytes is the model proxy's relay's job (with `sse-stream`).

use serde_json::Value;

use crate::Protocol;
use crate::response::{Completion, Intent, Usage, arguments_of, usage_of};

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: Option<String>,
    tool: String,
    arguments: String,
    input: Option<Value>,
}

/// Rebuilds a streamed completion from its events.
#[derive(Debug)]
pub struct Assembler {
    protocol: Protocol,
    text: String,
    calls: std::collections::BTreeMap<u64, PartialCall>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    /// Whether the stream ended properly (`[DONE]` or `message_stop`).
    pub complete: bool,
}

impl Assembler {
    /// An assembler for a stream in `protocol`.
    pub fn new(protocol: Protocol) -> Assembler {
        Assembler {
            protocol,
            text: String::new(),
            calls: std::collections::BTreeMap::new(),
            usage: None,
            finish_reason: None,
            complete: false,
        }
    }

    fn call(&mut self, index: u64) -> &mut PartialCall {
        self.calls.entry(index).or_default()
    }

    /// Takes in one event. Returns `true` for an OpenAI chunk that carries only usage (no
    /// choices): the proxy drops it when usage was asked for on the agent's behalf.
    pub fn feed(&mut self, event: &SseEvent) -> bool {
        if self.protocol == Protocol::OpenAi && event.data.trim() == "[DONE]" {
            self.complete = true;
            return false;
        }
        let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
            return false;
        };
        match self.protocol {
            Protocol::OpenAi => self.feed_openai(&v),
            Protocol::Anthropic => {
                self.feed_anthropic(&v);
                false
            }
        }
    }

    fn feed_openai(&mut self, v: &Value) -> bool {
        if let Some(u) = v.get("usage").filter(|u| !u.is_null())
            && let Some(u) = usage_of(Protocol::OpenAi, u)
        {
            self.usage = Some(u);
        }
        let choices = v.get("choices").and_then(Value::as_array);
        let usage_only = choices.is_some_and(Vec::is_empty) && self.usage.is_some();
        for choice in choices.into_iter().flatten() {
            if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(r.to_owned());
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                self.text.push_str(t);
            }
            for tc in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
                let call = self.call(index);
                if let Some(id) = tc.get("id").and_then(Value::as_str) {
                    call.id = Some(id.to_owned());
                }
                if let Some(f) = tc.get("function") {
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        call.tool.push_str(n);
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        call.arguments.push_str(a);
                    }
                }
            }
        }
        usage_only
    }

    fn feed_anthropic(&mut self, v: &Value) {
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(u) = v
                    .pointer("/message/usage")
                    .and_then(|u| usage_of(Protocol::Anthropic, u))
                {
                    self.usage = Some(u);
                }
            }
            Some("content_block_start") => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let Some(block) = v.get("content_block") else {
                    return;
                };
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let call = self.call(index);
                        call.id = block.get("id").and_then(Value::as_str).map(str::to_owned);
                        call.tool = block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        call.input = block
                            .get("input")
                            .cloned()
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()));
                    }
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str) {
                            self.text.push_str(t);
                        }
                    }
                    _ => {}
                }
            }
            Some("content_block_delta") => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let Some(delta) = v.get("delta") else { return };
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(t) = delta.get("text").and_then(Value::as_str) {
                            self.text.push_str(t);
                        }
                    }
                    Some("input_json_delta") => {
                        if let Some(p) = delta.get("partial_json").and_then(Value::as_str) {
                            self.call(index).arguments.push_str(p);
                        }
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish_reason = Some(r.to_owned());
                }
                if let Some(out) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    let mut u = self.usage.unwrap_or_default();
                    u.output_tokens = out;
                    // Input tokens here too when the stream reports them last (a translated
                    // OpenAI stream does; Anthropic's own may repeat them).
                    if let Some(late) = v
                        .get("usage")
                        .and_then(|x| usage_of(Protocol::Anthropic, x))
                        && late.input_tokens > 0
                    {
                        u.input_tokens = late.input_tokens;
                    }
                    self.usage = Some(u);
                }
            }
            Some("message_stop") => self.complete = true,
            _ => {}
        }
    }

    /// The completion so far.
    pub fn finish(self) -> Completion {
        let intents = self
            .calls
            .into_values()
            .map(|c| Intent {
                id: c.id,
                tool: c.tool,
                arguments: match c.input {
                    Some(input) if c.arguments.is_empty() => input,
                    _ if c.arguments.is_empty() => Value::Object(serde_json::Map::new()),
                    _ => arguments_of(&c.arguments),
                },
            })
            .collect();
        Completion {
            text: self.text,
            intents,
            usage: self.usage,
            finish_reason: self.finish_reason,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
