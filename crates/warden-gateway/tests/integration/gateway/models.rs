//! The model proxy in-process, against the scripted mock provider (the one place a mock is
//! right: no model runs here): routing and fallback, Retry-After, streams, capture and intents,
//! budgets, pass-through, provider-shaped errors, the system message, and model turns on
//! approval requests. The Python `openai` and `anthropic` SDKs drive it in tests/e2e.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use warden_core::SystemClock;
use warden_testkit::mock_llm::{self, MockConfig, MockLlm};

use super::{Harness, Start as _};

pub(super) struct Setup {
    limiter: Arc<std::sync::atomic::AtomicU64>,
    pub(super) h: Harness,
    pub(super) token: String,
    session: String,
    first: MockLlm,
    second: MockLlm,
    claude: MockLlm,
}

/// Two OpenAI routes for `fast` (the first may be told to fail), one Anthropic route for
/// `claude`, a dead route first for `resilient`, and the given budgets.
pub(super) async fn setup(first_fails: u32, budgets: &str, context: &str) -> Setup {
    let first = mock_llm::spawn(MockConfig {
        fail_first: first_fails,
        name: "first".into(),
    })
    .await
    .unwrap();
    let second = mock_llm::spawn(MockConfig {
        fail_first: 0,
        name: "second".into(),
    })
    .await
    .unwrap();
    let claude = mock_llm::spawn(MockConfig {
        fail_first: 0,
        name: "claude".into(),
    })
    .await
    .unwrap();
    let (limiter_url, limiter) = limiter().await;
    let inventory = format!(
        r#"  models:
    - alias: fast
      routes:
        - {{ provider: openai, base_url: "{}/v1", model: gpt-first, api_key_env: WARDEN_TEST_OPENAI_KEY, timeout: 5s }}
        - {{ provider: openai, base_url: "{}", model: gpt-second, api_key_env: WARDEN_TEST_OPENAI_KEY, timeout: 5s }}
    - alias: resilient
      routes:
        - {{ provider: openai, base_url: "http://127.0.0.1:9", model: gpt-dead, timeout: 2s }}
        - {{ provider: openai, base_url: "{}", model: gpt-second }}
    - alias: limited
      routes:
        - {{ provider: openai, base_url: "{limiter_url}", model: gpt-limited }}
        - {{ provider: openai, base_url: "{}", model: gpt-second }}
    - alias: claude
      routes:
        - {{ provider: anthropic, base_url: "{}", model: claude-mock, api_key_env: WARDEN_TEST_ANTHROPIC_KEY }}
{budgets}{context}"#,
        first.url, second.url, second.url, second.url, claude.url
    );
    let h = Harness::start_charter(Arc::new(SystemClock), "", &inventory, |c| {
        c.provider_keys = Some(
            [
                ("WARDEN_TEST_OPENAI_KEY", "sk-provider-secret"),
                ("WARDEN_TEST_ANTHROPIC_KEY", "sk-ant-provider-secret"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
    })
    .await;
    let (session, token) = h.open_session("1h").await;
    Setup {
        limiter,
        h,
        token,
        session,
        first,
        second,
        claude,
    }
}

/// A provider that always answers 429 with `Retry-After: 30`; counts the requests it gets.
async fn limiter() -> (String, Arc<std::sync::atomic::AtomicU64>) {
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = count.clone();
    let app = axum::Router::new().fallback(move || {
        let c = c.clone();
        async move {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "30")],
                axum::Json(
                    json!({ "error": { "message": "slow down", "type": "rate_limit_error" } }),
                ),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), count)
}

pub(super) async fn post(
    s: &Setup,
    path: &str,
    body: Value,
    anthropic: bool,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req =
        s.h.http
            .post(format!("http://{}{path}", s.h.agent_addr))
            .json(&body);
    req = if anthropic {
        req.header("x-api-key", &s.token)
            .header("anthropic-version", "2023-06-01")
    } else {
        req.bearer_auth(&s.token)
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

pub(super) fn chat(model: &str, text: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": text }], "temperature": 0.1, "x_agent_extra": { "kept": 1 } })
}

pub(super) async fn wait_records(h: &Harness, kind: &str, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let r = h.records_of(kind).await;
        if r.len() >= n {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} `{kind}` records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_calls_pass_through_are_captured_and_never_leak_the_session_token() {
    let s = setup(0, "", "").await;
    let (status, _, body) = post(
        &s,
        "/v1/chat/completions",
        chat("fast", "hello there"),
        false,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    // The provider's answer, unknown fields included, untouched.
    assert_eq!(v["x_mock_extra"], json!({ "kept": true }), "{v}");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("hello there")
    );
    // What the provider received: its model name and key; the agent's unknown fields; never
    // the agent's session token.
    let seen = s.first.last_request().unwrap();
    assert_eq!(seen.body["model"], "gpt-first");
    assert_eq!(seen.body["x_agent_extra"], json!({ "kept": 1 }));
    assert_eq!(seen.body["temperature"], 0.1);
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-provider-secret")
    );
    assert!(seen.headers.iter().all(|(_, v)| !v.contains(&s.token)));

    let requested = wait_records(&s.h, "model_requested", 1).await;
    let completed = wait_records(&s.h, "model_completed", 1).await;
    assert_eq!(
        requested[0]["request"]["messages"][0]["content"],
        "hello there"
    );
    assert_eq!(requested[0]["call"], completed[0]["call"]);
    assert_eq!(completed[0]["route"]["model"], "gpt-first");
    assert!(
        completed[0]["completion"]["text"]
            .as_str()
            .unwrap()
            .contains("hello there")
    );
    assert!(completed[0]["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(completed[0]["usage"]["estimated"], false);
    // The ledger never holds a provider key or the session token.
    let all: String =
        s.h.records()
            .await
            .iter()
            .map(|r| r.payload.to_string())
            .collect();
    assert!(!all.contains("sk-provider-secret") && !all.contains(&s.token));
    let report = warden_audit::LedgerReader::open(&s.h.data)
        .await
        .unwrap()
        .verify()
        .await
        .unwrap();
    assert!(report.first_problem.is_none(), "{report:?}");
    let _ = &s.session;
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_the_model_proposes_are_recorded_as_intents() {
    let s = setup(0, "", "").await;
    let text = r#"please [tool:echo.echo {"text": "hi"}]"#;
    let (status, _, body) = post(&s, "/v1/chat/completions", chat("fast", text), false).await;
    assert_eq!(status, 200, "{body}");
    let anthropic = json!({ "model": "claude", "max_tokens": 100, "messages": [{ "role": "user", "content": r#"[tool:pay.refund {"order": 7}]"# }] });
    let (status, _, body) = post(&s, "/v1/messages", anthropic, true).await;
    assert_eq!(status, 200, "{body}");
    let intents = wait_records(&s.h, "model_intent", 2).await;
    assert_eq!(intents[0]["tool"], "echo.echo");
    assert_eq!(intents[0]["arguments"], json!({ "text": "hi" }));
    assert_eq!(intents[1]["tool"], "pay.refund");
    assert_eq!(intents[1]["arguments"], json!({ "order": 7 }));
    let seen = s.claude.last_request().unwrap();
    assert_eq!(seen.header("x-api-key"), Some("sk-ant-provider-secret"));
    assert_eq!(seen.body["model"], "claude-mock");
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_on_5xx_connection_errors_and_429_with_retry_after() {
    let s = setup(1, "", "").await;
    // The first route answers 503 once: the second answers.
    let (status, headers, body) =
        post(&s, "/v1/chat/completions", chat("fast", "one"), false).await;
    assert_eq!(status, 200, "{body}");
    let _ = headers;
    assert_eq!(s.second.request_count(), 1);
    // A dead route (connection refused): the next answers.
    let (status, _, _) = post(&s, "/v1/chat/completions", chat("resilient", "two"), false).await;
    assert_eq!(status, 200);
    // 429 with Retry-After: the route is set aside; the next answers, and so does the next
    // call without asking the rate-limited route again.
    let (status, _, _) = post(&s, "/v1/chat/completions", chat("limited", "three"), false).await;
    assert_eq!(status, 200);
    assert_eq!(s.limiter.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (status, _, _) = post(&s, "/v1/chat/completions", chat("limited", "four"), false).await;
    assert_eq!(status, 200);
    assert_eq!(
        s.limiter.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the rate-limited route was not asked again within its Retry-After"
    );
    // Every provider rate-limited: 429 to the agent, with Retry-After.
    let (status, headers, body) = post(
        &s,
        "/v1/chat/completions",
        chat("fast", "[error:429] [retry-after:7]"),
        false,
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.get("retry-after").is_some());
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let completed = wait_records(&s.h, "model_completed", 4).await;
    assert_eq!(completed[0]["attempts"][0]["status"], 503);
    assert_eq!(completed[1]["attempts"][0]["error"], "connection failed");
    assert_eq!(completed[2]["attempts"][0]["retry_after_seconds"], 30);
    assert_eq!(
        completed[3]["attempts"][0]["skipped"],
        "rate limited (Retry-After)"
    );
    let failed = wait_records(&s.h, "model_failed", 1).await;
    assert_eq!(failed[0]["attempts"].as_array().unwrap().len(), 2);
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_in_the_providers_shape() {
    let s = setup(0, "", "").await;
    // Bad JSON, unknown model, no messages: OpenAI shape on the OpenAI endpoint.
    let resp =
        s.h.http
            .post(format!("http://{}/v1/chat/completions", s.h.agent_addr))
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (status, _, body) = post(&s, "/v1/chat/completions", chat("nope", "x"), false).await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(v["error"]["message"].as_str().unwrap().contains("fast"));
    // Anthropic shape on the Anthropic endpoint: a bad request.
    let (status, _, body) = post(
        &s,
        "/v1/messages",
        json!({ "model": "claude", "max_tokens": 5 }),
        true,
    )
    .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    // A bad key, in each shape.
    let resp =
        s.h.http
            .post(format!("http://{}/v1/messages", s.h.agent_addr))
            .header("x-api-key", "wa_not-a-session")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    let resp =
        s.h.http
            .get(format!("http://{}/v1/models", s.h.agent_addr))
            .bearer_auth(&s.h.operator_token)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("operator tokens")
    );
    // A provider's own error passes through with its status.
    let (status, _, body) = post(&s, "/v1/messages", json!({ "model": "claude", "max_tokens": 5, "messages": [{ "role": "user", "content": "[error:400]" }] }), true).await;
    assert_eq!(status, 400, "{body}");
    // Models, in both shapes.
    let resp =
        s.h.http
            .get(format!("http://{}/v1/models", s.h.agent_addr))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "fast");
    s.h.stop().await;
}

async fn sse(s: &Setup, path: &str, body: Value, anthropic: bool) -> (u16, String) {
    let (status, _, text) = post(s, path, body, anthropic).await;
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_relayed_and_assembled_and_usage_is_not_forced_on_the_agent() {
    let s = setup(0, "", "").await;
    let mut body = chat("fast", r#"stream it [tool:echo.echo {"text": "x"}]"#);
    body["stream"] = json!(true);
    let (status, text) = sse(&s, "/v1/chat/completions", body, false).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // The agent did not ask for usage: the chunk warden asked for on its behalf is not relayed.
    assert!(!text.contains("\"usage\":{"), "{text}");
    let seen = s.first.last_request().unwrap();
    assert_eq!(seen.body["stream_options"]["include_usage"], true);
    let completed = wait_records(&s.h, "model_completed", 1).await;
    assert_eq!(completed[0]["stream"], true);
    assert!(
        completed[0]["completion"]["text"]
            .as_str()
            .unwrap()
            .contains("calling echo.echo")
    );
    assert_eq!(completed[0]["usage"]["estimated"], false);
    assert_eq!(completed[0]["attempts"][0]["stream"]["complete"], true);
    assert_eq!(
        wait_records(&s.h, "model_intent", 1).await[0]["tool"],
        "echo.echo"
    );

    // An agent that asks for usage gets it.
    let mut body = chat("fast", "with usage");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let (_, text) = sse(&s, "/v1/chat/completions", body, false).await;
    assert!(text.contains("\"usage\":{"), "{text}");

    // Anthropic.
    let body = json!({ "model": "claude", "max_tokens": 50, "stream": true, "messages": [{ "role": "user", "content": "stream claude" }] });
    let (status, text) = sse(&s, "/v1/messages", body, true).await;
    assert_eq!(status, 200);
    assert!(text.contains("event: message_stop"), "{text}");
    let completed = wait_records(&s.h, "model_completed", 3).await;
    assert!(
        completed[2]["completion"]["text"]
            .as_str()
            .unwrap()
            .contains("stream claude")
    );
    assert!(completed[2]["usage"]["output_tokens"].as_u64().unwrap() > 0);
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fallback_once_a_stream_started_and_usage_is_estimated_when_absent() {
    let s = setup(0, "", "").await;
    let mut body = chat("fast", "[drop-mid-stream] partial");
    body["stream"] = json!(true);
    let resp =
        s.h.http
            .post(format!("http://{}/v1/chat/completions", s.h.agent_addr))
            .bearer_auth(&s.token)
            .json(&body)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // The stream broke upstream: the agent's response breaks too, never ends as if complete.
    assert!(
        resp.text().await.is_err(),
        "a cut-off stream looked complete"
    );
    assert_eq!(
        s.second.request_count(),
        0,
        "bytes had reached the agent: no second route"
    );
    let completed = wait_records(&s.h, "model_completed", 1).await;
    assert_eq!(completed[0]["attempts"][0]["stream"]["complete"], false);

    let (status, _, _) = post(
        &s,
        "/v1/chat/completions",
        chat("fast", "[no-usage] count me"),
        false,
    )
    .await;
    assert_eq!(status, 200);
    let completed = wait_records(&s.h, "model_completed", 2).await;
    assert_eq!(completed[1]["usage"]["estimated"], true);
    assert!(completed[1]["usage"]["input_tokens"].as_u64().unwrap() > 0);
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_answers_429_and_is_recorded() {
    let s = setup(
        0,
        "  token_budgets:\n    - { per: session, tokens: 30 }\n",
        "",
    )
    .await;
    // The call that crosses the limit completes; the very next one is refused — at once, not
    // once the completion is recorded.
    let long = "spend tokens ".repeat(20);
    let (status, _, body) = post(&s, "/v1/chat/completions", chat("fast", &long), false).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post(&s, "/v1/chat/completions", chat("fast", "one more"), false).await;
    assert_eq!(status, 429, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "budget_exceeded");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("session token budget of 30")
    );
    let exceeded = wait_records(&s.h, "budget_exceeded", 1).await;
    assert_eq!(exceeded[0]["per"], "session");
    // Another session has its own budget.
    let (_, other) = s.h.open_session("1h").await;
    let resp =
        s.h.http
            .post(format!("http://{}/v1/chat/completions", s.h.agent_addr))
            .bearer_auth(&other)
            .json(&chat("fast", "fresh"))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charter_goes_to_the_model_as_a_system_message_when_asked() {
    let s = setup(
        0,
        "",
        "context:\n  organisation: Acme\n  system_message: true\n",
    )
    .await;
    let (status, _, _) = post(&s, "/v1/chat/completions", chat("fast", "who am I"), false).await;
    assert_eq!(status, 200);
    let seen = s.first.last_request().unwrap();
    assert_eq!(seen.body["messages"][0]["role"], "system");
    let sys = seen.body["messages"][0]["content"].as_str().unwrap();
    assert!(
        sys.contains("You are Agent") && sys.contains("Organisation: Acme"),
        "{sys}"
    );
    assert_eq!(seen.body["messages"][1]["content"], "who am I");
    let body = json!({ "model": "claude", "max_tokens": 5, "system": "agent's own", "messages": [{ "role": "user", "content": "hi" }] });
    let (status, _, _) = post(&s, "/v1/messages", body, true).await;
    assert_eq!(status, 200);
    let seen = s.claude.last_request().unwrap();
    let sys = seen.body["system"].as_str().unwrap();
    assert!(
        sys.starts_with("You are Agent") && sys.ends_with("agent's own"),
        "{sys}"
    );
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_requests_show_the_model_turns_that_led_to_the_call() {
    let s = setup(0, "", "").await;
    let text = r#"I should ask: [tool:echo.echo {"text": "ask for it"}]"#;
    let (status, _, _) = post(&s, "/v1/chat/completions", chat("fast", text), false).await;
    assert_eq!(status, 200);
    wait_records(&s.h, "model_completed", 1).await;
    let (status, body) = s.h.decide(&s.token, "ask for it", None).await;
    assert_eq!(status, 202, "{body}");
    let id = body["approval"]["id"].as_str().unwrap();
    let bob = s.h.approver_token("bob").await;
    let (_, shown) =
        s.h.operator(
            reqwest::Method::GET,
            &format!("/v1/approvals/{id}"),
            &bob,
            None,
        )
        .await;
    let turns = shown["model_turns"].as_array().unwrap();
    assert_eq!(turns.len(), 1, "{shown}");
    assert!(
        turns[0]["prompt"]
            .as_str()
            .unwrap()
            .contains("I should ask")
    );
    assert_eq!(turns[0]["intents"][0]["tool"], "echo.echo");
    assert_eq!(
        turns[0]["intents"][0]["arguments"],
        json!({ "text": "ask for it" })
    );
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_of_the_other_protocol_is_reached_through_translation() {
    let s = setup(0, "", "").await;
    // An Anthropic client, an OpenAI-only alias: translated there and back.
    let body = json!({ "model": "fast", "max_tokens": 50, "system": "be brief",
        "messages": [{ "role": "user", "content": r#"look [tool:echo.echo {"text": "x"}]"# }] });
    let (status, _, text) = post(&s, "/v1/messages", body.clone(), true).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["stop_reason"], "tool_use");
    let tool = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap();
    assert_eq!(tool["name"], "echo.echo");
    assert_eq!(tool["input"], json!({ "text": "x" }));
    let seen = s.first.last_request().unwrap();
    assert_eq!(seen.body["messages"][0]["role"], "system");
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-provider-secret")
    );
    // Streamed: Anthropic events built from the OpenAI chunks.
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let (status, _, text) = post(&s, "/v1/messages", streamed, true).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("event: message_start") && text.contains("event: message_stop"),
        "{text}"
    );
    assert!(text.contains("input_json_delta"), "{text}");
    // An OpenAI client, an Anthropic-only alias.
    let (status, _, text) = post(
        &s,
        "/v1/chat/completions",
        chat("claude", "hello claude"),
        false,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("hello claude")
    );
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let mut streamed = chat("claude", "stream claude");
    streamed["stream"] = json!(true);
    let (status, _, text) = post(&s, "/v1/chat/completions", streamed, false).await;
    assert_eq!(status, 200);
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(
        !text.contains("\"usage\":{"),
        "usage was not asked for: {text}"
    );
    // The capture holds the provider's side, and intents either way.
    let completed = wait_records(&s.h, "model_completed", 4).await;
    assert_eq!(completed[0]["route"]["provider"], "openai");
    assert!(
        completed[3]["completion"]["text"]
            .as_str()
            .unwrap()
            .contains("stream claude")
    );
    assert_eq!(
        wait_records(&s.h, "model_intent", 2).await[0]["tool"],
        "echo.echo"
    );
    s.h.stop().await;
}

/// Issue 10, point 5: a model request leaves for the provider only once it is recorded, and a
/// complete answer reaches the agent only once its completion is recorded. A 64 KiB ledger
/// fills up under large prompts; whichever record fails first (the request's or the
/// completion's), nothing unrecorded happens. Before the fix the request was forwarded while
/// it was being recorded and the completion recorded after the answer, so the provider saw
/// one request more than the ledger holds, or the agent got an answer the ledger does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_call_is_recorded_before_it_is_forwarded_and_before_it_is_answered() {
    let provider = mock_llm::spawn(MockConfig {
        fail_first: 0,
        name: "recorded".into(),
    })
    .await
    .unwrap();
    let inventory = format!(
        r#"  models:
    - alias: fast
      routes:
        - {{ provider: openai, base_url: "{}", model: gpt-recorded }}
"#,
        provider.url
    );
    let h = Harness::start_charter(Arc::new(SystemClock), "", &inventory, |c| {
        c.ledger_max_bytes = Some(64 * 1024);
    })
    .await;
    let (_, token) = h.open_session("1h").await;
    let big = "tell me about ".to_owned() + &"x".repeat(3000);
    let mut answered = 0;
    let mut refusal = None;
    for i in 0..200 {
        let resp = h
            .http
            .post(format!("http://{}/v1/chat/completions", h.agent_addr))
            .bearer_auth(&token)
            .json(&chat("fast", &format!("{big} {i}")))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 200 {
            answered += 1;
        } else {
            refusal = Some((status, body));
            break;
        }
    }
    let (status, body) = refusal.expect("the ledger never filled up");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "ledger_unavailable", "{body}");
    let requested = h.records_of("model_requested").await.len();
    let completed = h.records_of("model_completed").await.len();
    assert_eq!(
        u64::try_from(requested).unwrap(),
        provider.request_count(),
        "the provider saw exactly the recorded requests"
    );
    assert_eq!(
        completed, answered,
        "every answer the agent got is recorded"
    );
    h.stop().await;
}
