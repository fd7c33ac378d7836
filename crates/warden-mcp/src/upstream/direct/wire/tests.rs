//! The event-size bound, byte by byte: what ends an event (a blank line after `\n`, `\r\n` or
//! `\r`), what counts (every byte of a field line and its line end; a comment's bytes only
//! while its line is read), and that a chunk boundary changes nothing.

use super::EventLimiter;

/// Feeds `stream` to a fresh limiter in chunks of `chunk` bytes: whether it stayed within
/// `bound`.
fn admitted(stream: &[u8], bound: usize, chunk: usize) -> bool {
    let mut limiter = EventLimiter::default();
    stream.chunks(chunk.max(1)).all(|c| limiter.admit(c, bound))
}

fn every_chunking(stream: &[u8], bound: usize) -> bool {
    let first = admitted(stream, bound, stream.len());
    for chunk in 1..=stream.len().min(16) {
        assert_eq!(admitted(stream, bound, chunk), first, "chunks of {chunk}");
    }
    first
}

#[test]
fn an_event_at_its_bound_is_admitted_and_one_byte_more_is_not() {
    // "data: 1234" is 10 bytes, its line end 1 more: 11 for the event.
    assert!(every_chunking(b"data: 1234\n\n", 11));
    assert!(!every_chunking(b"data: 1234\n\n", 10));
    // A line is refused while it is read, before its end arrives.
    assert!(!every_chunking(b"data: 12345678901234567890", 11));
}

#[test]
fn a_blank_line_starts_the_count_again_whatever_the_line_ends() {
    for sep in [&b"\n\n"[..], b"\r\n\r\n", b"\r\r", b"\n\r\n", b"\r\n\n"] {
        let mut stream = Vec::new();
        for _ in 0..50 {
            stream.extend_from_slice(b"data: 1234");
            stream.extend_from_slice(sep);
        }
        assert!(every_chunking(&stream, 11), "{sep:?}");
    }
}

#[test]
fn lines_of_one_event_add_up() {
    // Two lines of one event: 11 + 11 bytes.
    assert!(every_chunking(b"data: 1234\ndata: 1234\n\n", 22));
    assert!(!every_chunking(b"data: 1234\ndata: 1234\n\n", 21));
    // A lone \r ends a line but is not a blank line when a byte follows it.
    assert!(!every_chunking(b"data: 1234\rdata: 1234\r\r", 21));
}

#[test]
fn comments_are_bounded_while_read_but_not_kept() {
    // Each comment line is under the bound; many of them do not add up.
    let mut stream = Vec::new();
    for _ in 0..100 {
        stream.extend_from_slice(b": keep-alive\n");
    }
    stream.extend_from_slice(b"data: 1\n\n");
    assert!(every_chunking(&stream, 12));
    // One comment line over the bound is refused as it is read.
    assert!(!every_chunking(b": a comment that is far too long\n", 12));
}
