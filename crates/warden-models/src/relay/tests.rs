use proptest::prelude::*;

use super::reader::ReaderStopped;
use super::*;

/// The stream fixtures warden-llm's assembler and translation tests use.
const OPENAI: &str = include_str!("../../../warden-llm/tests/fixtures/streams/openai.sse");
const ANTHROPIC: &str = include_str!("../../../warden-llm/tests/fixtures/streams/anthropic.sse");

/// The events of `raw` pushed through a reader in chunks of `chunk` bytes.
fn read_in_chunks(raw: &[u8], chunk: usize) -> Vec<SseEvent> {
    let mut reader = EventReader::new(1 << 20);
    raw.chunks(chunk.max(1))
        .flat_map(|part| reader.push(Bytes::copy_from_slice(part)).unwrap())
        .collect()
}

fn assemble(protocol: Protocol, events: &[SseEvent]) -> (warden_llm::Completion, bool) {
    let mut a = Assembler::new(protocol);
    for e in events {
        a.feed(e);
    }
    let complete = a.complete;
    (a.finish(), complete)
}

#[test]
fn the_reader_reads_both_providers_streams() {
    let openai = read_in_chunks(OPENAI.as_bytes(), OPENAI.len());
    assert_eq!(openai.len(), 9);
    assert_eq!(openai.last().unwrap().data, "[DONE]");
    let (completion, complete) = assemble(Protocol::OpenAi, &openai);
    assert!(complete);
    assert_eq!(completion.text, "Hello");
    let anthropic = read_in_chunks(ANTHROPIC.as_bytes(), ANTHROPIC.len());
    assert_eq!(anthropic.len(), 10);
    assert_eq!(anthropic[2].event.as_deref(), Some("ping"));
    let (completion, complete) = assemble(Protocol::Anthropic, &anthropic);
    assert!(complete);
    assert_eq!(completion.text, "Sure");
}

#[test]
fn an_event_over_the_limit_stops_the_reader() {
    let mut reader = EventReader::new(16);
    assert_eq!(
        reader.push(Bytes::from_static(&[b'x'; 64])),
        Err(ReaderStopped::EventTooLarge { limit: 16 })
    );
    // An event arriving in small pieces is stopped as soon as it passes the limit: what the
    // reader holds stays bounded.
    let mut reader = EventReader::new(25);
    let pieces: Vec<_> = std::iter::repeat_n(Bytes::from_static(b"data: aaaa"), 3)
        .map(|p| reader.push(p))
        .collect();
    assert_eq!(pieces[0], Ok(Vec::new()));
    assert_eq!(pieces[1], Ok(Vec::new()));
    assert_eq!(pieces[2], Err(ReaderStopped::EventTooLarge { limit: 25 }));
    // Events within the limit go through.
    let mut reader = EventReader::new(16);
    assert_eq!(
        reader
            .push(Bytes::from_static(b"data: 1\n\n"))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_line_that_is_not_sse_stops_the_reader() {
    let mut reader = EventReader::new(1 << 20);
    assert!(matches!(
        reader.push(Bytes::from_static(b"data: 1\n\nnonsense\n\n")),
        Err(ReaderStopped::Malformed { .. })
    ));
}

/// Relays `chunks` with a reader limited to `limit` bytes: what the agent received, how the
/// stream ended and what was assembled.
async fn relay(
    chunks: Vec<Bytes>,
    mode: RelayMode,
    agent_protocol: Protocol,
    limit: usize,
) -> (Vec<u8>, StreamEnd, Assembler) {
    let relay = StreamRelay {
        mode,
        agent_protocol,
        translator: (mode.upstream_protocol != agent_protocol)
            .then(|| StreamTranslator::new(mode.upstream_protocol, agent_protocol, "model")),
        idle: Duration::from_secs(5),
        reader: Some(EventReader::new(limit)),
        assembler: Assembler::new(mode.upstream_protocol),
        redactor: warden_core::redact::Secrets::default().stream(),
        held: None,
        boundary: boundary::EventBoundary::default(),
        pending: Vec::new(),
    };
    let upstream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let (agent, mut received) = mpsc::channel(1024);
    let (end, assembler, held) = relay.run(upstream, &agent).await;
    drop(agent);
    let mut bytes = Vec::new();
    while let Some(chunk) = received.recv().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    // What is held back goes last (once recorded).
    bytes.extend_from_slice(&held);
    (bytes, end, assembler)
}

/// Issue 10, point 7: an event the reader cannot take (over the limit) ends the stream with
/// an error; what it carries is neither relayed nor lost from the record. (Before, capture
/// stopped and the rest of the stream was relayed unrecorded.)
#[tokio::test]
async fn an_event_over_the_limit_ends_the_stream_with_an_error() {
    let first = Bytes::from_static(
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
    );
    let huge = Bytes::from(format!("data: {{\"pad\":\"{}", "x".repeat(256)));
    let chunks = vec![
        first.clone(),
        huge.clone(),
        huge,
        Bytes::from_static(b"\"}\n\n"),
        Bytes::from_static(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
        ),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ];
    let mode = RelayMode {
        upstream_protocol: Protocol::OpenAi,
        hide_usage: false,
    };
    let (received, end, assembler) = relay(chunks, mode, Protocol::OpenAi, 128).await;
    assert_eq!(end, StreamEnd::Unreadable);
    assert!(end.cut_short(), "the agent's response is aborted");
    // The agent got only what was read and captured before the unreadable event.
    assert_eq!(received, first.to_vec());
    assert!(!assembler.complete);
    assert_eq!(assembler.finish().text, "Hel");
}

#[tokio::test]
async fn bytes_that_are_not_server_sent_events_end_the_stream_with_an_error() {
    let first = Bytes::from_static(
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
    );
    let chunks = vec![
        first.clone(),
        Bytes::from_static(b"this line is not an SSE field\n\n"),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ];
    let mode = RelayMode {
        upstream_protocol: Protocol::OpenAi,
        hide_usage: false,
    };
    let (received, end, _) = relay(chunks, mode, Protocol::OpenAi, 1 << 20).await;
    assert_eq!(end, StreamEnd::Unreadable);
    assert_eq!(received, first.to_vec());
}

#[tokio::test]
async fn a_stream_within_the_limit_is_captured_and_relayed_untouched() {
    let mode = RelayMode {
        upstream_protocol: Protocol::Anthropic,
        hide_usage: false,
    };
    let chunks = ANTHROPIC
        .as_bytes()
        .chunks(7)
        .map(Bytes::copy_from_slice)
        .collect();
    let (received, end, assembler) =
        relay(chunks, mode, Protocol::Anthropic, MAX_EVENT_BYTES).await;
    assert_eq!(end, StreamEnd::Finished);
    assert_eq!(received, ANTHROPIC.as_bytes());
    assert!(assembler.complete);
    let completion = assembler.finish();
    assert_eq!(completion.text, "Sure");
    assert_eq!(completion.intents[0].tool, "pay.refund");
}

#[tokio::test]
async fn usage_the_agent_did_not_ask_for_is_left_out() {
    let mode = RelayMode {
        upstream_protocol: Protocol::OpenAi,
        hide_usage: true,
    };
    let chunks = OPENAI
        .as_bytes()
        .chunks(13)
        .map(Bytes::copy_from_slice)
        .collect();
    let (received, _, assembler) = relay(chunks, mode, Protocol::OpenAi, MAX_EVENT_BYTES).await;
    let received = String::from_utf8(received).unwrap();
    assert!(!received.contains("\"usage\""), "{received}");
    assert!(received.ends_with("data: [DONE]\n\n"));
    assert_eq!(assembler.finish().usage.unwrap().total(), 13);
}

proptest! {
    /// However the bytes are split, the reader gives the same events, and the assembler the
    /// same completion.
    #[test]
    fn chunking_never_changes_the_result(chunk in 1usize..64) {
        for (protocol, raw) in [(Protocol::OpenAi, OPENAI), (Protocol::Anthropic, ANTHROPIC)] {
            let whole = read_in_chunks(raw.as_bytes(), raw.len());
            let split = read_in_chunks(raw.as_bytes(), chunk);
            prop_assert_eq!(&whole, &split);
            let (whole, _) = assemble(protocol, &whole);
            let (split, complete) = assemble(protocol, &split);
            prop_assert!(complete);
            prop_assert_eq!(whole, split);
        }
    }

    /// Arbitrary bytes, however chunked, never panic the reader or the assembler.
    #[test]
    fn garbage_is_harmless(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        chunk in 1usize..64,
    ) {
        let mut reader = EventReader::new(256);
        let mut a = Assembler::new(Protocol::OpenAi);
        for part in bytes.chunks(chunk) {
            match reader.push(Bytes::copy_from_slice(part)) {
                Ok(events) => events.iter().for_each(|e| { a.feed(e); }),
                Err(_) => break,
            }
        }
        let _ = a.finish();
    }
}

/// Issue 10, point 5: the terminal event is held back (for after the record), not relayed
/// with the rest of the stream.
#[tokio::test]
async fn the_terminal_event_is_held_back_for_after_the_record() {
    for (protocol, raw, terminal) in [
        (Protocol::OpenAi, OPENAI, "[DONE]"),
        (Protocol::Anthropic, ANTHROPIC, "message_stop"),
    ] {
        let mode = RelayMode {
            upstream_protocol: protocol,
            hide_usage: false,
        };
        let relay = StreamRelay {
            mode,
            agent_protocol: protocol,
            translator: None,
            idle: Duration::from_secs(5),
            reader: Some(EventReader::new(1 << 20)),
            assembler: Assembler::new(protocol),
            redactor: warden_core::redact::Secrets::default().stream(),
            held: None,
            boundary: boundary::EventBoundary::default(),
            pending: Vec::new(),
        };
        let chunks: Vec<Bytes> = raw
            .as_bytes()
            .chunks(7)
            .map(Bytes::copy_from_slice)
            .collect();
        let upstream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let (agent, mut received) = mpsc::channel(1024);
        let (end, _, held) = relay.run(upstream, &agent).await;
        drop(agent);
        let mut sent = Vec::new();
        while let Some(chunk) = received.recv().await {
            sent.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(end, StreamEnd::Finished);
        let sent = String::from_utf8(sent).unwrap();
        let held = String::from_utf8(held).unwrap();
        assert!(!sent.contains(terminal), "{sent}");
        assert!(held.contains(terminal), "{held}");
        assert_eq!(sent + &held, raw, "nothing lost or changed");
    }
}
