#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code"
)]

use std::sync::Mutex;

use axum::routing::post;

use super::*;
use crate::response::{Action, Scope};

fn response() -> Response {
    Response {
        action: Action::Alert,
        scope: Scope::Session("s-1".to_owned()),
        tool: None,
        reason: "three denials".to_owned(),
        evidence: vec![7, 8, 9],
        detector: "denials".to_owned(),
        signals: Vec::new(),
        expires_in_secs: None,
    }
}

#[tokio::test]
async fn alerts_reach_the_webhook_and_a_full_queue_drops_without_waiting() {
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
                let kept = kept.clone();
                async move {
                    let event = headers
                        .get("x-warden-event")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    kept.lock().unwrap().push((event, body.0));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let metrics = Arc::new(Metrics::new());
    let (sink, rx) = AlertSink::new(AlertFormat::Json, metrics.clone());
    // More alerts than the queue holds, offered before the worker runs: the rest are dropped,
    // and offering never waits.
    let started = std::time::Instant::now();
    for _ in 0..(QUEUE_CAPACITY + 10) {
        sink.offer(&response(), &Sent::Taken("c-1".to_owned()));
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    drop(sink);
    let target = AlertTarget {
        url: format!("http://{addr}/hook"),
        format: AlertFormat::Json,
    };
    assert!(
        !format!("{target:?}").contains("/hook"),
        "the URL is never shown"
    );
    deliver(reqwest::Client::new(), target, rx, metrics.clone()).await;

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), QUEUE_CAPACITY);
    assert_eq!(seen[0].0, EVENT);
    assert_eq!(seen[0].1["response"]["detector"], "denials");
    assert_eq!(seen[0].1["control"]["id"], "c-1");
    let text = metrics.encode();
    assert!(
        text.contains(&format!(
            "warden_observer_alert_webhook_total{{outcome=\"delivered\"}} {QUEUE_CAPACITY}"
        )),
        "{text}"
    );
    assert!(
        text.contains("warden_observer_alert_webhook_total{outcome=\"dropped\"} 10"),
        "{text}"
    );
}
