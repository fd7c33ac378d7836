//! Issue 14, point 3: the agent's W3C trace context, adversarially. A valid `traceparent`
//! (HTTP header on `/mcp`, `/v1/decide` and the model endpoints, or MCP `_meta`, which wins)
//! is recorded with the attempt and the model request as `trace`; anything else — malformed,
//! oversized, repeated, not UTF-8, not a string — is ignored: never recorded, never an error.

use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use warden_core::SystemClock;
use warden_testkit::mock_llm::{self, MockConfig};

use super::{Harness, Start as _};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TP_META: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// A `tools/call` of `echo.echo` with extra headers (raw bytes) and `_meta`; the answer.
async fn call_with(
    h: &Harness,
    token: &str,
    headers: &[(&str, &[u8])],
    meta: Option<Value>,
) -> Value {
    let mut params = json!({ "name": "echo.echo", "arguments": { "text": "hello trace" } });
    if let Some(m) = meta {
        params["_meta"] = m;
    }
    let mut req = h
        .http
        .post(format!("http://{}/mcp", h.agent_addr))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25");
    for (name, value) in headers {
        req = req.header(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    let resp = req
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .next_back()
        .unwrap_or(&text);
    let body: Value = serde_json::from_str(data.trim()).unwrap();
    assert!(body["error"].is_null(), "{body}");
    assert_ne!(body["result"]["isError"], json!(true), "{body}");
    body
}

async fn last_trace(h: &Harness, kind: &str) -> Value {
    h.records_of(kind).await.last().unwrap()["trace"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_traceparent_is_recorded_and_meta_wins() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let tp: &[(&str, &[u8])] = &[
        ("traceparent", TP.as_bytes()),
        ("tracestate", b"rojo=00f067aa0ba902b7"),
    ];
    call_with(&h, &token, tp, None).await;
    assert_eq!(
        last_trace(&h, "action_attempted").await,
        json!({ "traceparent": TP, "tracestate": "rojo=00f067aa0ba902b7" })
    );
    // `_meta` wins for its call.
    call_with(&h, &token, tp, Some(json!({ "traceparent": TP_META }))).await;
    assert_eq!(
        last_trace(&h, "action_attempted").await,
        json!({ "traceparent": TP_META })
    );
    // An invalid `_meta` is ignored: the header's context stands.
    call_with(&h, &token, tp, Some(json!({ "traceparent": 7 }))).await;
    assert_eq!(
        last_trace(&h, "action_attempted").await["traceparent"],
        json!(TP)
    );
    // The decide API reads the header too.
    let resp = h
        .http
        .post(format!("http://{}/v1/decide", h.agent_addr))
        .bearer_auth(&token)
        .header("traceparent", TP)
        .json(&json!({ "tool": "echo.echo", "arguments": { "text": "hello decide" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        last_trace(&h, "action_attempted").await,
        json!({ "traceparent": TP })
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_trace_context_is_ignored_never_recorded_never_an_error() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let long = format!("{TP}{}", "0".repeat(8000));
    let upper = TP.to_uppercase();
    let bad_headers: Vec<Vec<(&str, &[u8])>> = vec![
        vec![("traceparent", long.as_bytes())],
        vec![("traceparent", upper.as_bytes())],
        vec![(
            "traceparent",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )],
        vec![(
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        )],
        vec![(
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        )],
        vec![(
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902\xff\xfe-01",
        )],
        // Sent twice: ambiguous, ignored.
        vec![
            ("traceparent", TP.as_bytes()),
            ("traceparent", TP_META.as_bytes()),
        ],
    ];
    for headers in &bad_headers {
        call_with(&h, &token, headers, None).await;
    }
    let long_meta = "f".repeat(20_000);
    for meta in [
        json!({ "traceparent": 5 }),
        json!({ "traceparent": null }),
        json!({ "traceparent": [TP] }),
        json!({ "traceparent": { "traceparent": TP } }),
        json!({ "traceparent": long_meta }),
        json!({ "traceparent": format!("{TP}-extra") }),
    ] {
        call_with(&h, &token, &[], Some(meta)).await;
    }
    let attempts = h.records_of("action_attempted").await;
    assert_eq!(attempts.len(), bad_headers.len() + 6);
    assert!(
        attempts.iter().all(|a| a.get("trace").is_none()),
        "{attempts:#?}"
    );
    // A valid traceparent keeps its context; a tracestate that is too long or malformed is
    // dropped, and one sent twice too.
    let big_state = format!("k={}", "v".repeat(600));
    for state in [big_state.as_bytes(), b"no-equals-sign", b"Upper=case"] {
        call_with(
            &h,
            &token,
            &[("traceparent", TP.as_bytes()), ("tracestate", state)],
            None,
        )
        .await;
        assert_eq!(
            last_trace(&h, "action_attempted").await,
            json!({ "traceparent": TP })
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_request_records_the_agents_trace_context() {
    let provider = mock_llm::spawn(MockConfig::default()).await.unwrap();
    let inventory = format!(
        "  models:\n    - alias: gpt\n      routes: [{{ provider: openai, base_url: \"{}\", model: gpt-mock }}]\n",
        provider.url
    );
    let h = Harness::start_charter(Arc::new(SystemClock), "", &inventory, |_| {}).await;
    let (_, token) = h.open_session("1h").await;
    for (traceparent, recorded) in [(TP, true), ("00-not-a-trace", false)] {
        let resp = h
            .http
            .post(format!("http://{}/v1/chat/completions", h.agent_addr))
            .bearer_auth(&token)
            .header("traceparent", traceparent)
            .json(&json!({ "model": "gpt", "messages": [{ "role": "user", "content": "hi" }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let trace = last_trace(&h, "model_requested").await;
        if recorded {
            assert_eq!(trace, json!({ "traceparent": TP }));
        } else {
            assert!(trace.is_null(), "{trace}");
        }
    }
    h.stop().await;
}
