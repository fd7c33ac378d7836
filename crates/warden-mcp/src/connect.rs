//! The client half of `warden connect`: a stdio bridge to the gateway's MCP endpoint.
//!
//! An MCP client that only speaks stdio starts `warden connect` as its server. Each JSON-RPC
//! message read from the input (one per line) is POSTed to the gateway's Streamable HTTP
//! endpoint with the session token; JSON and SSE answers are written to the output, one
//! message per line. The gateway, its policy and its ledger stay outside the agent's process:
//! the bridge holds nothing but the token. Requests run concurrently (up to 64 at a time), so
//! a call that waits for approval does not block the others. A request the client cancels
//! (`notifications/cancelled`, which MCP clients send when they give up on a call) is abandoned:
//! its HTTP request is dropped, so the gateway stops waiting for it (for an approval, say) the
//! way it does when an HTTP client goes away, and leaves the approval for the same call, retried.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt as _;
use serde_json::{Value, json};
use sse_stream::SseStream;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest message accepted on the input, in bytes.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Longest server-sent event accepted from the gateway, in bytes; the rest of a stream that
/// sends a longer one is dropped.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;
/// Requests in flight at once.
const MAX_IN_FLIGHT: usize = 64;

/// Why the bridge could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The HTTP client could not be set up (no TLS roots, for instance).
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

#[derive(Default)]
struct Negotiated {
    protocol_version: Option<String>,
    session_id: Option<String>,
}

/// The requests in flight, by the JSON text of their id, each with the token that abandons it
/// and a sequence number (so that a finished request removes its own entry, not a later request
/// that reused its id). At most [`MAX_IN_FLIGHT`] entries: one per request holding a permit.
#[derive(Default)]
struct InFlight {
    next: u64,
    by_id: HashMap<String, (u64, CancellationToken)>,
}

/// The `params.requestId` of a `notifications/cancelled`, as JSON text.
fn cancelled_request(message: &Value) -> Option<String> {
    if message.get("method").and_then(Value::as_str) != Some("notifications/cancelled") {
        return None;
    }
    message
        .pointer("/params/requestId")
        .filter(|id| !id.is_null())
        .map(Value::to_string)
}

/// Where the gateway is, and the token that opens it.
struct Target {
    client: reqwest::Client,
    url: String,
    token: String,
    negotiated: Mutex<Negotiated>,
}

/// Bridges `input` to the MCP endpoint at `url` and its answers to `output`, until the input
/// ends and every request in flight has been answered. Only JSON-RPC is ever written to
/// `output`: a line longer than 16 MiB is answered with a JSON-RPC error; an unreachable
/// gateway or an answer that is not JSON-RPC (a URL without `/mcp` reaches a route that
/// answers 404 in another shape) becomes a JSON-RPC error for the request that caused it,
/// with its id (none for a notification); the human-readable account goes to stderr.
pub async fn bridge<R, W>(url: &str, token: &str, input: R, output: W) -> Result<(), ConnectError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let client = reqwest::Client::builder()
        .build()
        .map_err(ConnectError::Client)?;
    let target = Arc::new(Target {
        client,
        url: url.to_owned(),
        token: token.to_owned(),
        negotiated: Mutex::new(Negotiated::default()),
    });
    let tasks = TaskTracker::new();
    let (tx, rx) = mpsc::channel::<String>(256);
    tasks.spawn(write_lines(rx, output));
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let in_flight = Arc::new(Mutex::new(InFlight::default()));
    let mut lines = FramedRead::new(input, LinesCodec::new_with_max_length(MAX_LINE_BYTES));
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(l) => l,
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                let message = format!("message longer than {MAX_LINE_BYTES} bytes");
                eprintln!("warden connect: {message}");
                let err = json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32600, "message": message } });
                let _ = tx.send(err.to_string()).await;
                continue;
            }
            Err(LinesCodecError::Io(_)) => break,
        };
        if line.trim().is_empty() {
            continue;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (target, tx) = (target.clone(), tx.clone());
        let parsed: Option<Value> = serde_json::from_str(&line).ok();
        let id = parsed
            .as_ref()
            .and_then(|v| v.get("id"))
            .cloned()
            .unwrap_or(Value::Null);
        // `initialize` must finish before anything else is sent: it fixes the version.
        let is_initialize = parsed
            .as_ref()
            .and_then(|v| v.get("method"))
            .and_then(Value::as_str)
            == Some("initialize");
        if let Some(cancelled) = parsed.as_ref().and_then(cancelled_request)
            && let Some((_, abandon)) = in_flight.lock().await.by_id.remove(&cancelled)
        {
            abandon.cancel();
        }
        // A request (a message with a method and an id) can be abandoned; an answer or a
        // notification cannot.
        let registered = if id.is_null() || parsed.as_ref().and_then(|v| v.get("method")).is_none()
        {
            None
        } else {
            let mut in_flight = in_flight.lock().await;
            in_flight.next = in_flight.next.wrapping_add(1);
            let (key, seq, abandon) = (id.to_string(), in_flight.next, CancellationToken::new());
            in_flight.by_id.insert(key.clone(), (seq, abandon.clone()));
            Some((key, seq, abandon))
        };
        let in_flight = in_flight.clone();
        let task = async move {
            match &registered {
                // Dropping the request closes its connection: the gateway sees the client go.
                Some((_, _, abandon)) => tokio::select! {
                    () = forward(&target, line, id, is_initialize, tx) => {}
                    () = abandon.cancelled() => {}
                },
                None => forward(&target, line, id, is_initialize, tx).await,
            }
            if let Some((key, seq, _)) = registered {
                let mut in_flight = in_flight.lock().await;
                if in_flight.by_id.get(&key).is_some_and(|(s, _)| *s == seq) {
                    in_flight.by_id.remove(&key);
                }
            }
            drop(permit);
        };
        if is_initialize {
            task.await;
        } else {
            tasks.spawn(task);
        }
    }
    // The writer ends once every sender is gone: this one now, the requests' as they finish.
    drop(tx);
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Writes each message to `output`, one per line, until the senders are gone or the output
/// is closed.
async fn write_lines<W: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<String>, mut output: W) {
    while let Some(line) = rx.recv().await {
        if output.write_all(line.as_bytes()).await.is_err()
            || output.write_all(b"\n").await.is_err()
            || output.flush().await.is_err()
        {
            break;
        }
    }
}

/// The JSON-RPC error answering the request `id` with `message`, also written to stderr (the
/// human's channel: stdout carries only JSON-RPC). A notification (no id) gets no answer.
fn error_for(id: &Value, message: String) -> Option<String> {
    eprintln!("warden connect: {message}");
    (!id.is_null()).then(|| {
        json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32000, "message": message } })
            .to_string()
    })
}

/// Whether `v` is a JSON-RPC 2.0 message (or a batch of them): what may be written to
/// stdout, where the MCP client reads only JSON-RPC.
fn is_jsonrpc(v: &Value) -> bool {
    match v {
        Value::Array(items) => !items.is_empty() && items.iter().all(is_jsonrpc),
        Value::Object(obj) => {
            obj.get("jsonrpc").and_then(Value::as_str) == Some("2.0")
                && ["result", "error", "method"]
                    .iter()
                    .any(|k| obj.contains_key(*k))
        }
        _ => false,
    }
}

/// What to say about an answer that is not JSON-RPC: the gateway's status, the URL, and a hint
/// when the URL is not the MCP endpoint.
fn not_jsonrpc(url: &str, status: reqwest::StatusCode, body: &str) -> String {
    let mut excerpt: String = body.chars().take(200).collect();
    if excerpt.len() < body.len() {
        excerpt.push('…');
    }
    let hint = if url.trim_end_matches('/').ends_with("/mcp") {
        String::new()
    } else {
        " (is the URL the gateway's MCP endpoint? it ends in `/mcp`, e.g. `http://127.0.0.1:8700/mcp`)".to_owned()
    };
    format!("`{url}` answered {status}, not JSON-RPC{hint}: {excerpt}")
}

/// Sends one message (whose JSON-RPC `id` is `id`, `null` for none) to the gateway and passes
/// its answers on.
async fn forward(
    target: &Target,
    message: String,
    id: Value,
    is_initialize: bool,
    out: mpsc::Sender<String>,
) {
    let negotiated = &target.negotiated;
    let mut req = target
        .client
        .post(&target.url)
        .bearer_auth(&target.token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            reqwest::header::ACCEPT,
            "application/json, text/event-stream",
        )
        .body(message);
    {
        let n = negotiated.lock().await;
        if let Some(v) = &n.protocol_version {
            req = req.header("mcp-protocol-version", v);
        }
        if let Some(s) = &n.session_id {
            req = req.header("mcp-session-id", s);
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let message = format!("the warden gateway at `{}` is unreachable: {e}", target.url);
            if let Some(err) = error_for(&id, message) {
                let _ = out.send(err).await;
            }
            return;
        }
    };
    if let Some(s) = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        negotiated.lock().await.session_id = Some(s.to_owned());
    }
    let is_sse = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let status = resp.status();
    if is_sse {
        let mut events = bounded_events(resp, MAX_EVENT_BYTES);
        while let Some(data) = events.next().await {
            // Only JSON-RPC reaches the client; anything else is told on stderr.
            if serde_json::from_str::<Value>(&data).is_ok_and(|v| is_jsonrpc(&v)) {
                deliver(data, is_initialize, negotiated, &out).await;
            } else {
                eprintln!(
                    "warden connect: {}",
                    not_jsonrpc(&target.url, status, &data)
                );
            }
        }
        return;
    }
    let body = resp.text().await.unwrap_or_default();
    let body = body.trim();
    if body.is_empty() {
        if !status.is_success()
            && let Some(err) = error_for(&id, not_jsonrpc(&target.url, status, body))
        {
            let _ = out.send(err).await;
        }
        return;
    }
    match serde_json::from_str::<Value>(body).ok().filter(is_jsonrpc) {
        Some(mut v) => {
            // Errors the gateway raises before reading the request carry no id: give them the
            // request's, so the client can match them.
            if v.get("error").is_some()
                && v.get("id").is_some_and(Value::is_null)
                && !id.is_null()
                && let Some(obj) = v.as_object_mut()
            {
                obj.insert("id".to_owned(), id.clone());
            }
            deliver(v.to_string(), is_initialize, negotiated, &out).await;
        }
        None => {
            if let Some(err) = error_for(&id, not_jsonrpc(&target.url, status, body)) {
                let _ = out.send(err).await;
            }
        }
    }
}

/// The data of each server-sent event of `resp` that carries any. The stream ends at the end
/// of the body, at a read or syntax error, or at an event longer than `max_event_bytes`.
fn bounded_events(
    resp: reqwest::Response,
    max_event_bytes: usize,
) -> impl futures::Stream<Item = String> + Send {
    // Bytes read since the last event was parsed: the size of the event being read (give or
    // take the chunk it arrived in).
    let pending = Arc::new(AtomicUsize::new(0));
    let counted = pending.clone();
    let bytes = resp.bytes_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        let read = counted
            .fetch_add(chunk.len(), Ordering::Relaxed)
            .saturating_add(chunk.len());
        if read > max_event_bytes {
            return Err(std::io::Error::other(format!(
                "an event is longer than {max_event_bytes} bytes"
            )));
        }
        Ok(chunk)
    });
    SseStream::from_bytes_stream(bytes)
        .take_while(|event| std::future::ready(event.is_ok()))
        .filter_map(move |event| {
            pending.store(0, Ordering::Relaxed);
            std::future::ready(event.ok().and_then(|e| e.data).filter(|d| !d.is_empty()))
        })
}

/// Writes one message to the output; the answer to `initialize` also fixes the protocol
/// version sent with every later request.
async fn deliver(
    line: String,
    is_initialize: bool,
    negotiated: &Mutex<Negotiated>,
    out: &mpsc::Sender<String>,
) {
    if is_initialize
        && let Ok(v) = serde_json::from_str::<Value>(&line)
        && let Some(pv) = v.pointer("/result/protocolVersion").and_then(Value::as_str)
    {
        negotiated.lock().await.protocol_version = Some(pv.to_owned());
    }
    let _ = out.send(line).await;
}

#[cfg(test)]
mod tests;
