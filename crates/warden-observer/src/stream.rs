//! The ledger stream client: follows `GET /v1/ledger/stream` from the record after the last one
//! read, verifies the hash chain as it reads, and hands the records on in order.
//!
//! What it guarantees:
//! - every record handed on as [`StreamItem::Record`] was checked against the chain: its
//!   sequence number is the next one and its `prev_hash` is the hash of the record before it
//!   (the last one of the previous run, from the store, after a restart), and its hash is the
//!   hash of its content. A record that fails is announced first as [`StreamItem::Broken`], then
//!   handed on (the engine still sees it) and the check goes on from it, so each break is
//!   reported once, where it is;
//! - a dropped connection is reconnected with a doubling backoff (200 ms to 10 s) and resumed at
//!   the next record, so nothing is skipped or read twice; a connection silent for longer than
//!   [`IDLE_TIMEOUT`] (the gateway sends a `: head N` comment every 5 s when idle) is taken as
//!   dead and replaced;
//! - bounded: a line or an event larger than the limit ends the connection (and is reported as
//!   an error: it is never skipped, since the chain cannot be checked past it); records are
//!   handed on through a bounded channel, so a slow consumer slows the reading down;
//! - a refused credential (401, 403) ends [`StreamClient::follow`] with an error: an operator
//!   must act.

mod sse;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warden_audit::chain::{RecordRef, canonical_json, format_time};
use warden_audit::{Head, Problem, Record, Verifier};

use crate::gateway::{GatewayClient, body_snippet};
use sse::{SseItem, SseParser};

/// A connection that delivers nothing (not even a keep-alive comment) for this long is replaced.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// The default bound on one line (one record) of the stream.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// The first wait before reconnecting; it doubles after each failure, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the stream delivers, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// The next record (its chain checked; a record that failed is preceded by `Broken`).
    Record(Box<Record>),
    /// The gateway's committed head, from a `: head N` comment.
    Head(u64),
    /// The chain does not hold at `seq`.
    Broken {
        /// The record where it breaks.
        seq: u64,
        /// What is wrong.
        problem: Problem,
    },
}

/// Why following the stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The gateway refused the credential.
    #[error(
        "the gateway refused the observer's credential on the ledger stream ({status}): {body}"
    )]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// A record could not be read (its line is not a record, or it is too large): the chain
    /// cannot be checked past it.
    #[error("record {seq} of the ledger stream cannot be read: {detail}")]
    Unreadable {
        /// The record expected there.
        seq: u64,
        /// Why.
        detail: String,
    },
}

/// The chain check: a [`Verifier`] that goes on after a problem, from the record that had it.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    verifier: Verifier,
}

impl ChainCheck {
    /// A check expecting the first record (`None`) or the record after `head`.
    pub fn new(head: Option<Head>) -> ChainCheck {
        ChainCheck {
            verifier: head.map_or_else(Verifier::new, Verifier::resume),
        }
    }

    /// The sequence number expected next.
    pub fn next_seq(&self) -> u64 {
        self.verifier.next_seq()
    }

    /// The last record checked (or the head it started after).
    pub fn head(&self) -> Option<Head> {
        self.verifier.head()
    }

    /// Checks `record`; on a problem, returns it and goes on from `record`, as presented.
    pub fn push(&mut self, record: &Record) -> Result<(), Problem> {
        let time = format_time(record.time).map_err(|e| Problem::Malformed {
            seq: i64::try_from(record.seq).unwrap_or(i64::MAX),
            detail: e.to_string(),
        });
        let result = time.and_then(|time| {
            let payload = canonical_json(&record.payload);
            self.verifier.push(&RecordRef {
                seq: record.seq,
                time: &time,
                session: record.session.as_deref(),
                kind: record.kind.as_str(),
                payload: &payload,
                prev_hash: &record.prev_hash,
                hash: &record.hash,
            })
        });
        if result.is_err() {
            self.verifier = Verifier::resume(Head {
                seq: record.seq,
                hash: record.hash,
            });
        }
        result
    }
}

/// Follows the ledger stream.
#[derive(Debug, Clone)]
pub struct StreamClient {
    gateway: GatewayClient,
    max_line_bytes: usize,
    connected: Arc<AtomicBool>,
    /// Another instance's chain (`?instance=`), for a fleet; `None`: the gateway's own.
    instance: Option<Arc<str>>,
}

/// How one connection ended (other than by cancellation).
enum Ended {
    /// Reconnect (after the backoff; `true`: records arrived, so start the backoff again).
    Retry(bool),
    /// Stop following.
    Fatal(StreamError),
    /// Cancelled.
    Cancelled,
}

impl StreamClient {
    /// A client of `gateway`'s stream refusing lines longer than `max_line_bytes`.
    pub fn new(gateway: GatewayClient, max_line_bytes: usize) -> StreamClient {
        StreamClient {
            gateway,
            max_line_bytes,
            connected: Arc::new(AtomicBool::new(false)),
            instance: None,
        }
    }

    /// A client of instance `instance`'s chain on the same gateway (a fleet on PostgreSQL:
    /// every instance's records are in the shared store), with a connection flag of its own.
    pub fn for_instance(&self, instance: &str) -> StreamClient {
        StreamClient {
            gateway: self.gateway.clone(),
            max_line_bytes: self.max_line_bytes,
            connected: Arc::new(AtomicBool::new(false)),
            instance: Some(Arc::from(instance)),
        }
    }

    /// The gateway this client reads.
    pub fn gateway(&self) -> &GatewayClient {
        &self.gateway
    }

    /// The instance whose chain this client reads (`None`: the gateway's own).
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Whether a connection to the stream is open now (the heartbeat is sent only then).
    pub fn connected(&self) -> Arc<AtomicBool> {
        self.connected.clone()
    }

    /// Follows the stream from `check`'s next record until `cancel`, handing what it reads to
    /// `tx` (waiting for room: back-pressure). Returns `Ok` when cancelled or when `tx` is
    /// closed; an error when following cannot go on.
    pub async fn follow(
        &self,
        mut check: ChainCheck,
        tx: mpsc::Sender<StreamItem>,
        cancel: CancellationToken,
    ) -> Result<(), StreamError> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let ended = self.connection(&mut check, &tx, &cancel).await;
            self.connected.store(false, Ordering::Relaxed);
            match ended {
                Ended::Cancelled => return Ok(()),
                Ended::Fatal(e) => return Err(e),
                Ended::Retry(progress) => {
                    if progress {
                        backoff = FIRST_BACKOFF;
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn connection(
        &self,
        check: &mut ChainCheck,
        tx: &mpsc::Sender<StreamItem>,
        cancel: &CancellationToken,
    ) -> Ended {
        let from = check.next_seq();
        let request = self
            .gateway
            .request(
                reqwest::Method::GET,
                &match &self.instance {
                    None => format!("/v1/ledger/stream?from={from}"),
                    Some(i) => format!(
                        "/v1/ledger/stream?from={from}&instance={}",
                        warden_core::text::percent_encode(i)
                    ),
                },
            )
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let response = tokio::select! {
            () = cancel.cancelled() => return Ended::Cancelled,
            r = request.send() => r,
        };
        let mut response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot reach the ledger stream; retrying.");
                return Ended::Retry(false);
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Ended::Fatal(StreamError::Refused {
                status: status.as_u16(),
                body: body_snippet(response, 512).await,
            });
        }
        if !status.is_success() {
            tracing::warn!(%status, "The ledger stream answered an error; retrying.");
            return Ended::Retry(false);
        }
        self.connected.store(true, Ordering::Relaxed);
        tracing::info!(from, "Following the ledger stream.");
        let mut parser = SseParser::new(self.max_line_bytes);
        let mut items = Vec::new();
        let mut progress = false;
        loop {
            let chunk = tokio::select! {
                () = cancel.cancelled() => return Ended::Cancelled,
                c = tokio::time::timeout(IDLE_TIMEOUT, response.chunk()) => c,
            };
            let chunk = match chunk {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => {
                    tracing::warn!("The ledger stream ended; reconnecting.");
                    return Ended::Retry(progress);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "The ledger stream failed; reconnecting.");
                    return Ended::Retry(progress);
                }
                Err(_) => {
                    tracing::warn!("The ledger stream went silent; reconnecting.");
                    return Ended::Retry(progress);
                }
            };
            if let Err(e) = parser.push(&chunk, &mut items) {
                return Ended::Fatal(StreamError::Unreadable {
                    seq: check.next_seq(),
                    detail: e.to_string(),
                });
            }
            for item in items.drain(..) {
                let out = match read_item(item, check) {
                    Ok(out) => out,
                    Err(e) => return Ended::Fatal(e),
                };
                for o in out {
                    progress |= matches!(o, StreamItem::Record(_));
                    tokio::select! {
                        () = cancel.cancelled() => return Ended::Cancelled,
                        sent = tx.send(o) => if sent.is_err() { return Ended::Cancelled },
                    }
                }
            }
        }
    }
}

/// What one SSE item becomes: nothing, a head, or a record (after a `Broken` if its chain
/// does not hold).
fn read_item(item: SseItem, check: &mut ChainCheck) -> Result<Vec<StreamItem>, StreamError> {
    match item {
        SseItem::Comment(text) => Ok(text
            .strip_prefix("head ")
            .and_then(|n| n.trim().parse().ok())
            .map(StreamItem::Head)
            .into_iter()
            .collect()),
        SseItem::Event { event, data, .. } => {
            if event.as_deref().is_some_and(|e| e != "record") {
                return Ok(Vec::new());
            }
            let record = Record::from_json_line(&data).map_err(|e| StreamError::Unreadable {
                seq: check.next_seq(),
                detail: e.to_string(),
            })?;
            let mut out = Vec::with_capacity(2);
            if let Err(problem) = check.push(&record) {
                out.push(StreamItem::Broken {
                    seq: record.seq,
                    problem,
                });
            }
            out.push(StreamItem::Record(Box::new(record)));
            Ok(out)
        }
    }
}

/// Reads the stream from the first record up to `upto` and checks the whole chain again, and
/// that the record at `upto.seq` still has the hash the observer read: a record changed (or
/// removed, or the chain rewritten) after the observer read it is found here. Returns the first
/// problem, `None` when intact; `Err` when the stream could not be read to the end.
pub async fn sweep(
    client: &StreamClient,
    upto: Head,
    cancel: &CancellationToken,
) -> Result<Option<Problem>, StreamError> {
    let (tx, mut rx) = mpsc::channel(256);
    let inner = cancel.child_token();
    let reader = StreamClient {
        gateway: client.gateway.clone(),
        max_line_bytes: client.max_line_bytes,
        connected: Arc::new(AtomicBool::new(false)),
        instance: client.instance.clone(),
    };
    let stop = inner.clone();
    let follow = async move { reader.follow(ChainCheck::new(None), tx, stop).await };
    let judge = async move {
        while let Some(item) = rx.recv().await {
            match item {
                StreamItem::Broken { seq, problem } => {
                    inner.cancel();
                    return (seq <= upto.seq).then_some(problem);
                }
                StreamItem::Record(r) if r.seq == upto.seq => {
                    inner.cancel();
                    return (r.hash != upto.hash).then_some(Problem::Changed { seq: r.seq });
                }
                StreamItem::Head(head) if head < upto.seq => {
                    inner.cancel();
                    return Some(Problem::Removed {
                        seq: head.saturating_add(1),
                        next: upto.seq,
                    });
                }
                _ => {}
            }
        }
        None
    };
    let (followed, problem) = tokio::join!(follow, judge);
    followed?;
    Ok(problem)
}
