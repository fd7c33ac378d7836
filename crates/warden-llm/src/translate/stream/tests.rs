//! Stream translation: each protocol's fixture streams, translated and assembled, and edge
//! cases.

use super::*;
use crate::stream::tests::{ANTHROPIC, OPENAI, events};
use crate::{Assembler, Completion, Protocol, SseEvent};

fn translate(from: Protocol, to: Protocol, raw: &str) -> Vec<SseEvent> {
    let mut t = StreamTranslator::new(from, to, "alias");
    let mut out: Vec<SseEvent> = events(raw).iter().flat_map(|e| t.event(e)).collect();
    out.extend(t.finish());
    out
}

fn assemble(protocol: Protocol, events: &[SseEvent]) -> (Completion, bool) {
    let mut a = Assembler::new(protocol);
    for e in events {
        a.feed(e);
    }
    let complete = a.complete;
    (a.finish(), complete)
}

/// The translated events, serialized and parsed again: what the agent's SDK would see.
fn reparsed(events: &[SseEvent]) -> Vec<SseEvent> {
    let mut wire = String::new();
    for e in events {
        if let Some(name) = &e.event {
            wire.push_str(&format!("event: {name}\n"));
        }
        wire.push_str(&format!("data: {}\n\n", e.data));
    }
    self::events(&wire)
}

#[test]
fn anthropic_stream_becomes_openai() {
    let out = translate(Protocol::Anthropic, Protocol::OpenAi, ANTHROPIC);
    assert_eq!(reparsed(&out), out);
    let (source, _) = assemble(Protocol::Anthropic, &events(ANTHROPIC));
    let (c, complete) = assemble(Protocol::OpenAi, &out);
    assert!(complete);
    assert_eq!(c.text, source.text);
    assert_eq!(c.intents, source.intents);
    assert_eq!(c.usage, source.usage);
    assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
    // Golden details: the role chunk first, OpenAI tool indexes from 0, usage then [DONE].
    let first: Value = serde_json::from_str(&out[0].data).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "alias");
    assert_eq!(first["id"], "msg_1");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let tool: Value = out
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .find(|v| v["choices"][0]["delta"]["tool_calls"][0]["id"] == "toolu_1")
        .unwrap();
    assert_eq!(tool["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
    assert_eq!(
        tool["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        ""
    );
    let n = out.len();
    assert_eq!(out[n - 1].data, "[DONE]");
    let usage: Value = serde_json::from_str(&out[n - 2].data).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17})
    );
    assert!(out.iter().all(|e| e.event.is_none()));
}

#[test]
fn openai_stream_becomes_anthropic() {
    let out = translate(Protocol::OpenAi, Protocol::Anthropic, OPENAI);
    assert_eq!(reparsed(&out), out);
    let (source, _) = assemble(Protocol::OpenAi, &events(OPENAI));
    let (c, complete) = assemble(Protocol::Anthropic, &out);
    assert!(complete);
    assert_eq!(c.text, source.text);
    assert_eq!(c.intents, source.intents);
    assert_eq!(c.finish_reason.as_deref(), Some("tool_use"));
    // Input tokens arrive only at the end of an OpenAI stream: message_start says 0, and
    // message_delta carries both counts.
    assert_eq!(
        c.usage.unwrap().output_tokens,
        source.usage.unwrap().output_tokens
    );
    let names: Vec<&str> = out.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let parsed: Vec<Value> = out
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(parsed[0]["message"]["usage"]["input_tokens"], 0);
    assert_eq!(parsed[0]["message"]["model"], "alias");
    assert_eq!(parsed[0]["message"]["id"], "c1");
    assert_eq!(parsed[1]["index"], 0);
    assert_eq!(parsed[1]["content_block"]["type"], "text");
    assert_eq!(
        parsed[5]["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "fs.read", "input": {}})
    );
    assert_eq!(parsed[5]["index"], 1);
    assert_eq!(parsed[6]["delta"]["type"], "input_json_delta");
    assert_eq!(
        parsed[9],
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 9, "output_tokens": 4}})
    );
    let u = source.usage.unwrap();
    assert_eq!(
        (
            parsed[9]["usage"]["input_tokens"].as_u64(),
            parsed[9]["usage"]["output_tokens"].as_u64()
        ),
        (Some(u.input_tokens), Some(u.output_tokens))
    );
}

#[test]
fn streams_round_trip() {
    let there = translate(Protocol::Anthropic, Protocol::OpenAi, ANTHROPIC);
    let mut t = StreamTranslator::new(Protocol::OpenAi, Protocol::Anthropic, "alias");
    let mut back: Vec<SseEvent> = there.iter().flat_map(|e| t.event(e)).collect();
    back.extend(t.finish());
    let (source, _) = assemble(Protocol::Anthropic, &events(ANTHROPIC));
    let (c, complete) = assemble(Protocol::Anthropic, &back);
    assert!(complete);
    assert_eq!(c.text, source.text);
    assert_eq!(c.intents, source.intents);
    assert_eq!(c.finish_reason, source.finish_reason);
}

#[test]
fn stream_edge_cases() {
    // A tool call first, then no [DONE]: finish() closes the message since it said why it
    // stopped.
    let raw = "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n\
data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n";
    let out = translate(Protocol::OpenAi, Protocol::Anthropic, raw);
    let (c, complete) = assemble(Protocol::Anthropic, &out);
    assert!(complete);
    assert_eq!(c.intents[0].tool, "f");
    assert_eq!(c.finish_reason.as_deref(), Some("max_tokens"));
    let start: Value = serde_json::from_str(&out[1].data).unwrap();
    assert_eq!(start["index"], 0);
    // A truncated stream stays truncated.
    let raw =
        "data: {\"id\":\"c3\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let (c, complete) = assemble(
        Protocol::Anthropic,
        &translate(Protocol::OpenAi, Protocol::Anthropic, raw),
    );
    assert!(!complete);
    assert_eq!(c.text, "Hi");
    let cut = ANTHROPIC.split("event: message_delta").next().unwrap();
    let (_, complete) = assemble(
        Protocol::OpenAi,
        &translate(Protocol::Anthropic, Protocol::OpenAi, cut),
    );
    assert!(!complete);
    // Provider errors mid-stream take the agent's shape.
    let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let out = translate(Protocol::Anthropic, Protocol::OpenAi, err);
    let v: Value = serde_json::from_str(&out[0].data).unwrap();
    assert_eq!(v["error"]["message"], "Overloaded");
    let err = "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n";
    let out = translate(Protocol::OpenAi, Protocol::Anthropic, err);
    assert_eq!(out[0].event.as_deref(), Some("error"));
    let v: Value = serde_json::from_str(&out[0].data).unwrap();
    assert_eq!(v["error"]["message"], "boom");
    // Garbage is ignored.
    let mut t = StreamTranslator::new(Protocol::OpenAi, Protocol::Anthropic, "m");
    assert!(
        t.event(&SseEvent {
            event: None,
            data: "{oops".into()
        })
        .is_empty()
    );
}
