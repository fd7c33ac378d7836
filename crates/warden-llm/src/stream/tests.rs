use proptest::prelude::*;
use serde_json::json;

use super::*;

/// An OpenAI stream with text, a tool call in pieces and a usage chunk (shared with the
/// translation tests and the model proxy's relay tests).
pub(crate) const OPENAI: &str = include_str!("../../tests/fixtures/streams/openai.sse");

/// An Anthropic stream (CRLF line ends) with text, a ping and a tool call in pieces (shared
/// with the translation tests and the model proxy's relay tests).
pub(crate) const ANTHROPIC: &str = include_str!("../../tests/fixtures/streams/anthropic.sse");

/// The events of a whole stream: blank-line separated blocks of `event:` and `data:` lines
/// (LF or CRLF). Only the fixtures are read this way; the model proxy reads live streams,
/// chunk by chunk, with `sse-stream`.
pub(crate) fn events(raw: &str) -> Vec<SseEvent> {
    raw.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|block| {
            let mut event = SseEvent::default();
            let mut has_data = false;
            for line in block.lines() {
                let (field, value) = line
                    .split_once(':')
                    .map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
                match field {
                    "event" => event.event = Some(value.to_owned()),
                    "data" => {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(value);
                        has_data = true;
                    }
                    _ => {}
                }
            }
            (has_data || event.event.is_some()).then_some(event)
        })
        .collect()
}

fn assemble(protocol: Protocol, raw: &str) -> (Completion, bool, usize) {
    let mut a = Assembler::new(protocol);
    let mut usage_only = 0;
    for e in events(raw) {
        if a.feed(&e) {
            usage_only += 1;
        }
    }
    let complete = a.complete;
    (a.finish(), complete, usage_only)
}

#[test]
fn assembles_an_openai_stream() {
    let (c, complete, usage_only) = assemble(Protocol::OpenAi, OPENAI);
    assert!(complete);
    assert_eq!(usage_only, 1);
    assert_eq!(c.text, "Hello");
    assert_eq!(c.intents.len(), 1);
    assert_eq!(c.intents[0].tool, "fs.read");
    assert_eq!(c.intents[0].arguments, json!({"path": "/a"}));
    assert_eq!(c.usage.unwrap().total(), 13);
    assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn assembles_an_anthropic_stream() {
    let (c, complete, _) = assemble(Protocol::Anthropic, ANTHROPIC);
    assert!(complete);
    assert_eq!(c.text, "Sure");
    assert_eq!(c.intents[0].tool, "pay.refund");
    assert_eq!(c.intents[0].arguments, json!({"order": 7}));
    assert_eq!(
        c.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((11, 6))
    );
}

proptest! {
    /// Arbitrary event data never panics the assembler.
    #[test]
    fn garbage_is_harmless(
        data in prop::collection::vec(".{0,64}", 0..16),
        protocol in prop_oneof![Just(Protocol::OpenAi), Just(Protocol::Anthropic)],
    ) {
        let mut a = Assembler::new(protocol);
        for d in data {
            a.feed(&SseEvent { event: None, data: d });
        }
        let _ = a.finish();
    }
}
