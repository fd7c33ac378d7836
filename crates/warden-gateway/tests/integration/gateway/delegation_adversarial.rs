//! Issue 17, point 3, adversarial: the delegate route with an operator token, a forged or
//! missing token, a revoked child's token replayed, malformed and oversized bodies, a task or
//! lifetime out of bounds, and a flood of delegations (bounded by the fan-out).

use super::delegation::{child, delegate, refusals, start_set, start_set_configured};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delegate_route_refuses_operator_forged_and_missing_credentials() {
    let h = start_set().await;
    let (_, token) = h.open_session("1h").await;
    let body = json!({ "agent": "helper" });
    let (status, got) = delegate(&h, &h.operator_token, body.clone()).await;
    assert_eq!(status, 403, "{got}");
    assert_eq!(got["error"]["code"], "wrong_plane");
    // A forged token of the right shape.
    let forged = format!("{}x", &token[..token.len() - 1]);
    let forged = if forged == token {
        format!("{}y", &token[..token.len() - 1])
    } else {
        forged
    };
    let (status, got) = delegate(&h, &forged, body.clone()).await;
    assert_eq!(status, 401, "{got}");
    assert_eq!(got["error"]["code"], "unauthenticated");
    let (status, got) = delegate(&h, "not-a-token", body.clone()).await;
    assert_eq!(status, 401, "{got}");
    let resp = h
        .http
        .post(format!("http://{}/v1/sessions/delegate", h.agent_addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // A revoked child's token, replayed, opens nothing.
    let (child_id, child_token) = child(&h, &token, "helper").await;
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/sessions/{child_id}/revoke"),
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, got) = delegate(&h, &child_token, json!({ "agent": "other" })).await;
    assert_eq!(status, 401, "{got}");
    assert_eq!(got["error"]["code"], "session_revoked");
    assert_eq!(h.records_of("session_delegated").await.len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_out_of_bounds_bodies_are_refused() {
    let h = start_set().await;
    let (_, token) = h.open_session("1h").await;
    let url = format!("http://{}/v1/sessions/delegate", h.agent_addr);
    for raw in [
        "not json",
        "[]",
        "{}",
        r#"{"agent": 7}"#,
        r#"{"agent": "helper", "principal": "root"}"#,
        r#"{"agent": "helper", "ttl": 5}"#,
    ] {
        let resp = h
            .http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let got: Value = resp.json().await.unwrap();
        assert_eq!(status, 400, "{raw}: {got}");
        assert_eq!(got["error"]["code"], "invalid_request", "{raw}: {got}");
    }
    // Larger than any body the route reads.
    let huge = json!({ "agent": "helper", "task": "x".repeat(200 * 1024) });
    let (status, got) = delegate(&h, &token, huge).await;
    assert_eq!(status, 413, "{got}");
    // Within the body bound, out of the task's and the lifetime's: refused, recorded.
    let long_task =
        json!({ "agent": "helper", "task": "x".repeat(warden_session::MAX_TASK_BYTES + 1) });
    for body in [
        long_task,
        json!({ "agent": "helper", "task": "   " }),
        json!({ "agent": "helper", "ttl": "soon" }),
        json!({ "agent": "helper", "ttl": "0s" }),
        json!({ "agent": "helper", "ttl": "400d" }),
    ] {
        let (status, got) = delegate(&h, &token, body.clone()).await;
        assert_eq!(status, 403, "{body}: {got}");
        assert_eq!(got["error"]["code"], "invalid", "{got}");
    }
    assert_eq!(refusals(&h).await, ["invalid"; 5]);
    // An agent id of any length is quoted cut in the record.
    let (status, _) = delegate(&h, &token, json!({ "agent": "a".repeat(4000) })).await;
    assert_eq!(status, 403);
    let refused = h.records_of("delegation_refused").await.pop().unwrap();
    assert_eq!(refused["refusal"], "unknown_agent");
    assert!(refused["agent"].as_str().unwrap().len() <= 128);
    assert!(h.records_of("session_delegated").await.is_empty());
    h.stop().await;
}

/// Twenty concurrent delegations from one session: exactly `max_children` (3) children
/// open; the rest are refused with `fan_out`, recorded. A revoked child frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_delegations_stays_bounded_by_the_fan_out() {
    let h = Arc::new(start_set().await);
    let (_, token) = h.open_session("1h").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (h, token) = (h.clone(), token.clone());
        tasks.spawn(async move { delegate(&h, &token, json!({ "agent": "helper" })).await });
    }
    let results = tasks.join_all().await;
    let opened: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(opened.len(), 3, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != 201)
            .all(|(s, b)| *s == 403 && b["error"]["code"] == "fan_out"),
        "{results:?}"
    );
    assert_eq!(h.records_of("session_delegated").await.len(), 3);
    assert_eq!(refusals(&h).await, ["fan_out"; 17]);
    let first = opened[0]["id"].as_str().unwrap();
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/sessions/{first}/revoke"),
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    child(&h, &token, "helper").await;
    let (status, got) = delegate(&h, &token, json!({ "agent": "helper" })).await;
    assert_eq!(
        (status, got["error"]["code"].clone()),
        (403, json!("fan_out"))
    );
    h.stop().await;
}

/// Fail closed: a child the ledger cannot record does not exist — the delegation is refused
/// (`503 ledger_unavailable`) and the child, stored a moment before, is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_the_ledger_cannot_record_is_revoked_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_set_configured(dir.path(), |c| c.ledger_max_bytes = Some(64 * 1024)).await;
    let (parent, token) = h.open_session("1h").await;
    let big = "hello ".to_owned() + &"x".repeat(3000);
    let mut full = false;
    for i in 0..200 {
        if is_error(&h.call(&token, &format!("{big} {i}")).await) {
            full = true;
            break;
        }
    }
    assert!(full, "the ledger never filled up");
    // Fill what is left with records smaller than a delegation's: sessions opened until the
    // ledger cannot record one.
    let mut left = true;
    for _ in 0..2000 {
        let (status, _) = h
            .operator(
                reqwest::Method::POST,
                "/v1/sessions",
                &h.operator_token,
                Some(json!({ "agent": "boss", "user": "alice", "ttl": "1h" })),
            )
            .await;
        if status != 201 {
            left = false;
            break;
        }
    }
    assert!(!left, "the ledger never filled up");
    let (status, got) = delegate(&h, &token, json!({ "agent": "helper" })).await;
    assert_eq!(status, 503, "{got}");
    assert_eq!(got["error"]["code"], "ledger_unavailable");
    assert!(got.get("token").is_none());
    let state = h.app_state();
    let children = state.sessions.descendants(&parent);
    assert_eq!(children.len(), 1, "stored, then revoked");
    assert!(children[0].is_revoked());
    assert_eq!(
        state.sessions.live_children(&parent, state.governor.now()),
        0
    );
    h.take().shutdown().await;
}
