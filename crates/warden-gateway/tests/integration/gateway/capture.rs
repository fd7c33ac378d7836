//! What is recorded about an action (issue 10, points 8, 13, 18, 24): labels that depend only
//! on the action are in force once it is allowed; results' content is captured, bounded and
//! redacted; what a session may have recorded is bounded per record and per session.

use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;

use super::{Harness, Start as _};

/// `echo.echo` with a `text` under `/vault/` is allowed and labels the session `secret`; a
/// session labelled `secret` may not call `echo.echo` at all.
const SECRET_SOURCE: &str = r#"data:
  labels:
    - { id: secret }
  sources:
    - { label: secret, tool: echo.echo, path: "/vault/**", path_argument: text }
"#;
const SECRET_RULES: &str = r#"    - { id: secret-read, tool: echo.echo, tier: autonomous, args: { text: { prefix: /vault/ } } }
    - { id: after-secret, tool: echo.echo, tier: prohibited, labels: { any: [secret] } }
"#;

/// Issue 10, point 18: a label that depends only on the action (its tool and path) attaches
/// when the action is allowed, so the next call of the session is decided with it even though
/// the first one's result has not been reported. Before, it attached only with the result, and
/// the second call was allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_action_labels_apply_at_decision_time() {
    let h =
        Harness::start_charter(Arc::new(SystemClock), SECRET_RULES, SECRET_SOURCE, |_| {}).await;
    let (_, token) = h.open_session("1h").await;
    let (status, first) = h.decide(&token, "/vault/plans", None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["verdict"], "allow", "{first}");
    // No result reported for the first action: the second is decided with the label anyway.
    let (status, second) = h.decide(&token, "hello", None).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["verdict"], "deny", "{second}");
    let added = h.records_of("labels_added").await;
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["labels"], json!(["secret"]));
    assert_eq!(added[0]["action"], first["action"]);
    // The label is recorded in the commit that forwards the action, before the forward.
    let kinds = h.kinds().await;
    let labelled = kinds.iter().position(|k| k == "labels_added").unwrap();
    assert_eq!(kinds[labelled + 1], "action_forwarded", "{kinds:?}");
    h.stop().await;
}

/// The `action_result` payload of `action`.
async fn result_of(h: &Harness, action: &Value) -> Value {
    let results: Vec<Value> = h
        .records_of("action_result")
        .await
        .into_iter()
        .filter(|r| r["action"] == *action)
        .collect();
    assert_eq!(results.len(), 1, "{results:?}");
    results.into_iter().next().unwrap()
}

/// Reports `output` as the result of the decide-API action `action`.
async fn report(h: &Harness, token: &str, action: &Value, output: &str) -> u16 {
    h.http
        .post(format!(
            "http://{}/v1/actions/{}/result",
            h.agent_addr,
            action.as_str().unwrap()
        ))
        .bearer_auth(token)
        .json(&json!({ "status": "ok", "output": output }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

const REDACT: &str = "data:\n  redact: ['sk-[a-z0-9]{8}']\n";

/// Issue 10, point 8: what the agent read is in the ledger — an MCP result's text parts and a
/// decide-API output — with the charter's `data.redact` patterns replaced. Before, the
/// `action_result` record held only status, size and duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_tool_result_content_is_captured_and_redacted() {
    let h = Harness::start_charter(Arc::new(SystemClock), "", REDACT, |_| {}).await;
    let (_, token) = h.open_session("1h").await;
    let body = h.call(&token, "hello sk-abcdefgh, bye").await;
    assert_eq!(
        body["result"]["content"][0]["text"],
        "hello sk-abcdefgh, bye"
    );
    let result = h.records_of("action_result").await.pop().unwrap();
    assert_eq!(
        result["content"],
        json!([{ "type": "text", "text": "hello [REDACTED], bye" }])
    );
    assert_eq!(result["redacted"], 1);
    assert!(result.get("truncated").is_none(), "{result}");

    let (_, decided) = h.decide(&token, "hello decide", None).await;
    let action = decided["action"].clone();
    assert_eq!(
        report(&h, &token, &action, "the file says sk-12345678").await,
        200
    );
    let result = result_of(&h, &action).await;
    assert_eq!(
        result["content"],
        json!([{ "type": "text", "text": "the file says [REDACTED]" }])
    );
    h.stop().await;
}

/// Issue 10, point 24: what one record captures is bounded. Arguments over the limit refuse
/// the call, recorded with their size and hash only (forwarding arguments the ledger could not
/// take would break record-before-forward); a result over it is cut, the cut recorded with the
/// original size and SHA-256. Before, a decide call recorded megabytes of arguments and
/// output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_arguments_over_the_record_limit_are_refused_and_results_cut() {
    let h = Harness::start_configured(Arc::new(SystemClock), "", |c| {
        c.capture.max_record_bytes = 1024;
    })
    .await;
    let (_, token) = h.open_session("1h").await;
    let big = format!("hello {}", "x".repeat(2000));
    let (status, refused) = h.decide(&token, &big, None).await;
    assert_eq!(status, 200, "{refused}");
    assert_eq!(refused["verdict"], "deny");
    assert_eq!(refused["refusal"], "arguments_too_large", "{refused}");
    let attempt = h.records_of("action_attempted").await.pop().unwrap();
    assert_eq!(attempt["arguments"]["too_large"]["bytes"], 2017);
    assert_eq!(
        attempt["arguments"]["too_large"]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(!attempt.to_string().contains(&"x".repeat(100)), "{attempt}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    // Over MCP too: refused, nothing forwarded.
    let body = h.call(&token, &big).await;
    assert_eq!(body["result"]["isError"], true, "{body}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);

    let (_, decided) = h.decide(&token, "hello small", None).await;
    let action = decided["action"].clone();
    let output = "y".repeat(5000);
    assert_eq!(report(&h, &token, &action, &output).await, 200);
    let result = result_of(&h, &action).await;
    assert_eq!(result["content"][0]["text"], "y".repeat(1024));
    assert_eq!(result["truncated"]["original_bytes"], 5000);
    assert_eq!(result["size_bytes"], 5000);
    h.stop().await;
}

/// Issue 10, points 13 and 24: a session has a quota of bytes recorded; once it is spent, its
/// further calls are refused (and recorded, small), while other sessions go on. Before, one
/// session could write without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_a_session_past_its_capture_quota_is_refused() {
    let h = Harness::start_configured(Arc::new(SystemClock), "", |c| {
        c.capture.max_record_bytes = 1024;
        c.capture.max_session_bytes = 4096;
    })
    .await;
    let (_, token) = h.open_session("1h").await;
    let text = format!("hello {}", "z".repeat(900));
    let mut allowed = 0;
    let mut refusal = Value::Null;
    for _ in 0..10 {
        let (_, body) = h.decide(&token, &text, None).await;
        if body["verdict"] == "allow" {
            allowed += 1;
        } else {
            refusal = body;
            break;
        }
    }
    assert_eq!(allowed, 4, "{refusal}");
    assert_eq!(refusal["refusal"], "capture_quota_exhausted", "{refusal}");
    let attempt = h.records_of("action_attempted").await.pop().unwrap();
    assert!(
        attempt["refused"].as_str().unwrap().contains("quota"),
        "{attempt}"
    );
    assert!(!attempt.to_string().contains(&"z".repeat(100)), "{attempt}");
    // Another session is not held back.
    let (_, other) = h.open_session("1h").await;
    let (_, body) = h.decide(&other, &text, None).await;
    assert_eq!(body["verdict"], "allow", "{body}");
    h.stop().await;
}

/// Issue 10, point 13: model prompts count against the same session quota; a model request
/// that does not fit is refused before it is recorded or forwarded, and the refusal recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_model_calls_count_against_the_session_quota() {
    use warden_testkit::mock_llm::{self, MockConfig};
    let provider = mock_llm::spawn(MockConfig {
        fail_first: 0,
        name: "provider".into(),
    })
    .await
    .unwrap();
    let inventory = format!(
        "  models:\n    - alias: open\n      routes: [{{ provider: openai, base_url: \"{}\", model: gpt-open }}]\n",
        provider.url
    );
    let h = Harness::start_charter(Arc::new(SystemClock), "", &inventory, |c| {
        c.capture.max_session_bytes = 4096;
    })
    .await;
    let (_, token) = h.open_session("1h").await;
    let chat = |text: String| json!({ "model": "open", "messages": [{ "role": "user", "content": text }] });
    let send = |body: Value| {
        h.http
            .post(format!("http://{}/v1/chat/completions", h.agent_addr))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let ok = send(chat("hi".to_owned())).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(provider.request_count(), 1);
    let refused = send(chat("w".repeat(5000))).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "capture_quota_exhausted", "{error}");
    assert_eq!(provider.request_count(), 1, "the provider saw nothing more");
    let records = h.records_of("model_refused").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["reason"], "capture_quota_exhausted");
    assert_eq!(h.records_of("model_requested").await.len(), 1);
    h.stop().await;
}

/// Issue 10, point 23, on the MCP path: a tool server that echoes a credential the gateway
/// holds (here a provider key) has it replaced by `[REDACTED]` in the answer the agent gets and
/// in the captured result. Before the fix only the model proxy redacted: the echo server's
/// answer carried the key to the agent and into `action_result`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_a_tool_echoing_a_configured_secret_is_redacted_for_the_agent_and_the_ledger() {
    const KEY: &str = "sk-proj-Tool-Echoed-Secret-31337";
    let inventory = r#"  models:
    - alias: gpt
      routes: [{ provider: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-mock, api_key_env: WARDEN_TEST_TOOL_KEY }]
"#;
    let h = Harness::start_charter(Arc::new(SystemClock), "", inventory, |c| {
        c.provider_keys = Some(
            [("WARDEN_TEST_TOOL_KEY".to_owned(), KEY.to_owned())]
                .into_iter()
                .collect(),
        );
    })
    .await;
    let (_, token) = h.open_session("1h").await;
    let (status, body) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "echo.echo", "arguments": { "text": format!("hello {KEY}") } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_string().contains(KEY),
        "the agent got the key: {body}"
    );
    assert!(body.to_string().contains("[REDACTED]"), "{body}");
    let results = h.records_of("action_result").await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["status"], "ok", "{results:?}");
    let recorded = results[0].to_string();
    assert!(
        !recorded.contains(KEY),
        "the ledger holds the key: {recorded}"
    );
    assert!(recorded.contains("[REDACTED]"), "{recorded}");
    h.stop().await;
}
