//! Streams, provider → agent: SSE events translated one by one.

use serde_json::{Value, json};

use super::{anthropic_usage, finish_reason, openai_usage, stop_reason, str_of};
use crate::{Protocol, SseEvent};

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
