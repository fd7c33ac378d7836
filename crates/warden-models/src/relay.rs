//! The stream relay: a provider's stream goes to the agent as it arrives — byte for byte when
//! the protocols match and nothing is left out, re-framed otherwise — while its events are read
//! ([`reader::EventReader`]) and assembled into the completion recorded at the end.
//!
//! Events are passed on whole. The stream's terminal event (OpenAI's `[DONE]`, Anthropic's `message_stop`) is held back
//! until the completion is recorded; when it cannot be, the agent gets the protocol's error
//! event instead. Everything the agent gets is redacted of the gateway's secrets.
//!
//! Nothing uncaptured is relayed: an event over [`MAX_EVENT_BYTES`], or bytes that are not
//! server-sent events, end the stream — the agent's body ends with an error, and the call's
//! record says `unreadable_event`. A stream the provider cuts short is cut short for the agent
//! too (an error in its body), never made to look complete.

mod boundary;
mod reader;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use futures::{Stream, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use warden_charter::ModelRoute;
use warden_core::redact::StreamRedactor;
use warden_llm::{Assembler, Protocol, SseEvent, StreamTranslator};

use crate::answer::ForwardedAnswer;
use crate::capture::{AnsweredCall, CallOutcome, ModelCall};
use crate::provider::route_json;
use crate::proxy::ModelProxy;
use boundary::EventBoundary;
use reader::EventReader;

/// Largest single SSE event read, in bytes; a larger one ends the stream with an error (it
/// could not be captured, so it is not relayed). Memory stays bounded by it.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// Chunks buffered between the provider and a slow agent.
const STREAM_BUFFER: usize = 64;

/// How a stream is relayed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RelayMode {
    /// The provider's protocol (the agent's is the call's).
    pub(crate) upstream_protocol: Protocol,
    /// Leave out OpenAI usage-only chunks (the agent did not ask for them).
    pub(crate) hide_usage: bool,
}

/// How a relayed stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamEnd {
    /// The provider ended it.
    Finished,
    /// The provider sent nothing for longer than the route's timeout.
    UpstreamTimeout,
    /// The connection to the provider failed.
    UpstreamError,
    /// The agent went away.
    ClientClosed,
    /// An event could not be read (larger than [`MAX_EVENT_BYTES`], or not server-sent
    /// events): what it carries could not be captured, so it is not relayed and the stream
    /// ends with an error.
    Unreadable,
}

impl StreamEnd {
    /// The name recorded in the call's attempts.
    fn as_str(self) -> &'static str {
        match self {
            StreamEnd::Finished => "ok",
            StreamEnd::UpstreamTimeout => "upstream_timeout",
            StreamEnd::UpstreamError => "upstream_error",
            StreamEnd::ClientClosed => "client_closed",
            StreamEnd::Unreadable => "unreadable_event",
        }
    }

    /// Whether the stream ended before the provider finished it, so the agent's response is
    /// aborted (a cut-off stream must not look complete).
    fn cut_short(self) -> bool {
        match self {
            StreamEnd::UpstreamTimeout | StreamEnd::UpstreamError | StreamEnd::Unreadable => true,
            StreamEnd::Finished | StreamEnd::ClientClosed => false,
        }
    }
}

/// The chunks of the agent's response body; an error aborts it.
type AgentBody = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Answers the agent with a stream fed by a relay task, which starts when `start_relay` of the
/// returned answer fires, and records the completion at its end.
pub(crate) fn start_relay(
    proxy: Arc<ModelProxy>,
    upstream: reqwest::Response,
    route: &ModelRoute,
    mut call: ModelCall,
    mode: RelayMode,
    passed: HeaderMap,
) -> ForwardedAnswer {
    let (agent_body, chunks) = mpsc::channel(STREAM_BUFFER);
    let (start_tx, start_rx) = oneshot::channel::<()>();
    let relay = StreamRelay {
        mode,
        agent_protocol: call.protocol,
        redactor: proxy.secrets.stream(),
        held: None,
        boundary: EventBoundary::default(),
        pending: Vec::new(),
        translator: (mode.upstream_protocol != call.protocol)
            .then(|| StreamTranslator::new(mode.upstream_protocol, call.protocol, &route.model)),
        idle: route.timeout,
        reader: Some(EventReader::new(MAX_EVENT_BYTES)),
        assembler: Assembler::new(mode.upstream_protocol),
    };
    let route = route_json(route);
    let tasks = proxy.tasks.clone();
    tasks.spawn(async move {
        // Relay only once the request is recorded (or not at all if it is not).
        if start_rx.await.is_err() {
            return;
        }
        let (end, assembler, held) = relay.run(upstream.bytes_stream(), &agent_body).await;
        let complete = assembler.complete;
        let completion = assembler.finish();
        // Counted before the agent sees the end of the stream.
        let usage = call.usage(&completion, true);
        let counted = proxy
            .budgets
            .count(&call.session, proxy.clock.now(), usage.total())
            .releasing(call.reservation.take());
        if end.cut_short() {
            // Abort the agent's response: a cut-off stream must not look complete.
            let _ = agent_body
                .send(Err(std::io::Error::other(format!(
                    "the provider's stream ended early ({})",
                    end.as_str()
                ))))
                .await;
        }
        let agent_protocol = call.protocol;
        let mut call = call;
        if let Some(a) = call.attempts.last_mut()
            && let Some(o) = a.as_object_mut()
        {
            o.insert(
                "stream".to_owned(),
                json!({ "outcome": end.as_str(), "complete": complete }),
            );
        }
        let outcome = CallOutcome::Answered(Box::new(AnsweredCall {
            call,
            route,
            status: 200,
            body: None,
            completion,
            usage,
            counted,
        }));
        // The stream's end (its terminal event, `[DONE]` or `message_stop`) is held back
        // until the completion is durable; if it cannot be recorded, the agent gets the
        // protocol's error event instead, so the stream never looks complete unrecorded.
        let recorded = outcome.record(&proxy).await;
        if end.cut_short() || end == StreamEnd::ClientClosed {
            return;
        }
        let last = match recorded {
            Ok(()) => held,
            Err(_) => error_event(agent_protocol),
        };
        if !last.is_empty() {
            let _ = agent_body.send(Ok(Bytes::from(last))).await;
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(chunks));
    let mut response = Response::new(body);
    *response.headers_mut() = passed;
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    ForwardedAnswer::Streaming {
        response,
        start_relay: start_tx,
    }
}

/// One stream on its way from the provider to the agent.
struct StreamRelay {
    mode: RelayMode,
    /// The agent's protocol.
    agent_protocol: Protocol,
    /// From the provider's protocol to the agent's, when they differ.
    translator: Option<StreamTranslator>,
    /// The longest wait for the provider's next chunk.
    idle: Duration,
    /// Reads the events; `None` once capturing stopped.
    reader: Option<EventReader>,
    /// Rebuilds the completion from the events read.
    assembler: Assembler,
    /// Replaces the gateway's secrets in what the agent gets, across chunk boundaries.
    redactor: StreamRedactor,
    /// Once the stream's terminal event was seen: what the agent gets after the completion is
    /// recorded (the chunk that carried it, and anything after).
    held: Option<Vec<u8>>,
    /// Where the provider's events end, when its bytes are passed on untouched.
    boundary: EventBoundary,
    /// The provider's bytes of an event not yet complete (passed on once it is; bounded by
    /// the reader's limit).
    pending: Vec<u8>,
}

impl StreamRelay {
    /// Pumps `upstream` into `agent` until either ends; returns how the stream ended, what was
    /// assembled of it, and what is held back for after the record: from the chunk that
    /// carried the terminal event on (redacted, like everything the agent gets).
    async fn run<S, E>(mut self, upstream: S, agent: &AgentBody) -> (StreamEnd, Assembler, Vec<u8>)
    where
        S: Stream<Item = Result<Bytes, E>>,
    {
        let mut upstream = std::pin::pin!(upstream);
        let end = loop {
            let chunk = match tokio::time::timeout(self.idle, upstream.next()).await {
                Err(_) => break StreamEnd::UpstreamTimeout,
                Ok(None) => break StreamEnd::Finished,
                Ok(Some(Err(_))) => break StreamEnd::UpstreamError,
                Ok(Some(Ok(c))) => c,
            };
            // Fail closed: what cannot be read cannot be recorded, so it is not relayed.
            let Some(events) = self.read(&chunk) else {
                break StreamEnd::Unreadable;
            };
            let (out, terminal) = self.agent_bytes(chunk, &events);
            let out = self.redactor.push(&out);
            if terminal || self.held.is_some() {
                self.held
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&out);
                continue;
            }
            if !out.is_empty() && agent.send(Ok(Bytes::from(out))).await.is_err() {
                break StreamEnd::ClientClosed;
            }
        };
        let mut rest = Vec::new();
        if end == StreamEnd::Finished
            && let Some(t) = self.translator.as_mut()
        {
            let mut out = String::new();
            write_events(&t.finish(), &mut out);
            rest = self.redactor.push(out.as_bytes());
        }
        let mut held = self.held.take().unwrap_or_default();
        held.extend_from_slice(&self.redactor.push(&std::mem::take(&mut self.pending)));
        held.extend_from_slice(&rest);
        held.extend_from_slice(&self.redactor.finish());
        (end, self.assembler, held)
    }

    /// The events `chunk` completes; `None` when the reader cannot read it (an event over the
    /// limit, or bytes that are not server-sent events): the reader is dropped (and its buffer
    /// with it) and the stream must end.
    fn read(&mut self, chunk: &Bytes) -> Option<Vec<SseEvent>> {
        let reader = self.reader.as_mut()?;
        match reader.push(chunk.clone()) {
            Ok(events) => Some(events),
            Err(stopped) => {
                tracing::warn!(reason = %stopped, "A model stream sent an event that cannot be read; the stream is ended.");
                self.reader = None;
                None
            }
        }
    }

    /// What the agent gets for `chunk`, whose `events` are assembled on the way, and whether
    /// it carries the stream's terminal event (in the agent's protocol).
    fn agent_bytes(&mut self, chunk: Bytes, events: &[SseEvent]) -> (Bytes, bool) {
        let capturing = self.reader.is_some();
        let hide_usage = self.mode.hide_usage;
        let agent_protocol = self.agent_protocol;
        let mut terminal = false;
        if let Some(t) = self.translator.as_mut().filter(|_| capturing) {
            // Another protocol: the agent gets the translated events.
            let mut out = String::new();
            for e in events {
                self.assembler.feed(e);
                let translated: Vec<SseEvent> = t
                    .event(e)
                    .into_iter()
                    .filter(|x| {
                        !(hide_usage && agent_protocol == Protocol::OpenAi && is_usage_only(x))
                    })
                    .collect();
                terminal |= translated.iter().any(|x| is_terminal(agent_protocol, x));
                write_events(&translated, &mut out);
            }
            (Bytes::from(out), terminal)
        } else if hide_usage && self.mode.upstream_protocol == Protocol::OpenAi && capturing {
            // Re-frame the events, leaving out the usage chunk the agent did not ask for.
            let mut out = String::new();
            for e in events {
                if self.assembler.feed(e) {
                    continue;
                }
                terminal |= is_terminal(agent_protocol, e);
                write_events(std::slice::from_ref(e), &mut out);
            }
            (Bytes::from(out), terminal)
        } else {
            // The provider's bytes, untouched, passed on event by event: the bytes of the
            // events this chunk completes.
            for e in events {
                self.assembler.feed(e);
                terminal |= is_terminal(agent_protocol, e);
            }
            let out = match self.boundary.feed(&chunk) {
                Some(end) => {
                    let mut out = std::mem::take(&mut self.pending);
                    out.extend_from_slice(chunk.get(..end).unwrap_or_default());
                    self.pending = chunk.get(end..).unwrap_or_default().to_vec();
                    Bytes::from(out)
                }
                None => {
                    self.pending.extend_from_slice(&chunk);
                    Bytes::new()
                }
            };
            (out, terminal)
        }
    }
}

/// Whether `e` ends a stream of `protocol`: OpenAI's `[DONE]`, Anthropic's `message_stop`.
fn is_terminal(protocol: Protocol, e: &SseEvent) -> bool {
    match protocol {
        Protocol::OpenAi => e.data.trim() == "[DONE]",
        Protocol::Anthropic => {
            e.event.as_deref() == Some("message_stop")
                || serde_json::from_str::<Value>(&e.data)
                    .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("message_stop"))
        }
    }
}

/// The protocol's error event that ends a stream whose completion could not be recorded.
fn error_event(protocol: Protocol) -> Vec<u8> {
    let body = protocol.error_body(
        503,
        "ledger_unavailable",
        "the stream's completion could not be recorded, so it is not completed",
    );
    let event = SseEvent {
        event: (protocol == Protocol::Anthropic).then(|| "error".to_owned()),
        data: body.to_string(),
    };
    let mut out = String::new();
    write_events(std::slice::from_ref(&event), &mut out);
    out.into_bytes()
}

/// Writes events as SSE text.
fn write_events(events: &[SseEvent], out: &mut String) {
    for e in events {
        if let Some(name) = &e.event {
            out.push_str("event: ");
            out.push_str(name);
            out.push('\n');
        }
        for line in e.data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
}

/// Whether an OpenAI chunk carries only usage.
fn is_usage_only(e: &SseEvent) -> bool {
    serde_json::from_str::<Value>(&e.data).is_ok_and(|v| {
        v.get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
            && v.get("usage").is_some_and(|u| !u.is_null())
    })
}

#[cfg(test)]
mod tests;
