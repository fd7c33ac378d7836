//! The agent inventory under attack: the agent's own session token, an approver's credential
//! (refused even for the agent whose charter names it), forged and missing credentials,
//! hostile ids (too long, odd characters, path traversal), and a flood of sessions and
//! requests (every answer stays bounded).

use reqwest::Method;
use serde_json::{Value, json};

use super::agents::{get, open, start};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_and_observers_read_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let (status, opened) = h
        .operator(
            Method::POST,
            "/v1/sessions",
            &h.operator_token,
            Some(json!({ "agent": "coord", "user": "alice" })),
        )
        .await;
    assert_eq!(status, 201);
    let agent_token = opened["token"].as_str().unwrap().to_owned();
    let approver = h.approver_token("dana").await;
    let (status, observer) = h
        .operator(
            Method::POST,
            "/v1/operator-tokens",
            &h.operator_token,
            Some(json!({ "name": "observer-1", "role": "observer" })),
        )
        .await;
    assert_eq!(status, 201);
    let observer = observer["token"].as_str().unwrap().to_owned();

    for path in ["/v1/agents", "/v1/agents/coord"] {
        // The agent's own credential: the wrong plane.
        let (status, body) = get(&h, path, &agent_token).await;
        assert_eq!(
            (status, code(&body)),
            (403, "wrong_plane"),
            "{path}: {body}"
        );
        // An approver, though coord's charter names dana as an approver: refused (fail
        // closed; it reaches the approvals only).
        let (status, body) = get(&h, path, &approver).await;
        assert_eq!((status, code(&body)), (403, "admin_only"), "{path}: {body}");
        // The observer reads it.
        let (status, body) = get(&h, path, &observer).await;
        assert_eq!(status, 200, "{path}: {body}");
        // Forged and missing credentials.
        for forged in ["wo_forged-token", "wa_forged-token", "", "Basic abc"] {
            let (status, body) = get(&h, path, forged).await;
            assert!(
                status == 401 || (status == 403 && code(&body) == "wrong_plane"),
                "{path} with `{forged}`: {status} {body}"
            );
            assert!(body.get("agents").is_none() && body.get("charter").is_none());
        }
        let resp = h
            .http
            .get(format!("http://{}{path}", h.operator_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
    }
    // The observer may only read it; nobody writes it.
    let (status, body) = h
        .operator(Method::POST, "/v1/agents/coord", &observer, None)
        .await;
    assert_eq!((status, code(&body)), (403, "observer_only"), "{body}");
    let (status, _) = h
        .operator(Method::POST, "/v1/agents", &h.operator_token, None)
        .await;
    assert_eq!(status, 405);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ids_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let t = h.operator_token.clone();
    let long = "a".repeat(300);
    let (status, body) = get(&h, &format!("/v1/agents/{long}"), &t).await;
    assert_eq!((status, code(&body)), (400, "invalid_agent"), "{body}");
    for id in [
        "nobody",
        "..%2F..%2Fetc%2Fpasswd",
        "%2E%2E%2Fsessions",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "coord%00",
        "%E2%80%AEdroc",
        "coord%20",
        "COORD",
    ] {
        let (status, body) = get(&h, &format!("/v1/agents/{id}"), &t).await;
        assert_eq!(
            (status, code(&body)),
            (404, "unknown_agent"),
            "{id}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("agents: coord, solo, worker"), "{message}");
    }
    // A path below an agent is no route: the plane's 404.
    let (status, body) = get(&h, "/v1/agents/coord/sessions", &t).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    // Invalid UTF-8 in the id: refused by the path extractor, not a panic.
    let (status, _) = get(&h, "/v1/agents/%FF%FE", &t).await;
    assert_eq!(status, 400);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stay_bounded_under_a_flood_of_sessions_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let t = h.operator_token.clone();
    let many = warden_operator::agents::MAX_LIVE_IDS + 20;
    let mut opened = Vec::new();
    for _ in 0..many {
        opened.push(open(&h, "coord", "alice").await);
    }
    let (status, c) = get(&h, "/v1/agents/coord", &t).await;
    assert_eq!(status, 200);
    assert_eq!(c["sessions"]["live"], many);
    let ids = &c["sessions"]["live_ids"];
    assert_eq!(ids["total"], many);
    assert_eq!(ids["capped"], true);
    assert_eq!(
        ids["items"].as_array().unwrap().len(),
        warden_operator::agents::MAX_LIVE_IDS
    );
    // Newest first: the last session opened leads.
    assert_eq!(ids["items"][0].as_str().unwrap(), opened.last().unwrap());
    assert!(
        c.to_string().len() < 64 * 1024,
        "the answer is bounded: {} bytes",
        c.to_string().len()
    );
    // Many requests at once: every one answered, each the same bounded size.
    let mut tasks = Vec::new();
    for i in 0..64 {
        let http = h.http.clone();
        let url = if i % 2 == 0 {
            format!("http://{}/v1/agents", h.operator_addr)
        } else {
            format!("http://{}/v1/agents/coord", h.operator_addr)
        };
        let token = t.clone();
        tasks.push(tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(token).send().await.unwrap();
            (resp.status().as_u16(), resp.bytes().await.unwrap().len())
        }));
    }
    for task in tasks {
        let (status, len) = task.await.unwrap();
        assert_eq!(status, 200);
        assert!(len < 64 * 1024, "{len} bytes");
    }
    h.stop().await;
}
