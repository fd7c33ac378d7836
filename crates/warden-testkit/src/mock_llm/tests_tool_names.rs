//! The mock refuses function names the real providers refuse, in their error shapes.

use serde_json::{Value, json};

use super::*;

async fn post(mock: &MockLlm, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", mock.url))
        .header("x-api-key", "sk-ant-provider")
        .header("anthropic-version", "2023-06-01")
        .bearer_auth("sk-provider")
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn openai_tools(names: &[&str]) -> Value {
    let tools: Vec<Value> = names
        .iter()
        .map(|n| json!({ "type": "function", "function": { "name": n, "parameters": { "type": "object" } } }))
        .collect();
    json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }], "tools": tools })
}

fn anthropic_tools(names: &[&str]) -> Value {
    let tools: Vec<Value> = names
        .iter()
        .map(|n| json!({ "name": n, "input_schema": { "type": "object" } }))
        .collect();
    json!({ "model": "claude-3-5-haiku-latest", "max_tokens": 10, "messages": [{ "role": "user", "content": "hi" }], "tools": tools })
}

#[tokio::test]
async fn openai_refuses_a_dotted_or_long_function_name_naming_the_param() {
    let mock = spawn(MockConfig::default()).await.unwrap();
    let (status, body) = post(
        &mock,
        "/v1/chat/completions",
        openai_tools(&["fs__read", "fs.read"]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["param"], "tools[1].function.name", "{body}");
    assert_eq!(body["error"]["code"], "invalid_value", "{body}");
    let long = "a".repeat(65);
    let (status, body) = post(&mock, "/v1/chat/completions", openai_tools(&[&long])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "string_above_max_length", "{body}");
    // Valid names (64 at most, `_` and `-`) pass.
    let ok = "a".repeat(64);
    let (status, body) = post(
        &mock,
        "/v1/chat/completions",
        openai_tools(&["fs__read_text_file", "get-env", &ok]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn anthropic_refuses_a_dotted_function_name() {
    let mock = spawn(MockConfig::default()).await.unwrap();
    let (status, body) = post(&mock, "/v1/messages", anthropic_tools(&["fs.read"])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("tools.0.custom.name"),
        "{body}"
    );
    let (status, body) = post(&mock, "/v1/messages", anthropic_tools(&["fs__read"])).await;
    assert_eq!(status, 200, "{body}");
}
