//! [`EventReader`]: the SSE events of a provider's stream, read chunk by chunk as the relay
//! passes the chunks on. The parsing is `sse-stream`'s; this module hands it one chunk at a time
//! and bounds what it may hold: `sse-stream` itself keeps an unfinished line and an unfinished
//! event without limit, so a provider sending one endless event would grow it forever.
//!
//! `sse-stream` is stricter than the specification in one way: a line of a field other than
//! `event`, `data`, `id` or `retry` (or with no colon), or one that is not UTF-8, is an error,
//! after which it has dropped the rest of that chunk. The reader then stops, and the relay with
//! it stops capturing — the agent's stream goes on untouched.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Bytes;
use futures::{FutureExt as _, Stream, StreamExt as _};
use sse_stream::{ByteStreamBody, Sse, SseStream};
use warden_llm::SseEvent;

/// Why the reader stopped: the relay then ends the stream with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReaderStopped {
    /// An event grew past the limit before it ended.
    #[error("an event is larger than the limit of {limit} bytes")]
    EventTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The bytes are not a valid event stream (a line of an unknown field, invalid UTF-8, ...).
    #[error("the stream is not valid server-sent events: {reason}")]
    Malformed {
        /// What the parser said.
        reason: String,
    },
}

/// The chunk handed from [`EventReader::push`] to the parser, which takes it.
type Handover = Arc<Mutex<Option<Bytes>>>;

/// The parser's input: the chunk in the handover slot, then `Pending` until the next one.
/// Polled only through [`EventReader::push`] (never by an executor), so it registers no waker.
struct HandedOverChunks(Handover);

impl Stream for HandedOverChunks {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.lock() {
            Ok(mut slot) => match slot.take() {
                Some(chunk) => Poll::Ready(Some(Ok(chunk))),
                None => Poll::Pending,
            },
            // Unreachable in practice (nothing panics holding the lock): end the input.
            Err(_) => Poll::Ready(None),
        }
    }
}

/// Reads SSE events from a byte stream pushed to it one chunk at a time, however the bytes are
/// chunked.
///
/// Bounded: it counts the bytes pushed since the chunk in which the last event ended (an upper
/// bound of what the parser holds of the unfinished event); past `limit`, [`push`] fails with
/// [`ReaderStopped::EventTooLarge`], and the caller drops the reader, so the memory held stays
/// under `limit` plus one chunk.
///
/// [`push`]: EventReader::push
pub(crate) struct EventReader {
    handover: Handover,
    events: SseStream<ByteStreamBody<HandedOverChunks, Bytes>>,
    unfinished_bytes: usize,
    limit: usize,
}

impl EventReader {
    /// A reader that stops once an unfinished event passes `limit` bytes.
    pub(crate) fn new(limit: usize) -> EventReader {
        let handover = Handover::default();
        EventReader {
            events: SseStream::from_bytes_stream(HandedOverChunks(handover.clone())),
            handover,
            unfinished_bytes: 0,
            limit,
        }
    }

    /// Reads `chunk`; returns the events it completes. After an error the reader is spent:
    /// drop it.
    pub(crate) fn push(&mut self, chunk: Bytes) -> Result<Vec<SseEvent>, ReaderStopped> {
        let length = chunk.len();
        if let Ok(mut slot) = self.handover.lock() {
            *slot = Some(chunk);
        }
        let mut events = Vec::new();
        let mut an_event_ended = false;
        // The parser takes the chunk and yields the events it completes, then waits for the
        // next chunk (`Pending`, so `now_or_never` gives `None`).
        while let Some(Some(next)) = self.events.next().now_or_never() {
            match next {
                Ok(sse) => {
                    an_event_ended = true;
                    events.extend(event_of(sse));
                }
                Err(e) => {
                    return Err(ReaderStopped::Malformed {
                        reason: e.to_string(),
                    });
                }
            }
        }
        self.unfinished_bytes = if an_event_ended {
            length
        } else {
            self.unfinished_bytes.saturating_add(length)
        };
        if self.unfinished_bytes > self.limit {
            return Err(ReaderStopped::EventTooLarge { limit: self.limit });
        }
        Ok(events)
    }
}

/// The event of a parsed block: one with data or a name (a block of only `id:` or `retry:`
/// carries nothing to relay or capture).
fn event_of(sse: Sse) -> Option<SseEvent> {
    match (sse.event, sse.data) {
        (None, None) => None,
        (event, data) => Some(SseEvent {
            event,
            data: data.unwrap_or_default(),
        }),
    }
}
