//! The lean path of `tools/call` (a plain call answered from the guard's parse, without rmcp's
//! per-request service) against rmcp's path: the same answer byte for byte, the same records,
//! for an allowed call (named either way, with extra arguments), a prohibited one, an unknown
//! tool (with and without arguments), at each protocol version the lean path takes; and what is
//! not plain (parameters in `Accept`, a progress token) still gets rmcp's answer.

use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;

use super::{Harness, Start as _};

/// A plain `tools/call` (the lean path), or the same with `Accept` parameters, which rmcp
/// takes: the HTTP status and the raw body.
async fn call(
    h: &Harness,
    token: &str,
    params: &Value,
    lean: bool,
    version: Option<&str>,
) -> (u16, String) {
    let accept = if lean {
        "application/json, text/event-stream"
    } else {
        "application/json;q=1, text/event-stream;q=0.9"
    };
    let mut req = h
        .http
        .post(format!("http://{}/mcp", h.agent_addr))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", accept);
    if let Some(v) = version {
        req = req.header("mcp-protocol-version", v);
    }
    let resp = req
        .json(&json!({ "jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": params }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/json");
    (status, resp.text().await.unwrap())
}

/// The last action's records, each without what differs between two calls (ids, times).
async fn last_action(h: &Harness) -> Vec<(String, Value)> {
    let records = h.records().await;
    let action = records
        .iter()
        .rev()
        .find_map(|r| r.payload["action"].as_str().map(str::to_owned))
        .unwrap();
    records
        .into_iter()
        .filter(|r| r.payload["action"].as_str() == Some(action.as_str()))
        .map(|r| {
            let mut p = r.payload;
            for volatile in ["action", "duration_ms", "decision_id", "at", "deadline"] {
                p.as_object_mut().unwrap().remove(volatile);
            }
            (r.kind.as_str().to_owned(), p)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lean_path_answers_and_records_exactly_as_rmcp_does() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let cases = [
        json!({ "name": "echo__echo", "arguments": { "text": "hello lean" } }),
        json!({ "name": "echo.echo", "arguments": { "text": "hello dotted" } }),
        json!({ "name": "echo__echo", "arguments": { "text": "a secret" } }),
        json!({ "name": "nowhere__tool", "arguments": { "text": "hello" } }),
        json!({ "name": "nowhere__tool" }),
        // Hostile names: nothing routable, refused the same way on both paths.
        json!({ "name": "echo__../../etc/passwd", "arguments": { "text": "hello" } }),
        json!({ "name": "echo\u{0}__echo", "arguments": { "text": "hello" } }),
        json!({ "name": "x".repeat(10_000), "arguments": { "text": "hello" } }),
        json!({ "name": "", "arguments": { "text": "hello" } }),
        json!({ "name": "echo__echo", "arguments": { "text": "hello", "extra": [1, {"a": null}] } }),
    ];
    for version in [Some("2025-06-18"), Some("2025-11-25"), None] {
        for params in &cases {
            let rmcp = call(&h, &token, params, false, version).await;
            let rmcp_records = last_action(&h).await;
            // The count is the process's (other tests' calls may add to it): the lean call
            // adds at least its own. (That the other request is not plain is the unit tests'.)
            let between = warden_mcp::lean_calls();
            let lean = call(&h, &token, params, true, version).await;
            let lean_records = last_action(&h).await;
            assert!(
                warden_mcp::lean_calls() > between,
                "the plain call took the lean path"
            );
            assert_eq!(lean, rmcp, "{params} at {version:?}");
            assert_eq!(lean_records, rmcp_records, "{params} at {version:?}");
        }
    }
    // The answers are the calls' own: an allowed call echoes, a prohibited one is a tool
    // error naming the refusal (what rmcp answered above too).
    let (_, body) = call(&h, &token, &cases[0], true, Some("2025-11-25")).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["id"], 41);
    assert!(
        body["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hello lean"),
        "{body}"
    );
    assert!(body["result"].get("resultType").is_none(), "{body}");
    let (_, body) = call(&h, &token, &cases[2], true, Some("2025-11-25")).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["result"]["isError"], true, "{body}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_not_plain_keep_rmcps_answers() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let send = |body: Value, accept: &'static str, version: &'static str| {
        h.http
            .post(format!("http://{}/mcp", h.agent_addr))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("accept", accept)
            .header("mcp-protocol-version", version)
            .json(&body)
            .send()
    };
    // An unknown protocol version, or an `Accept` without the event stream: rmcp's refusals.
    let plain = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": { "name": "echo__echo", "arguments": { "text": "hello" } } });
    let resp = send(
        plain.clone(),
        "application/json, text/event-stream",
        "1999-01-01",
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = send(plain.clone(), "application/json", "2025-11-25")
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 406);
    // A notification (no id) is accepted and never answered, or called.
    let before = h.records_of("action_attempted").await.len();
    let mut notification = plain.clone();
    notification.as_object_mut().unwrap().remove("id");
    let resp = send(
        notification,
        "application/json, text/event-stream",
        "2025-11-25",
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert_eq!(h.records_of("action_attempted").await.len(), before);
    // A progress token goes to rmcp, which answers the call as usual.
    let mut with_progress = plain.clone();
    with_progress["params"]["_meta"] = json!({ "progressToken": "p1" });
    let resp = send(
        with_progress,
        "application/json, text/event-stream",
        "2025-11-25",
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("hello"), "{text}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plain_calls_are_refused_before_or_on_the_lean_path_as_on_rmcps() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let plain = |params: Value, id: Value| json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params });
    let post = |bearer: String, body: Vec<u8>| {
        h.http
            .post(format!("http://{}/mcp", h.agent_addr))
            .bearer_auth(bearer)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body)
            .send()
    };
    let hello = json!({ "name": "echo__echo", "arguments": { "text": "hello" } });
    let before = h.records_of("action_attempted").await.len();
    // A forged token, the operator's token: refused at authentication, nothing recorded.
    for (bearer, status) in [
        ("w_forged".to_owned(), 401),
        (h.operator_token.clone(), 403),
    ] {
        let body = serde_json::to_vec(&plain(hello.clone(), json!(1))).unwrap();
        let resp = post(bearer, body).await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
    }
    // A body over the limit: the guard's 413, in JSON-RPC terms, before any parse.
    let big = json!({ "name": "echo__echo", "arguments": { "text": format!("hello {}", "a".repeat(70_000)) } });
    let resp = post(
        token.clone(),
        serde_json::to_vec(&plain(big, json!(2))).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600);
    assert_eq!(h.records_of("action_attempted").await.len(), before);
    // A long string id is echoed back as sent; a call through the lean path is recorded once.
    let id = "i".repeat(4096);
    let lean = warden_mcp::lean_calls();
    let resp = post(
        token.clone(),
        serde_json::to_vec(&plain(hello.clone(), json!(id))).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], json!(id));
    assert!(warden_mcp::lean_calls() > lean);
    assert_eq!(h.records_of("action_attempted").await.len(), before + 1);
    // A member given twice (read as its last value by a lenient parser), a `params` that is
    // not an object, an id too large for rmcp: not plain, so rmcp refuses them as it always
    // did, in its terms and before any decision; never a panic, nothing recorded.
    let odd: [&[u8]; 3] = [
        br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo__echo","name":"x"}}"#,
        br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":"echo__echo"}"#,
        br#"{"jsonrpc":"2.0","id":184467440737095516150,"method":"tools/call","params":{"name":"echo__echo"}}"#,
    ];
    let attempts = h.records_of("action_attempted").await.len();
    for body in odd {
        let resp = post(token.clone(), body.to_vec()).await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(
            (400..500).contains(&status) || text.contains("\"error\""),
            "{status} {text}"
        );
    }
    assert_eq!(h.records_of("action_attempted").await.len(), attempts);
    h.stop().await;
}
