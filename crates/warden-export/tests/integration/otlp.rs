//! The OTLP logs sink against a real OTLP/HTTP receiver (axum, decoding with the official
//! `opentelemetry-proto` message types): one log record per ledger record, body the exact
//! JSON line, the attributes and the time; the copy verifies.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message as _;
use tokio_util::task::TaskTracker;
use warden_export::{SinkConfig, Target};

use super::common::*;

#[derive(Default)]
struct Logs {
    requests: Vec<(HeaderMap, ExportLogsServiceRequest)>,
}

async fn logs(State(s): State<Arc<Mutex<Logs>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let req = ExportLogsServiceRequest::decode(body).unwrap();
    s.lock().unwrap().requests.push((headers, req));
    StatusCode::OK
}

fn string(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_log_record_per_ledger_record_whose_body_verifies() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    append(&ledger, 1500).await;
    let state = Arc::new(Mutex::new(Logs::default()));
    let app = Router::new()
        .route("/v1/logs", post(logs))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    TaskTracker::new().spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sink = SinkConfig::new(
        "collector",
        Target::OtlpLogs {
            endpoint: endpoint.clone(),
            headers: vec![("x-api-key".to_owned(), "k3y".to_owned())],
        },
    );
    let run = Running::start(sink, data.path(), &ledger).await;
    run.acked(1500).await;
    run.stop().await;
    let records = all(&reader).await;
    let requests = std::mem::take(&mut state.lock().unwrap().requests);
    let mut lines = Vec::new();
    for (headers, req) in &requests {
        assert_eq!(headers["x-api-key"], "k3y");
        let rl = &req.resource_logs[0];
        let resource: Vec<_> = rl
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), string(&kv.value)))
            .collect();
        assert!(resource.contains(&("warden.ledger".to_owned(), "ledger-under-test".to_owned())));
        assert!(resource.contains(&("service.name".to_owned(), "warden".to_owned())));
        for log in &rl.scope_logs[0].log_records {
            let body = string(&log.body);
            let seq = log
                .attributes
                .iter()
                .find(|kv| kv.key == "warden.seq")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Any::IntValue(n) => Some(*n as u64),
                    _ => None,
                })
                .unwrap();
            let r = &records[seq as usize - 1];
            assert_eq!(body, r.to_json_line());
            assert_eq!(log.time_unix_nano as i128, r.time.unix_timestamp_nanos());
            let attr = |k: &str| {
                log.attributes
                    .iter()
                    .find(|kv| kv.key == k)
                    .map(|kv| string(&kv.value))
            };
            assert_eq!(attr("warden.kind").unwrap(), r.kind.as_str());
            assert_eq!(attr("warden.session"), r.session.clone());
            assert_eq!(
                attr("warden.hash").unwrap(),
                warden_core::canonical::hex(&r.hash)
            );
            lines.push(body);
        }
    }
    assert_eq!(check_copy(&lines, &records, true), 0);
    ledger.shutdown().await.unwrap();
}
