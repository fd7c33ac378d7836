//! `GET /v1/ledger/stream`: the ledger as Server-Sent Events, from a sequence number on, then
//! following the committed head live; and `GET /metrics`, the metrics' text exposition.
//!
//! What it guarantees:
//! - one event per record, in sequence order, with no gap and no repeat: `id: <seq>`,
//!   `event: record`, `data: <the record's JSON line>`; only committed (durable) records,
//!   never past the committed head;
//! - resumable: `?from=SEQ` (default 1), or `Last-Event-ID: N` (resumes at N+1; it wins over
//!   `from`); a malformed value or an unknown parameter is `400 invalid_request`;
//! - one chain: this gateway's own, or with `?instance=ID` the chain of that instance of the
//!   fleet (see [`crate::instances`]: a malformed name `400`, an unknown one `404 not_found`);
//!   another instance's head is read from the store every [`POLL_HEAD`] (no watch carries it
//!   here);
//! - back-pressured and bounded: a batch (at most [`MAX_BATCH`] records) is read from the store
//!   only when the previous one was taken by the connection, so a slow reader holds one batch
//!   in memory, not the ledger; at most [`MAX_STREAMS`] streams at once (`503
//!   too_many_streams` beyond);
//! - live: a new record wakes the stream through the ledger's head watch (no polling); when
//!   idle, a comment `: head <committed head>` every [`KEEP_ALIVE`];
//! - it ends when the gateway stops (or the ledger closes), so shutdown never waits on it.
//!
//! The plane does not depend on the ledger's crate: the gateway implements [`LedgerFeed`]
//! (in [`crate::feed`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::OperatorState;
use crate::error::ApiError;
use crate::feed::{FeedFuture, LedgerFeed};

/// The most records read from the store, and written to the socket, in one batch.
pub const MAX_BATCH: usize = 512;
/// The most ledger streams open at once.
pub const MAX_STREAMS: usize = 16;
/// How often an idle stream sends `: head <seq>`.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How often a stream of a chain written by another instance reads its head.
pub const POLL_HEAD: Duration = Duration::from_secs(1);

/// What `GET /metrics` renders: the gateway implements it over its telemetry.
pub trait MetricsSource: Send + Sync + 'static {
    /// The exposition's `Content-Type` and text, read now.
    fn render(&self) -> (&'static str, String);
}

/// The observer's surfaces of the operator plane: the ledger stream and the metrics. Absent
/// ones answer `503 unavailable`.
#[derive(Clone)]
pub struct Observability {
    /// The ledger, for the stream.
    pub feed: Option<Arc<dyn LedgerFeed>>,
    /// The metrics.
    pub metrics: Option<Arc<dyn MetricsSource>>,
    /// The fleet's chains, for `?instance=` and `GET /v1/instances` (absent: `503`).
    pub directory: Option<Arc<dyn crate::instances::LedgerDirectory>>,
    /// The stream slots ([`MAX_STREAMS`]).
    streams: Arc<Semaphore>,
}

impl Observability {
    /// The stream over `feed` and the metrics from `metrics`.
    pub fn new(
        feed: Option<Arc<dyn LedgerFeed>>,
        metrics: Option<Arc<dyn MetricsSource>>,
    ) -> Observability {
        Observability {
            feed,
            metrics,
            directory: None,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        }
    }

    /// The same, with the fleet's chains read through `directory`.
    pub fn with_directory(
        mut self,
        directory: Arc<dyn crate::instances::LedgerDirectory>,
    ) -> Observability {
        self.directory = Some(directory);
        self
    }
}

impl Default for Observability {
    fn default() -> Self {
        Observability::new(None, None)
    }
}

impl std::fmt::Debug for Observability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observability")
            .field("feed", &self.feed.is_some())
            .field("metrics", &self.metrics.is_some())
            .field("directory", &self.directory.is_some())
            .field("free_streams", &self.streams.available_permits())
            .finish()
    }
}

fn unavailable(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("{what} is not available on this gateway"),
    )
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Arc<OperatorState>>) -> Response {
    let Some(source) = state.observability.metrics.clone() else {
        return unavailable("the metrics exposition").into_response();
    };
    let (content_type, text) = source.render();
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// What a stream asks for: where it starts, and which instance's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ask {
    from: u64,
    instance: Option<String>,
}

/// Where a stream starts: `Last-Event-ID` + 1 if present, else `from`, else 1.
#[cfg(test)]
fn start_of(query: Option<&str>, headers: &HeaderMap) -> Result<u64, ApiError> {
    ask_of(query, headers).map(|ask| ask.from)
}

/// The stream's parameters: `from` (or `Last-Event-ID`) and `instance`, each at most once.
fn ask_of(query: Option<&str>, headers: &HeaderMap) -> Result<Ask, ApiError> {
    let mut from = 1;
    let mut instance = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "from" => {
                from = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        ApiError::invalid_request(
                            "`from` must be a sequence number (an integer from 1)",
                        )
                    })?;
            }
            "instance" if instance.is_none() => instance = Some(value.into_owned()),
            "instance" => {
                return Err(ApiError::invalid_request("`instance` is given twice"));
            }
            other => {
                return Err(ApiError::invalid_request(format!(
                    "unknown parameter `{}`: the stream takes only `from` and `instance`",
                    other
                        .chars()
                        .take(64)
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect::<String>()
                )));
            }
        }
    }
    if let Some(last) = headers.get("last-event-id") {
        let last = last
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::invalid_request("`Last-Event-ID` must be a sequence number")
            })?;
        from = last.saturating_add(1);
    }
    Ok(Ask { from, instance })
}

/// `GET /v1/ledger/stream`.
pub(crate) async fn stream(
    State(state): State<Arc<OperatorState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Ask { from, instance } = ask_of(query.as_deref(), &headers)?;
    let feed = match instance {
        Some(instance) => crate::instances::feed_of(&state, &instance).await?,
        None => match state.observability.feed.clone() {
            Some(feed) => feed,
            None => return Err(unavailable("the ledger stream")),
        },
    };
    let Ok(permit) = state.observability.streams.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("at most {MAX_STREAMS} ledger streams may be open at once"),
        ));
    };
    Ok(follow(feed, from, permit))
}

/// The stream's response: records of `feed` from `from` on, then following its head; `permit`
/// (a stream slot) is held until the stream ends or its connection closes.
fn follow(feed: Arc<dyn LedgerFeed>, from: u64, permit: OwnedSemaphorePermit) -> Response {
    let follower = Follower {
        head: feed.watch_head(),
        stopping: feed.stopping(),
        polled: None,
        feed,
        next: from,
        _permit: permit,
    };
    let body = futures::stream::unfold(Some(follower), |state| async move {
        let mut follower = state?;
        match follower.next_chunk().await {
            Step::Send(chunk) => Some((Ok::<_, std::convert::Infallible>(chunk), Some(follower))),
            Step::Last(chunk) => Some((Ok(chunk), None)),
            Step::End => None,
        }
    });
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One open stream: where it is, and what it waits on. Its slot is freed when it is dropped
/// (the connection closed, or the stream ended).
struct Follower {
    feed: Arc<dyn LedgerFeed>,
    head: watch::Receiver<u64>,
    stopping: FeedFuture<'static, ()>,
    /// The head last read from the store, for a feed that polls ([`LedgerFeed::poll_head`]).
    polled: Option<u64>,
    next: u64,
    _permit: OwnedSemaphorePermit,
}

enum Step {
    Send(Bytes),
    Last(Bytes),
    End,
}

impl Follower {
    /// The next chunk: a batch of records as soon as the head is past `next`, else a
    /// keep-alive comment after [`KEEP_ALIVE`] of quiet. Called only when the previous chunk
    /// was taken (the body is polled by the connection as it writes): the back-pressure.
    async fn next_chunk(&mut self) -> Step {
        let mut quiet = Duration::ZERO;
        loop {
            if self.polled.is_none()
                && let Some(polling) = self.feed.poll_head()
            {
                match polling.await {
                    Ok(head) => self.polled = Some(head),
                    Err(e) => return Step::Last(error_event(&e)),
                }
            }
            let head = match self.polled {
                Some(head) => head,
                None => *self.head.borrow_and_update(),
            };
            if head >= self.next {
                let room = head.saturating_sub(self.next).saturating_add(1);
                let limit = usize::try_from(room).unwrap_or(MAX_BATCH).min(MAX_BATCH);
                let batch = match self.feed.range(self.next, limit).await {
                    Ok(batch) => batch,
                    Err(e) => return Step::Last(error_event(&e)),
                };
                let mut chunk = String::new();
                for record in batch.iter().take_while(|r| r.seq <= head) {
                    if record.seq != self.next {
                        // A gap (or a repeat) would break the reader's chain: stop instead.
                        return Step::Last(error_event(&format!(
                            "the ledger has no record {} (found {})",
                            self.next, record.seq
                        )));
                    }
                    chunk.push_str(&format!(
                        "id: {}\nevent: record\ndata: {}\n\n",
                        record.seq, record.line
                    ));
                    self.next = record.seq.saturating_add(1);
                }
                if !chunk.is_empty() {
                    return Step::Send(Bytes::from(chunk));
                }
                if batch.is_empty() {
                    return Step::Last(error_event(&format!(
                        "the ledger's head is {head} but record {} cannot be read",
                        self.next
                    )));
                }
            }
            if self.polled.is_some() {
                // Another instance's chain: its head is read again after a pause.
                tokio::select! {
                    () = tokio::time::sleep(POLL_HEAD) => {}
                    () = &mut self.stopping => return Step::End,
                }
                let Some(polling) = self.feed.poll_head() else {
                    return Step::End;
                };
                match polling.await {
                    Ok(now) if now > head => {
                        self.polled = Some(now);
                        quiet = Duration::ZERO;
                    }
                    Ok(_) => {
                        quiet = quiet.saturating_add(POLL_HEAD);
                        if quiet >= KEEP_ALIVE {
                            return Step::Send(Bytes::from(format!(": head {head}\n\n")));
                        }
                    }
                    Err(e) => return Step::Last(error_event(&e)),
                }
                continue;
            }
            tokio::select! {
                changed = self.head.changed() => {
                    if changed.is_err() {
                        // The ledger closed: nothing more will come.
                        return Step::End;
                    }
                }
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    let head = *self.head.borrow();
                    return Step::Send(Bytes::from(format!(": head {head}\n\n")));
                }
                () = &mut self.stopping => return Step::End,
            }
        }
    }
}

/// An `error` event (the stream ends after it): `data` is `{"error": "<sentence>"}`.
fn error_event(message: &str) -> Bytes {
    let data = serde_json::json!({ "error": message });
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failed step is a failed test; the server task ends with the test"
)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::feed::FeedRecord;

    /// A ledger of `head` records of about 4 KiB each (made up on demand), counting the
    /// batches read.
    struct CountingFeed {
        head: watch::Sender<u64>,
        batches: AtomicU64,
    }

    impl LedgerFeed for CountingFeed {
        fn range(
            &self,
            from: u64,
            limit: usize,
        ) -> FeedFuture<'_, Result<Vec<FeedRecord>, String>> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            let head = *self.head.borrow();
            let filler = "x".repeat(4096);
            let records = (from..=head)
                .take(limit)
                .map(|seq| FeedRecord {
                    seq,
                    line: format!(r#"{{"seq":{seq},"filler":"{filler}"}}"#),
                })
                .collect();
            Box::pin(async move { Ok(records) })
        }
        fn watch_head(&self) -> watch::Receiver<u64> {
            self.head.subscribe()
        }
        fn stopping(&self) -> FeedFuture<'static, ()> {
            Box::pin(std::future::pending())
        }
    }

    /// A reader that connects and reads nothing: the stream stops reading the store once the
    /// connection's buffers are full, instead of loading the whole ledger into memory.
    #[tokio::test]
    async fn a_stalled_reader_stops_the_reads() {
        const HEAD: u64 = 100_000;
        let feed = Arc::new(CountingFeed {
            head: watch::Sender::new(HEAD),
            batches: AtomicU64::new(0),
        });
        let slots = Arc::new(Semaphore::new(1));
        let served = feed.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let feed: Arc<dyn LedgerFeed> = served.clone();
                let permit = slots.clone().try_acquire_owned().unwrap();
                async move { follow(feed, 1, permit) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        // Long enough to read all 196 batches (400 MB) if nothing held the stream back.
        let mut last = 0;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            last = feed.batches.load(Ordering::SeqCst);
        }
        let total_batches = HEAD.div_ceil(MAX_BATCH as u64);
        // The socket buffers hold some megabytes (a few thousand 4 KiB records): a handful
        // of batches, far from the ledger.
        assert!(last >= 1, "nothing was read");
        assert!(
            last <= 40,
            "{last} of {total_batches} batches read for a reader that reads nothing"
        );
        // It stays there.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(feed.batches.load(Ordering::SeqCst), last);
        drop(client);
        server.abort();
    }

    /// Another instance's chain: no watch moves, the head is polled from the store.
    struct PolledFeed {
        head: std::sync::Mutex<u64>,
        idle: watch::Sender<u64>,
        polls: AtomicU64,
    }

    impl LedgerFeed for PolledFeed {
        fn range(
            &self,
            from: u64,
            limit: usize,
        ) -> FeedFuture<'_, Result<Vec<FeedRecord>, String>> {
            let head = *self.head.lock().unwrap();
            let records = (from..=head)
                .take(limit)
                .map(|seq| FeedRecord {
                    seq,
                    line: format!(r#"{{"seq":{seq}}}"#),
                })
                .collect();
            Box::pin(async move { Ok(records) })
        }
        fn watch_head(&self) -> watch::Receiver<u64> {
            self.idle.subscribe()
        }
        fn stopping(&self) -> FeedFuture<'static, ()> {
            Box::pin(std::future::pending())
        }
        fn poll_head(&self) -> Option<FeedFuture<'_, Result<u64, String>>> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            let head = *self.head.lock().unwrap();
            Some(Box::pin(async move { Ok(head) }))
        }
    }

    #[tokio::test]
    async fn a_polled_chain_streams_what_its_head_reaches() {
        let feed = Arc::new(PolledFeed {
            head: std::sync::Mutex::new(2),
            idle: watch::Sender::new(0),
            polls: AtomicU64::new(0),
        });
        let mut follower = Follower {
            head: feed.watch_head(),
            stopping: feed.stopping(),
            polled: None,
            feed: feed.clone(),
            next: 1,
            _permit: Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap(),
        };
        let text = |step: Step| match step {
            Step::Send(b) | Step::Last(b) => String::from_utf8(b.to_vec()).unwrap(),
            Step::End => String::new(),
        };
        let first = text(follower.next_chunk().await);
        assert!(
            first.contains("id: 1\n") && first.contains("id: 2\n"),
            "{first}"
        );
        // The other instance commits record 3: the next poll finds it, no watch involved.
        *feed.head.lock().unwrap() = 3;
        let next = text(follower.next_chunk().await);
        assert!(next.starts_with("id: 3\n"), "{next}");
        // Quiet: a keep-alive after KEEP_ALIVE of polls that found nothing.
        let quiet = text(follower.next_chunk().await);
        assert_eq!(quiet, ": head 3\n\n");
        assert!(feed.polls.load(Ordering::SeqCst) >= 5);
    }

    #[test]
    fn the_instance_parameter_is_taken_once() {
        let headers = HeaderMap::new();
        let ask = ask_of(Some("instance=gw-2&from=3"), &headers).unwrap();
        assert_eq!(ask.from, 3);
        assert_eq!(ask.instance.as_deref(), Some("gw-2"));
        let e = ask_of(Some("instance=a&instance=b"), &headers).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn last_event_id_wins_over_from() {
        let mut headers = HeaderMap::new();
        assert_eq!(start_of(None, &headers), Ok(1));
        assert_eq!(start_of(Some("from=7"), &headers), Ok(7));
        headers.insert("last-event-id", HeaderValue::from_static("41"));
        assert_eq!(start_of(Some("from=7"), &headers), Ok(42));
    }

    #[test]
    fn malformed_starts_are_refused() {
        let headers = HeaderMap::new();
        for bad in [
            "from=0",
            "from=-1",
            "from=x",
            "from=",
            "start=3",
            "from=99999999999999999999",
        ] {
            let e = start_of(Some(bad), &headers).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("last-event-id", HeaderValue::from_static("abc"));
        assert_eq!(
            start_of(None, &headers).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
