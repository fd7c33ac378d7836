#![allow(clippy::unwrap_used, clippy::disallowed_methods, reason = "test code")]

use super::*;

#[tokio::test]
async fn metrics_answer_only_the_metrics_token_and_label_values_are_bounded() {
    let metrics = Arc::new(Metrics::new());
    metrics.head(120);
    metrics.read(100);
    metrics.detected("new_resource_burst");
    metrics.detected("an agent-chosen kind");
    metrics.webhook("dropped");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(serve(
        listener,
        router(metrics.clone(), Token::new("metrics-secret")),
        cancel.clone(),
    ));
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    for token in [
        None,
        Some("wa_agent_session_token"),
        Some("metrics-secre"),
        Some("metrics-secretX"),
    ] {
        let mut req = http.get(&url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{token:?}");
        assert!(!r.text().await.unwrap().contains("warden_observer"));
    }
    let r = http
        .get(&url)
        .bearer_auth("metrics-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for line in [
        "warden_observer_records_read_total 1",
        "warden_observer_head 120",
        "warden_observer_last_read 100",
        "warden_observer_lag_records 20",
        "warden_observer_detections_total{kind=\"new_resource_burst\"} 1",
        "warden_observer_detections_total{kind=\"other\"} 1",
        "warden_observer_alert_webhook_total{outcome=\"dropped\"} 1",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    assert!(!text.contains("agent-chosen"));
    cancel.cancel();
}
