use proptest::prelude::*;
use serde_json::json;

use super::*;

/// An OpenAI stream with text, a tool call in pieces and a usage chunk (shared with the
/// translation tests).
pub(crate) const OPENAI: &str = "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"fs.read\",\"arguments\":\"\"}}]}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"path\\\":\"}}]}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"/a\\\"}\"}}]}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n\
data: [DONE]\n\n";

/// An Anthropic stream with text, a ping and a tool call in pieces (shared with the
/// translation tests).
pub(crate) const ANTHROPIC: &str = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\r\n\r\n\
event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n\
event: ping\r\ndata: {\"type\":\"ping\"}\r\n\r\n\
event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Sure\"}}\r\n\r\n\
event: content_block_stop\r\ndata: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n\
event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"pay.refund\",\"input\":{}}}\r\n\r\n\
event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"order\\\": \"}}\r\n\r\n\
event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"7}\"}}\r\n\r\n\
event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":6}}\r\n\r\n\
event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";

fn assemble(protocol: Protocol, bytes: &[u8], chunk: usize) -> (Completion, bool, usize) {
    let mut p = SseParser::new(1 << 20);
    let mut a = Assembler::new(protocol);
    let mut usage_only = 0;
    for part in bytes.chunks(chunk.max(1)) {
        for e in p.push(part).unwrap() {
            if a.feed(&e) {
                usage_only += 1;
            }
        }
    }
    let complete = a.complete;
    (a.finish(), complete, usage_only)
}

#[test]
fn assembles_an_openai_stream() {
    let (c, complete, usage_only) = assemble(Protocol::OpenAi, OPENAI.as_bytes(), 7);
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
    let (c, complete, _) = assemble(Protocol::Anthropic, ANTHROPIC.as_bytes(), 5);
    assert!(complete);
    assert_eq!(c.text, "Sure");
    assert_eq!(c.intents[0].tool, "pay.refund");
    assert_eq!(c.intents[0].arguments, json!({"order": 7}));
    assert_eq!(
        c.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((11, 6))
    );
}

#[test]
fn an_oversized_event_is_an_error_not_a_crash() {
    let mut p = SseParser::new(16);
    assert!(p.push(&[b'x'; 64]).is_err());
    // It recovers for what follows.
    assert_eq!(p.push(b"data: 1\n\n").unwrap().len(), 1);
}

proptest! {
    /// However the bytes are split, the same completion comes out.
    #[test]
    fn chunking_never_changes_the_result(chunk in 1usize..64) {
        let (whole, _, _) = assemble(Protocol::OpenAi, OPENAI.as_bytes(), OPENAI.len());
        let (split, complete, _) = assemble(Protocol::OpenAi, OPENAI.as_bytes(), chunk);
        prop_assert!(complete);
        prop_assert_eq!(whole, split);
        let (whole, _, _) = assemble(Protocol::Anthropic, ANTHROPIC.as_bytes(), ANTHROPIC.len());
        let (split, _, _) = assemble(Protocol::Anthropic, ANTHROPIC.as_bytes(), chunk);
        prop_assert_eq!(whole, split);
    }

    /// Arbitrary bytes never panic the parser or the assembler.
    #[test]
    fn garbage_is_harmless(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut p = SseParser::new(256);
        let mut a = Assembler::new(Protocol::OpenAi);
        if let Ok(events) = p.push(&bytes) {
            for e in events { a.feed(&e); }
        }
        let _ = a.finish();
    }
}
