//! The audit routes under attack: no credential, a forged one, the agent's session token, an
//! approver's, malformed, oversized, duplicated and out-of-range query values; and a gateway
//! that signs nothing answers `404` for the checkpoint.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use warden_core::SystemClock;
use warden_gateway::config::checkpoints::CheckpointConfig;

use super::checkpoints::get;
use super::{Harness, Start as _};

const ROUTES: [&str; 3] = [
    "/v1/audit/checkpoint",
    "/v1/audit/consistency?old=1&new=2",
    "/v1/audit/inclusion?seq=1&size=2",
];

async fn signing_gateway() -> (Harness, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("checkpoint.key");
    warden_audit::checkpoint::SigningKey::generate("test.example/warden")
        .unwrap()
        .write_new(&path)
        .unwrap();
    let h = Harness::start_configured(Arc::new(SystemClock), "", move |c| {
        c.checkpoints = Some(CheckpointConfig {
            every: Duration::from_secs(3600),
            ..CheckpointConfig::with_key(path)
        });
    })
    .await;
    (h, keys)
}

async fn token_of(h: &Harness, body: Value) -> String {
    let (status, got) = h
        .operator(
            reqwest::Method::POST,
            "/v1/operator-tokens",
            &h.operator_token,
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{got}");
    got["token"].as_str().unwrap().to_owned()
}

fn code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_and_observers_reach_the_audit_routes() {
    let (h, _keys) = signing_gateway().await;
    let (_session, agent_token) = h.open_session("1h").await;
    h.call(&agent_token, "hello").await;
    let observer = token_of(&h, json!({ "name": "observer-1", "role": "observer" })).await;
    let approver = h.approver_token("bob").await;
    for route in ROUTES {
        // No credential at all.
        let resp = h
            .http
            .get(format!("http://{}{route}", h.operator_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{route}");
        // A forged operator token, and a malformed header value.
        let (status, _, body) = get(&h, route, "wo_forged0000000000000000000000").await;
        assert_eq!(
            (status, code(&body).as_str()),
            (401, "unauthenticated"),
            "{route}"
        );
        let (status, _, _) = get(&h, route, "not a token").await;
        assert_eq!(status, 401, "{route}");
        // The agent's own session token.
        let (status, _, body) = get(&h, route, &agent_token).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (403, "wrong_plane"),
            "{route}"
        );
        // An approver's credential.
        let (status, _, body) = get(&h, route, &approver).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (403, "admin_only"),
            "{route}"
        );
        // An observer's and the admin's.
        let (status, _, body) = get(&h, route, &observer).await;
        assert_eq!(status, 200, "{route}: {body}");
        let (status, _, body) = get(&h, route, &h.operator_token).await;
        assert_eq!(status, 200, "{route}: {body}");
    }
    // The agent plane does not serve them at all.
    let resp = h
        .http
        .get(format!("http://{}/v1/audit/checkpoint", h.agent_addr))
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_range_queries_are_clear_400s() {
    let (h, _keys) = signing_gateway().await;
    let admin = h.operator_token.clone();
    let head = h.records().await.last().unwrap().seq;
    // Well past the head, whatever the start-up appends meanwhile.
    let beyond = head + 1000;
    let huge = "9".repeat(40);
    let long = format!("old=1&new=2&{}", "x=1&".repeat(100));
    let cases: Vec<(String, &str)> = vec![
        ("/v1/audit/consistency".to_owned(), "invalid_request"),
        ("/v1/audit/consistency?old=1".to_owned(), "invalid_request"),
        (
            "/v1/audit/consistency?old=&new=2".to_owned(),
            "invalid_request",
        ),
        (
            "/v1/audit/consistency?old=abc&new=2".to_owned(),
            "invalid_request",
        ),
        (
            "/v1/audit/consistency?old=-1&new=2".to_owned(),
            "invalid_request",
        ),
        (
            "/v1/audit/consistency?old=%2B1&new=2".to_owned(),
            "invalid_request",
        ),
        (
            "/v1/audit/consistency?old=1e3&new=2".to_owned(),
            "invalid_request",
        ),
        (
            "/v1/audit/consistency?old=0x1&new=2".to_owned(),
            "invalid_request",
        ),
        (
            format!("/v1/audit/consistency?old=1&new={huge}"),
            "invalid_request",
        ),
        (
            "/v1/audit/consistency?old=1&new=18446744073709551616".to_owned(),
            "invalid_request",
        ),
        (
            "/v1/audit/consistency?old=1&new=2&old=1".to_owned(),
            "invalid_request",
        ),
        (
            "/v1/audit/consistency?old=1&new=2&size=3".to_owned(),
            "invalid_request",
        ),
        (format!("/v1/audit/consistency?{long}"), "invalid_request"),
        (
            "/v1/audit/consistency?old=0&new=2".to_owned(),
            "invalid_request",
        ),
        (
            "/v1/audit/consistency?old=3&new=2".to_owned(),
            "invalid_request",
        ),
        (
            format!("/v1/audit/consistency?old=1&new={beyond}"),
            "out_of_range",
        ),
        (
            "/v1/audit/consistency?old=1&new=18446744073709551615".to_owned(),
            "out_of_range",
        ),
        (
            "/v1/audit/inclusion?seq=0&size=2".to_owned(),
            "invalid_request",
        ),
        (
            "/v1/audit/inclusion?seq=3&size=2".to_owned(),
            "invalid_request",
        ),
        ("/v1/audit/inclusion?seq=1".to_owned(), "invalid_request"),
        (
            "/v1/audit/inclusion?seq=1&size=2&seq=1".to_owned(),
            "invalid_request",
        ),
        (
            format!("/v1/audit/inclusion?seq=1&size={beyond}"),
            "out_of_range",
        ),
        (
            format!("/v1/audit/inclusion?seq={huge}&size=2"),
            "invalid_request",
        ),
    ];
    for (path, expected) in cases {
        let (status, content_type, body) = get(&h, &path, &admin).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(content_type.starts_with("application/json"), "{path}");
        assert_eq!(code(&body), expected, "{path}: {body}");
        // The message says what is wrong, and never echoes a long value back.
        assert!(body.len() < 400, "{path}: {body}");
    }
    // The edges that are in range answer.
    let (status, _, body) = get(
        &h,
        &format!("/v1/audit/consistency?old={head}&new={head}"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["proof"],
        json!([])
    );
    let (status, _, body) = get(
        &h,
        &format!("/v1/audit/inclusion?seq={head}&size={head}"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_there_is_no_checkpoint_to_serve() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (status, content_type, body) = get(&h, "/v1/audit/checkpoint", &h.operator_token).await;
    assert_eq!(status, 404, "{body}");
    assert!(content_type.starts_with("application/json"));
    assert_eq!(code(&body), "no_checkpoint");
    // The proofs work without checkpoints: they are over the tree the ledger always keeps.
    let (status, _, body) = get(&h, "/v1/audit/inclusion?seq=1&size=1", &h.operator_token).await;
    assert_eq!(status, 200, "{body}");
    h.stop().await;
}
