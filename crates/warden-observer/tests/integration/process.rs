//! The observer process against a small fake gateway on a real socket: the ledger stream in,
//! the control API, the heartbeat and the store around the engine (`warden_observer::run`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code"
)]

use super::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden_audit::Record;
use warden_audit::chain::GENESIS_HASH;
use warden_core::SystemClock;
use warden_observer::store::Store;
use warden_observer::stream::DEFAULT_MAX_LINE_BYTES;
use warden_observer::synth::Synth;
use warden_observer::{GatewayClient, ObserverConfig, Token};

/// What the fake gateway serves and saw.
#[derive(Default)]
struct Fake {
    records: Vec<Record>,
    froms: Vec<u64>,
    controls: Vec<Value>,
    heartbeats: Vec<Value>,
    tokens: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn bearer(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn stream(
    State(fake): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let from: u64 = q.get("from").and_then(|f| f.parse().ok()).unwrap_or(1);
    let mut f = fake.lock().unwrap();
    f.froms.push(from);
    f.tokens.push(bearer(&headers));
    let mut body = String::new();
    for r in f.records.iter().filter(|r| r.seq >= from) {
        body.push_str(&format!(
            "id: {}\nevent: record\ndata: {}\n\n",
            r.seq,
            r.to_json_line()
        ));
    }
    body.push_str(&format!(": head {}\n\n", f.records.len()));
    // The connection stays open after the records, as the gateway's does.
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(body.into_bytes())])
        .chain(futures::stream::pending());
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

async fn controls(
    State(fake): State<Shared>,
    headers: axum::http::HeaderMap,
    body: axum::Json<Value>,
) -> impl IntoResponse {
    let mut f = fake.lock().unwrap();
    f.tokens.push(bearer(&headers));
    f.controls.push(body.0);
    let id = format!("c-{}", f.controls.len());
    (
        StatusCode::CREATED,
        axum::Json(json!({"control": {"id": id}})),
    )
}

async fn heartbeat(
    State(fake): State<Shared>,
    headers: axum::http::HeaderMap,
    body: axum::Json<Value>,
) -> StatusCode {
    let mut f = fake.lock().unwrap();
    f.tokens.push(bearer(&headers));
    f.heartbeats.push(body.0);
    StatusCode::NO_CONTENT
}

async fn fake_gateway(fake: Shared) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/v1/ledger/stream", get(stream))
        .route("/v1/controls", post(controls))
        .route("/v1/observer/heartbeat", post(heartbeat))
        .with_state(fake);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
    });
    (format!("http://{addr}"), cancel)
}

/// A small ledger, hash-chained: a session and a few reads.
fn ledger() -> Vec<Record> {
    let mut s = Synth::new(common::START_MS);
    s.open("s-1", "demo", "alice");
    for i in 0..5 {
        s.action(
            "s-1",
            "fs.read_file",
            json!({"path": format!("/workspace/src/{i}.rs")}),
            "allow",
        );
        s.advance(1_000);
    }
    let mut prev = GENESIS_HASH;
    let mut out = Vec::new();
    for mut r in s.records {
        r.prev_hash = prev;
        r.hash = r.compute_hash().unwrap();
        prev = r.hash;
        out.push(r);
    }
    out
}

const OBSERVER: &str =
    "  detectors:\n    - { id: ledger, kind: ledger_integrity, response: frozen }\n";

fn config(base: &str, data: &std::path::Path) -> ObserverConfig {
    ObserverConfig {
        gateway: GatewayClient::new(base, Token::new("wo_observer")).unwrap(),
        charter_path: data.join("unused-charter.yaml"),
        charter: common::charter(OBSERVER),
        others: Vec::new(),
        data_dir: data.to_path_buf(),
        metrics_listener: None,
        metrics_token: Token::new("wo_observer"),
        alert: None,
        heartbeat_interval: Some(Duration::from_millis(100)),
        checkpoint_interval: Duration::from_millis(100),
        sweep_interval: None,
        max_line_bytes: DEFAULT_MAX_LINE_BYTES,
    }
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_broken_chain_is_sent_as_the_charters_response_with_heartbeats_and_a_checkpoint() {
    let fake = Shared::default();
    let mut records = ledger();
    let n = records.len() as u64;
    // Record 4 changed after it was hashed.
    records[3].payload = json!({"tampered": true});
    fake.lock().unwrap().records = records;
    let (base, stop_gateway) = fake_gateway(fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();

    let cancel = CancellationToken::new();
    let running = tokio::spawn(warden_observer::run(
        config(&base, tmp.path()),
        Arc::new(SystemClock),
        cancel.clone(),
    ));

    let control = until("the control", || {
        fake.lock().unwrap().controls.first().cloned()
    })
    .await;
    assert_eq!(control["action"], "frozen", "{control}");
    assert_eq!(control["scope"], "gateway", "{control}");
    assert_eq!(control["detector"], "ledger", "{control}");
    assert!(
        control["evidence"].as_array().unwrap().contains(&json!(4)),
        "{control}"
    );
    until("a heartbeat at the head", || {
        fake.lock()
            .unwrap()
            .heartbeats
            .iter()
            .any(|h| h["head"] == json!(n))
            .then_some(())
    })
    .await;
    cancel.cancel();
    running.await.unwrap().unwrap();

    {
        let f = fake.lock().unwrap();
        assert!(
            f.tokens.iter().all(|t| t == "Bearer wo_observer"),
            "{:?}",
            f.tokens
        );
        assert_eq!(
            f.controls.len(),
            1,
            "one break, one response: {:?}",
            f.controls
        );
    }
    let (store, _) = Store::open(tmp.path()).unwrap();
    let checkpoint = store.checkpoint().unwrap().expect("a checkpoint");
    assert_eq!(checkpoint.head.seq, n);
    assert!(
        checkpoint.engine.is_some(),
        "the engine's state is saved with it"
    );
    let sent = store.responses(10).unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].control.as_deref(), Some("c-1"));
    drop(store);

    // Restarted: it reads on from the record after its checkpoint; nothing is sent again.
    let before = fake.lock().unwrap().froms.len();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(warden_observer::run(
        config(&base, tmp.path()),
        Arc::new(SystemClock),
        cancel.clone(),
    ));
    until("the resumed stream", || {
        (fake.lock().unwrap().froms.len() > before).then_some(())
    })
    .await;
    assert_eq!(fake.lock().unwrap().froms[before], n + 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(fake.lock().unwrap().controls.len(), 1);
    stop_gateway.cancel();
}

#[tokio::test]
async fn no_heartbeat_is_sent_while_the_stream_cannot_be_read() {
    // A gateway whose stream answers 503: the observer keeps retrying and never heartbeats.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let beats = Arc::new(Mutex::new(0u32));
    let counted = beats.clone();
    let app = Router::new()
        .route(
            "/v1/ledger/stream",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        )
        .route(
            "/v1/observer/heartbeat",
            post(move || {
                let counted = counted.clone();
                async move {
                    *counted.lock().unwrap() += 1;
                    StatusCode::NO_CONTENT
                }
            }),
        );
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(s.cancelled_owned())
            .await
            .unwrap();
    });
    let tmp = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(warden_observer::run(
        config(&format!("http://{addr}"), tmp.path()),
        Arc::new(SystemClock),
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    cancel.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(*beats.lock().unwrap(), 0);
    stop.cancel();
}
