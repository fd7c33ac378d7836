#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! The sender against a real HTTP collector on a loopback socket (axum): protobuf bodies the
//! official message types decode, retries on 503, no retry on 400, and the counters.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio_util::sync::CancellationToken;
use warden_otel::span::{Attrs, Kind, Span};
use warden_otel::{Queue, Sender, send};
use warden_telemetry::{Bounds, Telemetry};

#[derive(Default)]
struct Collector {
    /// Statuses to answer, in order; 200 once they are used up.
    answers: Vec<u16>,
    bodies: Vec<(HeaderMap, Bytes)>,
}

async fn traces(
    State(c): State<Arc<Mutex<Collector>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut c = c.lock().unwrap();
    c.bodies.push((headers, body));
    let status = if c.answers.is_empty() {
        200
    } else {
        c.answers.remove(0)
    };
    StatusCode::from_u16(status).unwrap()
}

async fn collector(answers: Vec<u16>) -> (String, Arc<Mutex<Collector>>) {
    let state = Arc::new(Mutex::new(Collector {
        answers,
        bodies: Vec::new(),
    }));
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The server lives as long as the test's runtime.
    tokio_util::task::TaskTracker::new()
        .spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1/traces"), state)
}

fn span(name: &str) -> Span {
    Span {
        trace_id: [1; 16],
        span_id: [2; 8],
        parent: None,
        trace_state: None,
        name: name.to_owned(),
        kind: Kind::Client,
        start_ns: 1,
        end_ns: 2,
        attrs: Attrs::default(),
        events: Vec::new(),
        error: None,
    }
}

fn metric(t: &Telemetry, name: &str) -> f64 {
    let text = t.encode();
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn send_all(url: String, spans: Vec<Span>, telemetry: Arc<Telemetry>) {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", "Bearer t0ken".parse().unwrap());
    let sender = Sender {
        url,
        headers,
        service_name: "svc".to_owned(),
        client: reqwest::Client::new(),
        telemetry: telemetry.clone(),
    };
    let queue = Queue::new(send::MAX_QUEUED, telemetry);
    queue.push(spans);
    let followed = CancellationToken::new();
    // The follower is done at once: the sender sends what is queued (one try) and returns.
    followed.cancel();
    sender
        .run(&queue, &CancellationToken::new(), &followed)
        .await;
}

#[tokio::test]
async fn batches_are_otlp_protobuf_with_the_configured_headers() {
    let (url, c) = collector(vec![]).await;
    let telemetry = Arc::new(Telemetry::new(Bounds::default()));
    send_all(
        url,
        vec![span("chat fast"), span("execute_tool fs.read")],
        telemetry.clone(),
    )
    .await;
    let c = c.lock().unwrap();
    let (headers, body) = &c.bodies[0];
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["authorization"], "Bearer t0ken");
    let req = ExportTraceServiceRequest::decode(body.clone()).unwrap();
    let rs = &req.resource_spans[0];
    let names: Vec<&str> = rs.scope_spans[0]
        .spans
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["chat fast", "execute_tool fs.read"]);
    assert_eq!(rs.scope_spans[0].scope.as_ref().unwrap().name, "warden");
    assert_eq!(metric(&telemetry, "warden_otel_spans_exported_total"), 2.0);
    assert_eq!(metric(&telemetry, "warden_otel_spans_dropped_total"), 0.0);
}

#[tokio::test]
async fn a_503_is_retried_and_a_400_is_dropped_without_retry() {
    // Following: retries happen while the follower runs.
    let (url, c) = collector(vec![503, 503]).await;
    let telemetry = Arc::new(Telemetry::new(Bounds::default()));
    let sender = Sender {
        url,
        headers: HeaderMap::new(),
        service_name: "svc".to_owned(),
        client: reqwest::Client::new(),
        telemetry: telemetry.clone(),
    };
    let queue = Queue::new(send::MAX_QUEUED, telemetry.clone());
    let followed = CancellationToken::new();
    let stop = CancellationToken::new();
    queue.push(vec![span("a")]);
    let run = sender.run(&queue, &stop, &followed);
    let watch = async {
        while c.lock().unwrap().bodies.len() < 3 {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        followed.cancel();
    };
    tokio::join!(run, watch);
    assert_eq!(metric(&telemetry, "warden_otel_export_failures_total"), 2.0);
    assert_eq!(metric(&telemetry, "warden_otel_spans_exported_total"), 1.0);

    let (url, c) = collector(vec![400]).await;
    let telemetry = Arc::new(Telemetry::new(Bounds::default()));
    send_all(url, vec![span("b"), span("c")], telemetry.clone()).await;
    assert_eq!(c.lock().unwrap().bodies.len(), 1);
    assert_eq!(metric(&telemetry, "warden_otel_export_failures_total"), 1.0);
    assert_eq!(metric(&telemetry, "warden_otel_spans_dropped_total"), 2.0);
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_them() {
    let telemetry = Arc::new(Telemetry::new(Bounds::default()));
    let queue = Queue::new(2, telemetry.clone());
    queue.push(vec![span("1"), span("2"), span("3")]);
    assert_eq!(queue.len(), 2);
    assert_eq!(metric(&telemetry, "warden_otel_spans_dropped_total"), 1.0);
}
