//! The bounded queue between the ledger follower and the collector, and the sender: batches
//! of at most [`MAX_BATCH`] spans (or what arrived within [`BATCH_WINDOW`]), POSTed as
//! OTLP/HTTP protobuf, retried with backoff and jitter on 429, 5xx and connection errors,
//! then dropped (counted).

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use warden_telemetry::Telemetry;

use crate::encode::encode;
use crate::span::Span;

/// The most spans in one export request.
pub const MAX_BATCH: usize = 512;

/// How long the first span of a batch waits for others.
pub const BATCH_WINDOW: Duration = Duration::from_secs(1);

/// The most spans waiting to be sent; beyond, the oldest are dropped (counted).
pub const MAX_QUEUED: usize = 8 * MAX_BATCH;

/// How long one export request may take (connecting, sending, the collector's answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the last spans may take to send at stop, in all.
pub const FINAL_FLUSH: Duration = Duration::from_secs(3);

/// How many times one batch is tried before it is dropped.
pub const MAX_ATTEMPTS: u32 = 3;

/// The first retry's delay (doubled for each further one, plus up to as much again in jitter).
const RETRY_BASE: Duration = Duration::from_millis(250);

/// Spans waiting to be sent: bounded, the oldest dropped when full.
#[derive(Debug)]
pub struct Queue {
    spans: Mutex<VecDeque<Span>>,
    arrived: Notify,
    capacity: usize,
    telemetry: Arc<Telemetry>,
}

impl Queue {
    /// An empty queue of `capacity` spans, counting what it drops into `telemetry`.
    pub fn new(capacity: usize, telemetry: Arc<Telemetry>) -> Queue {
        Queue {
            spans: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            capacity: capacity.max(1),
            telemetry,
        }
    }

    /// Adds `spans`; never waits (but for a short lock). When the queue is full, the oldest
    /// spans go (counted as dropped).
    pub fn push(&self, spans: impl IntoIterator<Item = Span>) {
        let mut dropped = 0u64;
        let mut added = false;
        {
            let mut q = self.spans.lock().unwrap_or_else(|e| e.into_inner());
            for s in spans {
                if q.len() >= self.capacity {
                    q.pop_front();
                    dropped += 1;
                }
                q.push_back(s);
                added = true;
            }
        }
        if dropped > 0 {
            self.telemetry.otel_dropped(dropped);
        }
        if added {
            self.arrived.notify_one();
        }
    }

    /// How many spans wait.
    pub fn len(&self) -> usize {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no span waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&self, max: usize) -> Vec<Span> {
        let mut q = self.spans.lock().unwrap_or_else(|e| e.into_inner());
        let n = q.len().min(max);
        q.drain(..n).collect()
    }
}

/// Where and how batches are sent.
pub struct Sender {
    /// `{endpoint}/v1/traces`.
    pub url: String,
    /// Extra headers (credentials: never logged).
    pub headers: HeaderMap,
    /// `service.name` of the resource.
    pub service_name: String,
    /// The HTTP client (its timeout is [`REQUEST_TIMEOUT`]).
    pub client: reqwest::Client,
    /// Counters.
    pub telemetry: Arc<Telemetry>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    Retry(String),
    GiveUp(String),
}

impl Sender {
    /// Sends batches from `queue` until `followed` (the follower is done; `stop` cuts retry
    /// waits short); then sends what is left once, within [`FINAL_FLUSH`], and returns.
    pub async fn run(&self, queue: &Queue, stop: &CancellationToken, followed: &CancellationToken) {
        loop {
            if queue.is_empty() {
                tokio::select! {
                    () = queue.arrived.notified() => {}
                    () = followed.cancelled() => break,
                }
            }
            // The batch window: up to a full batch, or what came within it.
            let window = tokio::time::sleep(BATCH_WINDOW);
            tokio::pin!(window);
            while queue.len() < MAX_BATCH {
                tokio::select! {
                    () = &mut window => break,
                    () = queue.arrived.notified() => {}
                    () = followed.cancelled() => break,
                }
            }
            let batch = queue.take(MAX_BATCH);
            if !batch.is_empty() {
                self.deliver(&batch, stop, MAX_ATTEMPTS).await;
            }
        }
        // The follower has flushed its pending spans: one try for what is left, within
        // [`FINAL_FLUSH`] in all (shutdown waits for nothing longer).
        let last = async {
            loop {
                let batch = queue.take(MAX_BATCH);
                if batch.is_empty() {
                    break;
                }
                self.deliver(&batch, &CancellationToken::new(), 1).await;
            }
        };
        if tokio::time::timeout(FINAL_FLUSH, last).await.is_err() {
            let left = u64::try_from(queue.take(usize::MAX).len()).unwrap_or(u64::MAX);
            self.telemetry.otel_dropped(left);
            tracing::warn!(
                spans = left,
                "OpenTelemetry spans were dropped at stop: the collector did not take them in time."
            );
        }
    }

    /// Sends one batch, retrying as the module says; counts the outcome.
    async fn deliver(&self, batch: &[Span], stop: &CancellationToken, attempts: u32) {
        let body = encode(&self.service_name, batch);
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                let delay = backoff(attempt);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => break,
                }
            }
            match self.attempt(body.clone()).await {
                Attempt::Delivered => {
                    self.telemetry.otel_exported(n);
                    return;
                }
                Attempt::Retry(why) => {
                    self.telemetry.otel_failure();
                    last = why;
                }
                Attempt::GiveUp(why) => {
                    self.telemetry.otel_failure();
                    last = why;
                    break;
                }
            }
        }
        self.telemetry.otel_dropped(n);
        tracing::warn!(spans = n, reason = %last, "OpenTelemetry spans were dropped: the collector did not take them.");
    }

    async fn attempt(&self, body: Vec<u8>) -> Attempt {
        let sent = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Attempt::Delivered,
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                Attempt::Retry(format!("the collector answered {}", r.status().as_u16()))
            }
            Ok(r) => Attempt::GiveUp(format!("the collector answered {}", r.status().as_u16())),
            // No URL or credential in the message: reqwest's error text can hold the URL only.
            Err(e) if e.is_timeout() => {
                Attempt::Retry("the collector did not answer in time".to_owned())
            }
            Err(e) if e.is_connect() => {
                Attempt::Retry("the collector could not be reached".to_owned())
            }
            Err(e) if e.is_request() => {
                Attempt::Retry("the request to the collector failed".to_owned())
            }
            Err(_) => Attempt::GiveUp("the request could not be sent".to_owned()),
        }
    }
}

/// The delay before retry `attempt` (1 for the first retry): the base doubled for each, plus
/// up to as much again at random.
fn backoff(attempt: u32) -> Duration {
    let base = RETRY_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(8));
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let jitter = h.finish() % u64::try_from(base.as_millis()).unwrap_or(1).max(1);
    base.saturating_add(Duration::from_millis(jitter))
}
