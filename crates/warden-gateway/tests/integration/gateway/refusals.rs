//! What keeps a session from the model and the tools before anything is forwarded (issue 10,
//! point 2): a revoked or expired session is refused at authentication on every route, its
//! refusal recorded once a minute at most however hard it hammers; the frozen posture stops
//! model calls; the charter keeps sessions carrying some data labels from some model aliases.

use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;
use warden_core::{Clock, ManualClock, SystemClock};
use warden_testkit::mock_llm::{self, MockConfig, MockLlm};

use super::{Harness, Start as _};

/// A harness whose charter has the alias `fast` (kept from sessions labelled `secret`) and
/// the alias `open` (no restriction), both routed to one mock provider; `echo.echo` results
/// containing `classified` label the session `secret`.
async fn start(clock: Arc<dyn Clock>) -> (Harness, MockLlm) {
    let provider = mock_llm::spawn(MockConfig {
        fail_first: 0,
        name: "provider".into(),
    })
    .await
    .unwrap();
    let inventory = format!(
        r#"  models:
    - alias: fast
      routes: [{{ provider: openai, base_url: "{url}", model: gpt-fast }}]
      deny_labels: [secret]
    - alias: open
      routes: [{{ provider: openai, base_url: "{url}", model: gpt-open }}]
data:
  labels:
    - {{ id: secret }}
  sources:
    - {{ label: secret, tool: echo.echo, pattern: classified }}
"#,
        url = provider.url
    );
    let h = Harness::start_charter(clock, "", &inventory, |_| {}).await;
    (h, provider)
}

fn chat(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] })
}

/// A request to the agent plane with `token`: the status and the JSON body.
async fn agent(h: &Harness, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
    let mut req = h
        .http
        .request(method.clone(), format!("http://{}{path}", h.agent_addr))
        .bearer_auth(token);
    if method == reqwest::Method::POST {
        req = req.json(&match path {
            "/v1/decide" => json!({ "tool": "echo.echo", "arguments": { "text": "hello" } }),
            _ => chat("open"),
        });
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// Every route refuses `token` with 401 and `code`, in its own shape.
async fn refused_everywhere(h: &Harness, token: &str, code: &str) {
    let (status, body) = h.mcp(token, "tools/list", json!({})).await;
    assert_eq!(status, 401, "tools/list: {body}");
    assert_eq!(body["error"]["code"], -32001, "{body}");
    assert!(body["result"].is_null(), "no tools listed: {body}");
    let (status, body) = agent(h, reqwest::Method::GET, "/v1/models", token).await;
    assert_eq!(status, 401, "/v1/models: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["data"].is_null(), "no models listed: {body}");
    let (status, body) = agent(h, reqwest::Method::POST, "/v1/chat/completions", token).await;
    assert_eq!(status, 401, "chat: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    let (status, body) = agent(h, reqwest::Method::POST, "/v1/decide", token).await;
    assert_eq!(status, 401, "decide: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// 100 requests across the routes, 60 of them at once: all refused with `code`.
async fn flood(h: &Arc<Harness>, token: &str, code: &str) {
    for _ in 0..10 {
        refused_everywhere(h, token, code).await;
    }
    let mut set = tokio::task::JoinSet::new();
    for i in 0..60 {
        let (h, token) = (h.clone(), token.to_owned());
        set.spawn(async move {
            if i % 2 == 0 {
                h.mcp(&token, "tools/list", json!({})).await.0
            } else {
                agent(&h, reqwest::Method::POST, "/v1/chat/completions", &token)
                    .await
                    .0
            }
        });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
}

/// Fails before the fix: a revoked session listed tools and models (200), and its model calls
/// were refused by the proxy without a record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_is_refused_on_every_route_and_recorded_once_under_a_flood() {
    let (h, provider) = start(Arc::new(SystemClock)).await;
    let h = Arc::new(h);
    let (id, token) = h.open_session("1h").await;
    let (status, body) = agent(&h, reqwest::Method::POST, "/v1/chat/completions", &token).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/sessions/{id}/revoke"),
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(status, 200);

    flood(&h, &token, "session_revoked").await;
    assert_eq!(
        provider.request_count(),
        1,
        "the provider saw only the call before"
    );
    let refused = h.records_of("session_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["reason"], "revoked");
    assert_eq!(refused[0]["suppressed"], 0);
    // Nothing of the flood reached the governor or the proxy.
    assert!(h.records_of("action_attempted").await.is_empty());
    assert_eq!(h.records_of("model_requested").await.len(), 1);
    h.stop().await;
}

/// Fails before the fix: an expired session listed tools and models (200), and nothing of its
/// refused model calls was recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_refused_on_every_route_and_recorded_once_a_minute() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let (h, provider) = start(clock.clone()).await;
    let h = Arc::new(h);
    let (_, token) = h.open_session("10m").await;
    let (status, _) = h.mcp(&token, "tools/list", json!({})).await;
    assert_eq!(status, 200);
    clock.advance(time::Duration::minutes(11));

    flood(&h, &token, "session_expired").await;
    assert_eq!(provider.request_count(), 0);
    let expired = h.records_of("session_expired").await;
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0]["suppressed"], 0);
    assert!(h.records_of("action_attempted").await.is_empty());

    // A minute later, the next refusal is recorded again, with the count of the unrecorded.
    clock.advance(time::Duration::seconds(61));
    let (status, _) = h.mcp(&token, "tools/list", json!({})).await;
    assert_eq!(status, 401);
    let expired = h.records_of("session_expired").await;
    assert_eq!(expired.len(), 2, "{expired:?}");
    assert_eq!(expired[1]["suppressed"], 99);
    assert_eq!(expired[1]["request"], "POST /mcp");
    h.stop().await;
}

/// Fails before the fix: the frozen posture stopped actions but not model calls (200, and the
/// provider saw the call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frozen_posture_stops_model_calls() {
    let (h, provider) = start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let c = h
        .set_control(json!({ "action": "frozen", "scope": "gateway", "reason": "incident 42" }))
        .await;
    let (status, body) = agent(&h, reqwest::Method::POST, "/v1/chat/completions", &token).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "posture_frozen", "{body}");
    let resp = h
        .http
        .post(format!("http://{}/v1/messages", h.agent_addr))
        .header("x-api-key", &token)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({ "model": "open", "max_tokens": 10, "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert_eq!(provider.request_count(), 0, "the provider saw nothing");
    let refused = h.records_of("model_refused").await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0]["reason"], "posture_frozen");
    assert_eq!(refused[0]["control"], c["id"], "{refused:?}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("incident 42"),
        "the refusal names the control's reason: {body}"
    );
    assert!(h.records_of("model_requested").await.is_empty());

    h.lift_control(c["id"].as_str().unwrap()).await;
    let (status, body) = agent(&h, reqwest::Method::POST, "/v1/chat/completions", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(provider.request_count(), 1);
    h.stop().await;
}

/// Fails before the fix: the charter had no way to keep a labelled session from an alias
/// (`deny_labels` did not compile), so the call reached the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_carrying_a_denied_label_cannot_call_the_restricted_alias() {
    let (h, provider) = start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let call = |model: &'static str| {
        let (h, token) = (&h, token.clone());
        async move {
            let resp = h
                .http
                .post(format!("http://{}/v1/chat/completions", h.agent_addr))
                .bearer_auth(&token)
                .json(&chat(model))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(call("fast").await.0, 200, "unlabelled, the alias is open");
    assert_eq!(provider.request_count(), 1);

    let read = h.call(&token, "hello classified").await;
    assert!(read["result"]["isError"] != json!(true), "{read}");
    let (status, body) = call("fast").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "label_denied", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`secret`"),
        "{body}"
    );
    assert_eq!(provider.request_count(), 1, "the provider saw nothing more");
    let refused = h.records_of("model_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["reason"], "label_denied");
    assert_eq!(refused[0]["alias"], "fast");
    assert_eq!(refused[0]["labels"], json!(["secret"]));
    // Another alias, without the restriction, still answers.
    assert_eq!(call("open").await.0, 200);
    assert_eq!(provider.request_count(), 2);
    h.stop().await;
}

/// A refusal at authentication is answered before the request's body is read, and says
/// `Connection: close`: a client does not send its next request on a connection the server
/// closes (it would see "server disconnected" instead of an answer). A forged token, an
/// operator token on the agent plane, no token and an oversized body, on the decide API and
/// MCP; a request that passes authentication (its body then read, here refused as malformed)
/// keeps its connection.
#[tokio::test]
async fn refusals_at_authentication_close_the_connection_and_an_accepted_request_does_not() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let forged = format!("wa_{}", "A".repeat(token.len() - 3));
    // Over the harness's body limit (64 KiB).
    let big = "x".repeat(64 * 1024 + 1);
    for path in ["/v1/decide", "/mcp"] {
        let url = format!("http://{}{path}", h.agent_addr);
        let cases: [(Option<&str>, &str); 4] = [
            (Some(&forged), "{}"),
            (Some(&h.operator_token), "{}"),
            (None, "{}"),
            (Some(&token), &big),
        ];
        for (bearer, body) in cases {
            let mut req = h
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_owned());
            if let Some(t) = bearer {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
            assert_eq!(
                resp.headers()
                    .get("connection")
                    .and_then(|v| v.to_str().ok()),
                Some("close"),
                "{path} {}",
                resp.status()
            );
        }
    }
    let resp = h
        .http
        .post(format!("http://{}/v1/decide", h.agent_addr))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert_ne!(
        resp.headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );
    h.stop().await;
}
