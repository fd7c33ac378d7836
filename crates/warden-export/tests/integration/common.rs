//! Ledgers, sinks and checks shared by the tests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_audit::chain::{RecordRef, canonical_json, format_time};
use warden_audit::{Ledger, LedgerConfig, LedgerReader, NewRecord, Record, RecordKind, Verifier};
use warden_core::SystemClock;
use warden_export::retry::RetryPolicy;
use warden_export::{Exporter, SinkConfig};
use warden_telemetry::{Bounds, Telemetry};

/// Short retry delays, so tests wait little.
pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(100),
        slow: Duration::from_millis(100),
        max_retry_after: Duration::from_millis(200),
    }
}

/// A ledger in `dir`, and a reader of it.
pub(crate) async fn ledger(dir: &Path) -> (Ledger, LedgerReader) {
    let ledger = Ledger::open(dir, Arc::new(SystemClock), LedgerConfig::default())
        .await
        .unwrap();
    let reader = LedgerReader::open(dir).await.unwrap();
    (ledger, reader)
}

/// Appends `n` records (sessions and payload sizes vary), in batches.
pub(crate) async fn append(ledger: &Ledger, n: usize) {
    let mut left = n;
    while left > 0 {
        let take = left.min(500);
        let batch = (0..take)
            .map(|i| {
                NewRecord::new(
                    (i % 3 != 0).then_some("s-1"),
                    RecordKind::ActionAttempted,
                    json!({ "tool": "fs.read_file", "i": i, "pad": "x".repeat(i % 200) }),
                )
            })
            .collect();
        ledger.append_batch(batch).await.unwrap();
        left -= take;
    }
}

/// An exporter of `sink` on the ledger in `data`, running on `tasks` until `stop`.
pub(crate) struct Running {
    pub(crate) tasks: TaskTracker,
    pub(crate) stop: CancellationToken,
    pub(crate) stats: Arc<warden_export::Stats>,
    pub(crate) telemetry: Arc<Telemetry>,
}

impl Running {
    pub(crate) async fn start(sink: SinkConfig, data: &Path, ledger: &Ledger) -> Running {
        let reader = LedgerReader::open(data).await.unwrap();
        let exporter = Exporter::open(sink, data, &reader, "ledger-under-test")
            .await
            .unwrap()
            .with_retry(fast_retry())
            .with_announce_every(Duration::from_millis(100));
        let stats = exporter.stats();
        let telemetry = Arc::new(Telemetry::new(Bounds::default()));
        let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
        tasks.spawn(exporter.run(
            reader,
            ledger.watch_head(),
            ledger.clone(),
            telemetry.clone(),
            stop.clone(),
        ));
        tasks.close();
        Running {
            tasks,
            stop,
            stats,
            telemetry,
        }
    }

    /// Waits until the sink acknowledged `seq`.
    pub(crate) async fn acked(&self, seq: u64) {
        let stats = self.stats.clone();
        wait_for(&format!("record {seq} acknowledged"), move || {
            stats.acked.load(std::sync::atomic::Ordering::Acquire) >= seq
        })
        .await;
    }

    pub(crate) async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.tasks.wait())
            .await
            .expect("the exporter stops");
    }
}

/// Polls `check` until true; fails after a generous deadline (never a timing assertion).
pub(crate) async fn wait_for(what: &str, check: impl Fn() -> bool) {
    for _ in 0..3000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Every record of the ledger, in order.
pub(crate) async fn all(reader: &LedgerReader) -> Vec<Record> {
    let mut out = Vec::new();
    loop {
        let page = reader.range(out.len() as u64 + 1, 1000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Checks an exported copy (records as JSON lines, in the order received) against the
/// ledger: exact repeats (same seq, same hash) are allowed within the last 4096 records when
/// `repeats` (HTTP), none otherwise (files); the rest must be exactly the ledger's records,
/// in order, and the copy's chain must verify on its own. Returns how many repeats it held.
pub(crate) fn check_copy(lines: &[String], ledger: &[Record], repeats: bool) -> usize {
    let mut seen: Vec<(u64, [u8; 32])> = Vec::new();
    let mut verifier = Verifier::new();
    let mut repeated = 0;
    for line in lines {
        let r = Record::from_json_line(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(last) = seen.last()
            && r.seq <= last.0
        {
            let earlier = seen
                .iter()
                .rev()
                .take(4096)
                .find(|(s, _)| *s == r.seq)
                .unwrap_or_else(|| panic!("record {} out of order after {}", r.seq, last.0));
            assert_eq!(earlier.1, r.hash, "a repeat of {} with another hash", r.seq);
            assert!(
                repeats,
                "record {} repeated in a copy that allows none",
                r.seq
            );
            repeated += 1;
            continue;
        }
        let time = format_time(r.time).unwrap();
        let payload = canonical_json(&r.payload);
        verifier
            .push(&RecordRef {
                seq: r.seq,
                time: &time,
                session: r.session.as_deref(),
                kind: r.kind.as_str(),
                payload: &payload,
                prev_hash: &r.prev_hash,
                hash: &r.hash,
            })
            .unwrap_or_else(|p| panic!("the copy does not verify: {p}"));
        seen.push((r.seq, r.hash));
    }
    let got: Vec<u64> = seen.iter().map(|s| s.0).collect();
    let want: Vec<u64> = ledger.iter().map(|r| r.seq).collect();
    assert_eq!(got.len(), want.len(), "records missing from the copy");
    assert_eq!(got, want);
    for (line, r) in lines.iter().zip(ledger) {
        if !repeats {
            assert_eq!(line, &r.to_json_line(), "the copy holds the exact line");
        }
    }
    repeated
}

/// What an HTTP sink does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Keep the records, answer 200.
    Ok,
    /// Answer this status without keeping anything.
    Status(u16),
    /// Keep the records, then answer this status anyway (a lost acknowledgement).
    KeepThenStatus(u16),
    /// Never answer (until the mode changes).
    Hang,
}

/// A JSON sink: keeps every record it took (as its JSON line, canonical form), and the
/// requests' headers.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub(crate) mode: Mode,
    pub(crate) lines: Vec<String>,
    pub(crate) bodies: usize,
    pub(crate) headers: Vec<HeaderMap>,
    pub(crate) ledger_ids: Vec<String>,
    /// Extra answer headers (`Retry-After`).
    pub(crate) answer_headers: HashMap<String, String>,
    /// An answer body to send (size in bytes), for the bounded-read test.
    pub(crate) answer_bytes: usize,
}

pub(crate) type Shared = Arc<Mutex<Receiver>>;

async fn ingest(State(r): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mode = r.lock().unwrap().mode;
    if mode == Mode::Hang {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if r.lock().unwrap().mode != Mode::Hang {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    }
    let mut g = r.lock().unwrap();
    g.headers.push(headers.clone());
    if let Mode::Status(code) = mode {
        return answer(&g, code);
    }
    assert_eq!(headers["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&body).unwrap();
    g.ledger_ids.push(v["ledger"].as_str().unwrap().to_owned());
    for rec in v["records"].as_array().unwrap() {
        // Back to the record's JSON line (the sink got its object).
        let r = Record::from_json_line(&rec.to_string()).unwrap();
        g.lines.push(r.to_json_line());
    }
    g.bodies += 1;
    match mode {
        Mode::KeepThenStatus(code) => {
            // Once: the next request is answered 200.
            g.mode = Mode::Ok;
            answer(&g, code)
        }
        _ => answer(&g, 200),
    }
}

fn answer(g: &Receiver, code: u16) -> Response {
    let mut resp = (
        StatusCode::from_u16(code).unwrap(),
        vec![b'z'; g.answer_bytes],
    )
        .into_response();
    for (k, v) in &g.answer_headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    resp
}

/// A receiver on `addr` (`127.0.0.1:0` for any port); its URL and state, and the token that
/// stops it.
pub(crate) async fn receiver(
    addr: &str,
    state: Option<Shared>,
) -> (String, Shared, CancellationToken) {
    let state = state.unwrap_or_else(|| {
        Arc::new(Mutex::new(Receiver {
            mode: Mode::Ok,
            lines: Vec::new(),
            bodies: 0,
            headers: Vec::new(),
            ledger_ids: Vec::new(),
            answer_headers: HashMap::new(),
            answer_bytes: 0,
        }))
    });
    let app = Router::new()
        .route("/ingest", post(ingest))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let until = stop.clone();
    TaskTracker::new().spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { until.cancelled().await })
            .await
            .unwrap()
    });
    (url, state, stop)
}
