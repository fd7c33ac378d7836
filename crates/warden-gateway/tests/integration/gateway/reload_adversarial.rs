//! The charter routes against callers who should not reach them and input that is wrong:
//! missing and forged credentials, an approver's, an observer's and the agent's, bodies that
//! are not JSON, too large or naming what they may not, and floods of reloads.

use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;

use super::reload::reload_api;
use super::{Harness, Start as _};

const ROUTES: [(&str, &str); 2] = [("GET", "/v1/charter"), ("POST", "/v1/charter/reload")];

async fn send(
    h: &Harness,
    (method, path): (&str, &str),
    token: Option<&str>,
    body: Option<&'static str>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = h
        .http
        .request(method, format!("http://{}{path}", h.operator_addr));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_reaches_the_charter_routes() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_session, agent) = h.open_session("1h").await;
    let approver = h.approver_token("bob").await;
    let (status, observer) = h
        .operator(
            reqwest::Method::POST,
            "/v1/operator-tokens",
            &h.operator_token,
            Some(json!({ "name": "observer-1", "role": "observer" })),
        )
        .await;
    assert_eq!(status, 201, "{observer}");
    let observer = observer["token"].as_str().unwrap().to_owned();
    let forged = format!("wo_{}", "A".repeat(43));
    for route in ROUTES {
        let cases: [(Option<&str>, u16, &str); 5] = [
            (None, 401, "unauthenticated"),
            (Some(forged.as_str()), 401, "unauthenticated"),
            (Some(agent.as_str()), 403, "wrong_plane"),
            (Some(approver.as_str()), 403, "admin_only"),
            (Some(observer.as_str()), 403, "observer_only"),
        ];
        for (token, status, code) in cases {
            let (got, body) = send(&h, route, token, None).await;
            assert_eq!(got, status, "{route:?} {code}: {body}");
            assert_eq!(body["error"]["code"], code, "{route:?}: {body}");
        }
    }
    // Nobody but the admin reloaded anything.
    assert!(h.records_of("charter_refused").await.is_empty());
    assert_eq!(h.records_of("charter_loaded").await.len(), 1);
    let (status, body) = send(&h, ROUTES[0], Some(&h.operator_token), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agent"], "agent-1");
    assert_eq!(body["generation"], 0);
    assert!(body["charter"].as_str().unwrap().starts_with("blake3:"));
    assert!(body["loaded_at"].is_string() && body["files"].is_array());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_body_that_is_not_empty_or_the_small_json_object_is_refused() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let token = h.operator_token.clone();
    let big: &'static str =
        Box::leak(format!("{{\"via\": \"{}\"}}", "x".repeat(4096)).into_boxed_str());
    let cases: [(&'static str, u16); 7] = [
        ("not json", 400),
        ("[1, 2]", 400),
        ("{\"via\": \"sighup\"}", 400),
        ("{\"via\": \"email\"}", 400),
        ("{\"via\": \"api\", \"path\": \"/etc/passwd\"}", 400),
        ("\u{0}\u{1}", 400),
        (big, 413),
    ];
    for (body, status) in cases {
        let (got, answer) = send(&h, ROUTES[1], Some(&token), Some(body)).await;
        assert_eq!(got, status, "{body:.40}: {answer}");
        if status == 400 {
            assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
        }
    }
    // Accepted: nothing, whitespace, `{}`, and `via` of `api` or `cli` (the charter unchanged).
    for body in ["", "  \n", "{}", "{\"via\": \"api\"}", "{\"via\": \"cli\"}"] {
        let (got, answer) = send(&h, ROUTES[1], Some(&token), Some(body)).await;
        assert_eq!(got, 200, "{body:?}: {answer}");
        assert_eq!(answer["unchanged"], true, "{answer}");
    }
    assert_eq!(h.records_of("charter_loaded").await.len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_reloads_loads_the_new_charter_once() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let text = std::fs::read_to_string(h.config.charters.first()).unwrap();
    std::fs::write(
        h.config.charters.first(),
        text.replace(
            "approval: { timeout: 60s }\n  rules:",
            "approval: { timeout: 90s }\n  rules:",
        ),
    )
    .unwrap();
    let mut floods = Vec::new();
    for _ in 0..32 {
        let h = h.clone();
        floods.push(tokio::spawn(async move { reload_api(&h, None).await }));
    }
    let mut loaded = 0;
    for f in floods {
        let (status, body) = f.await.unwrap();
        match status {
            200 if body["unchanged"] == false => loaded += 1,
            200 => {}
            409 => assert_eq!(body["error"]["code"], "reload_in_progress", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(loaded, 1, "the new charter is loaded exactly once");
    assert_eq!(h.records_of("charter_loaded").await.len(), 2);
    // A busy refusal is not recorded (a flood cannot fill the ledger).
    assert!(h.records_of("charter_refused").await.is_empty());
    h.stop().await;
}
