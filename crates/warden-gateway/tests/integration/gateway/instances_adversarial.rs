//! `GET /v1/instances` and the ledger stream's `instance` parameter under attack: no
//! credential, a forged one, the agent's session token, an approver's; an unknown, malformed,
//! oversized, duplicated or injected instance name. On SQLite the one instance is the ledger,
//! named by its ledger id.

use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;

use super::{Harness, Start as _};

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

/// `GET path` on the operator plane with `token`: the status, content type and body (the
/// first chunk only for a stream).
async fn get(h: &Harness, path: &str, token: &str) -> (u16, String, String) {
    let mut resp = h
        .http
        .get(format!("http://{}{path}", h.operator_addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = if kind.starts_with("text/event-stream") {
        let chunk = resp.chunk().await.unwrap().unwrap_or_default();
        String::from_utf8_lossy(&chunk).into_owned()
    } else {
        resp.text().await.unwrap()
    };
    (status, kind, body)
}

fn code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

async fn ledger_id(h: &Harness) -> String {
    warden_audit::LedgerReader::open(&h.data)
        .await
        .unwrap()
        .id()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_and_observers_list_the_instances() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_session, agent_token) = h.open_session("1h").await;
    h.call(&agent_token, "hello").await;
    let observer = token_of(&h, json!({ "name": "observer-1", "role": "observer" })).await;
    let approver = h.approver_token("bob").await;
    let id = ledger_id(&h).await;

    let resp = h
        .http
        .get(format!("http://{}/v1/instances", h.operator_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (status, _, body) = get(&h, "/v1/instances", "wo_forged0000000000000000000000").await;
    assert_eq!((status, code(&body).as_str()), (401, "unauthenticated"));
    let (status, _, body) = get(&h, "/v1/instances", &agent_token).await;
    assert_eq!((status, code(&body).as_str()), (403, "wrong_plane"));
    let (status, _, body) = get(&h, "/v1/instances", &approver).await;
    assert_eq!((status, code(&body).as_str()), (403, "admin_only"));
    for token in [&observer, &h.operator_token] {
        let (status, _, body) = get(&h, "/v1/instances", token).await;
        assert_eq!(status, 200, "{body}");
        let listed: Value = serde_json::from_str(&body).unwrap();
        let instances = listed["instances"].as_array().unwrap();
        assert_eq!(instances.len(), 1, "{listed}");
        assert_eq!(instances[0]["instance"], id.as_str());
        assert_eq!(instances[0]["ledger"], id.as_str());
        assert!(instances[0]["head"].as_u64().unwrap() >= 2, "{listed}");
        assert_eq!(instances[0]["this"], true, "{listed}");
    }
    // The agent plane does not serve it.
    let resp = h
        .http
        .get(format!("http://{}/v1/instances", h.agent_addr))
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_takes_only_a_known_well_formed_instance() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let observer = token_of(&h, json!({ "name": "observer-1", "role": "observer" })).await;
    let id = ledger_id(&h).await;

    // This gateway's own chain, by its name: the records from 1.
    let (status, kind, body) =
        get(&h, &format!("/v1/ledger/stream?instance={id}"), &observer).await;
    assert_eq!(status, 200, "{body}");
    assert!(kind.starts_with("text/event-stream"));
    assert!(body.starts_with("id: 1\nevent: record\n"), "{body}");

    // A well-formed name the store does not hold: 404 in the API's shape.
    let (status, _, body) = get(&h, "/v1/ledger/stream?instance=gw-elsewhere", &observer).await;
    assert_eq!((status, code(&body).as_str()), (404, "not_found"), "{body}");
    assert!(body.contains("gw-elsewhere"));

    // Malformed names: 400, never echoed.
    let oversized = "x".repeat(65);
    let huge = "y".repeat(8 * 1024);
    for bad in [
        "",
        oversized.as_str(),
        "gw-1%27%3B%20DROP%20TABLE%20ledger_records%3B%20--",
        "gw-1%22%20OR%201%3D1",
        "..%2F..%2Fetc",
        "gw%0A1",
        "%C3%A9",
    ] {
        let (status, _, body) =
            get(&h, &format!("/v1/ledger/stream?instance={bad}"), &observer).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (400, "invalid_request"),
            "{bad}: {body}"
        );
        assert!(!body.contains("DROP") && !body.contains("OR 1"), "{body}");
    }
    let (status, _, _) = get(&h, &format!("/v1/ledger/stream?instance={huge}"), &observer).await;
    assert!(status == 400 || status == 414 || status == 431, "{status}");
    let (status, _, body) = get(
        &h,
        "/v1/ledger/stream?instance=gw-1&instance=gw-2",
        &observer,
    )
    .await;
    assert_eq!((status, code(&body).as_str()), (400, "invalid_request"));
    // The database still holds its ledger (nothing was run from the parameter).
    assert!(!h.records().await.is_empty());
    h.stop().await;
}
