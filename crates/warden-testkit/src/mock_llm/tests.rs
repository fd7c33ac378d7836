//! The mock over real HTTP: both wire shapes, streaming and not, and the script directives.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::framing::{split_json, split_words};
use super::script::Script;
use super::*;

async fn mock() -> MockLlm {
    spawn(MockConfig::default()).await.unwrap()
}

async fn openai(mock: &MockLlm, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", mock.url))
        .bearer_auth("sk-provider")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn anthropic(mock: &MockLlm, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/messages", mock.url))
        .header("x-api-key", "sk-ant-provider")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn openai_body(text: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": text}]},
        ],
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

fn anthropic_body(text: &str, stream: bool) -> Value {
    json!({
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 100,
        "system": "be brief",
        "messages": [
            {"role": "user", "content": "first turn"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": text}]},
        ],
        "stream": stream,
    })
}

/// `(event name, data)` pairs of an SSE body; `data: [DONE]` comes back as a string.
fn sse(text: &str) -> Vec<(Option<String>, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let mut name = None;
            let mut data = String::new();
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            let data = if data == "[DONE]" {
                Value::String(data)
            } else {
                serde_json::from_str(&data).unwrap()
            };
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn openai_echo() {
    let mock = mock().await;
    let response = openai(&mock, openai_body("hello there", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "content type"
    );
    assert!(response.headers().get("x-mock-name").is_none());
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["system_fingerprint"], "fp_mock");
    assert_eq!(body["x_mock_extra"], json!({"kept": true}));
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "echo: hello there");
    assert!(choice["message"].get("tool_calls").is_none());
    // "be brief" + 1, "hello there" + 1; "echo: hello there".
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9})
    );
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn openai_tool_call() {
    let mock = mock().await;
    let text = r#"please [tool:get_weather {"city": "Paris [FR]", "days": 2}]"#;
    let body: Value = openai(&mock, openai_body(text, false))
        .await
        .json()
        .await
        .unwrap();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "calling get_weather");
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris [FR]", "days": 2}));
}

#[tokio::test]
async fn anthropic_echo_and_tool_use() {
    let mock = mock().await;
    let response = anthropic(&mock, anthropic_body("hi you", false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-3-5-haiku-latest");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "echo: hi you"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    // "first turn" + 1, "ok" + 1, "hi you" + 1 (the top-level system is not counted).
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 8, "output_tokens": 3})
    );

    let body: Value = anthropic(
        &mock,
        anthropic_body("[tool:lookup {\"q\": \"x\"}] [tool:ls]", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["stop_reason"], "tool_use");
    let content = body["content"].as_array().unwrap();
    assert_eq!(content.len(), 3);
    assert_eq!(
        content[0],
        json!({"type": "text", "text": "calling lookup, ls"})
    );
    assert_eq!(content[1]["type"], "tool_use");
    assert!(content[1]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(content[1]["name"], "lookup");
    assert_eq!(content[1]["input"], json!({"q": "x"}));
    assert_eq!(content[2]["name"], "ls");
    assert_eq!(content[2]["input"], json!({}));
    assert_ne!(content[1]["id"], content[2]["id"]);
}

#[tokio::test]
async fn anthropic_needs_key_and_version() {
    let mock = mock().await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", mock.url))
        .header("anthropic-version", "2023-06-01")
        .json(&anthropic_body("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-api-key")
    );

    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", mock.url))
        .header("x-api-key", "k")
        .json(&anthropic_body("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn records_the_last_request() {
    let mock = mock().await;
    assert!(mock.last_request().is_none());
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", mock.url))
        .bearer_auth("sk-provider")
        .header("X-Custom", "yes")
        .json(&openai_body("record me", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let last = mock.last_request().unwrap();
    assert_eq!(last.path, "/v1/chat/completions");
    assert_eq!(last.header("authorization"), Some("Bearer sk-provider"));
    assert_eq!(last.header("x-custom"), Some("yes"));
    assert_eq!(last.header("X-CUSTOM"), Some("yes"));
    assert_eq!(last.header("x-warden-session"), None);
    assert_eq!(last.body, openai_body("record me", false));
}

#[tokio::test]
async fn openai_stream_reassembles() {
    let mock = mock().await;
    let text = r#"go [tool:get_weather {"city": "Paris", "unit": "celsius"}]"#;
    let response = openai(&mock, openai_body(text, true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse(&response.text().await.unwrap());
    assert!(events.iter().all(|(name, _)| name.is_none()));
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<&Value> = events[..events.len() - 1].iter().map(|(_, d)| d).collect();
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["model"], "gpt-4o-mini");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    let (usage, chunks) = chunks.split_last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14})
    );
    let mut content = String::new();
    let mut content_chunks = 0;
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    for chunk in chunks {
        assert_eq!(chunk["usage"], Value::Null);
        let choice = &chunk["choices"][0];
        if let Some(piece) = choice["delta"]["content"].as_str() {
            content.push_str(piece);
            content_chunks += 1;
        }
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap() as usize;
            if let Some(id) = call["id"].as_str() {
                assert_eq!(index, calls.len());
                assert_eq!(call["type"], "function");
                calls.push((
                    id.to_owned(),
                    call["function"]["name"].as_str().unwrap().to_owned(),
                    String::new(),
                ));
            }
            if let Some(piece) = call["function"]["arguments"].as_str() {
                calls[index].2.push_str(piece);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(reason.to_owned());
        }
    }
    assert_eq!(content, "calling get_weather");
    assert!(content_chunks >= 2, "content in several chunks");
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(calls.len(), 1);
    assert!(calls[0].0.starts_with("call_"));
    assert_eq!(calls[0].1, "get_weather");
    let arguments: Value = serde_json::from_str(&calls[0].2).unwrap();
    assert_eq!(arguments, json!({"city": "Paris", "unit": "celsius"}));

    // The same request without streaming says the same.
    let body: Value = openai(&mock, openai_body(text, false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], content);
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
}

#[tokio::test]
async fn openai_stream_without_include_usage_has_no_usage_chunk() {
    let mock = mock().await;
    let mut body = openai_body("plain text here", true);
    body.as_object_mut().unwrap().remove("stream_options");
    let events = sse(&openai(&mock, body).await.text().await.unwrap());
    let mut content = String::new();
    for (_, data) in &events[..events.len() - 1] {
        assert!(data.get("usage").is_none());
        assert_eq!(data["choices"].as_array().unwrap().len(), 1);
        content.push_str(
            data["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or(""),
        );
    }
    assert_eq!(content, "echo: plain text here");
}

#[tokio::test]
async fn anthropic_stream_reassembles() {
    let mock = mock().await;
    let text = r#"go [tool:search {"query": "rust sse", "limit": 10}]"#;
    let response = anthropic(&mock, anthropic_body(text, true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse(&response.text().await.unwrap());
    for (name, data) in &events {
        assert_eq!(name.as_deref(), data["type"].as_str(), "event name = type");
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(names[0], "message_start");
    assert!(names.contains(&"ping"));
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);

    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["model"], "claude-3-5-haiku-latest");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["input_tokens"], 13);

    // Rebuild the content blocks.
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial: Vec<String> = Vec::new();
    let mut text_deltas = 0;
    let mut open = None;
    for (_, data) in &events {
        match data["type"].as_str().unwrap() {
            "content_block_start" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(index, blocks.len());
                assert_eq!(open, None);
                open = Some(index);
                blocks.push(data["content_block"].clone());
                partial.push(String::new());
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index));
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        text_deltas += 1;
                        let text = format!(
                            "{}{}",
                            blocks[index]["text"].as_str().unwrap(),
                            delta["text"].as_str().unwrap()
                        );
                        blocks[index]["text"] = Value::String(text);
                    }
                    "input_json_delta" => {
                        partial[index].push_str(delta["partial_json"].as_str().unwrap());
                    }
                    other => panic!("delta type {other}"),
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index));
                open = None;
                if blocks[index]["type"] == "tool_use" {
                    blocks[index]["input"] = serde_json::from_str(&partial[index]).unwrap();
                }
            }
            "message_delta" => {
                assert_eq!(data["delta"]["stop_reason"], "tool_use");
                assert_eq!(data["delta"]["stop_sequence"], Value::Null);
                assert_eq!(data["usage"]["output_tokens"], 5);
            }
            _ => {}
        }
    }
    assert!(text_deltas >= 2, "text in several deltas");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0], json!({"type": "text", "text": "calling search"}));
    assert_eq!(blocks[1]["name"], "search");
    assert!(blocks[1]["id"].as_str().unwrap().starts_with("toolu_"));

    // The same request without streaming gives the same content.
    let body: Value = anthropic(&mock, anthropic_body(text, false))
        .await
        .json()
        .await
        .unwrap();
    let mut expected = body["content"].clone();
    // Ids differ per request.
    expected[1]["id"] = blocks[1]["id"].clone();
    assert_eq!(Value::Array(blocks), expected);
    assert_eq!(body["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn error_429_with_retry_after() {
    let mock = mock().await;
    let response = openai(&mock, openai_body("boom [error:429]", false)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "requests");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["param"], Value::Null);
    assert!(body["error"]["message"].is_string());

    let response = anthropic(&mock, anthropic_body("[error:429] [retry-after:7]", true)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");

    let response = anthropic(&mock, anthropic_body("[error:500]", false)).await;
    assert_eq!(response.status(), 500);
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "api_error");
}

#[tokio::test]
async fn no_usage() {
    let mock = mock().await;
    let body: Value = openai(&mock, openai_body("x [no-usage]", false))
        .await
        .json()
        .await
        .unwrap();
    assert!(body.get("usage").is_none());
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: x [no-usage]"
    );

    let events = sse(&openai(&mock, openai_body("x [no-usage]", true))
        .await
        .text()
        .await
        .unwrap());
    assert!(events.iter().all(|(_, d)| d.get("usage").is_none()));
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|(_, d)| d["choices"].as_array().unwrap().len() == 1)
    );

    let body: Value = anthropic(&mock, anthropic_body("x [no-usage]", false))
        .await
        .json()
        .await
        .unwrap();
    assert!(body.get("usage").is_none());
    let events = sse(&anthropic(&mock, anthropic_body("x [no-usage]", true))
        .await
        .text()
        .await
        .unwrap());
    assert!(events[0].1["message"].get("usage").is_none());
    assert!(events.iter().all(|(_, d)| d.get("usage").is_none()));
}

#[tokio::test]
async fn fail_first_then_answers_with_its_name() {
    let mock = spawn(MockConfig {
        fail_first: 2,
        name: "up-a".to_owned(),
    })
    .await
    .unwrap();
    for _ in 0..2 {
        let response = openai(&mock, openai_body("hi", false)).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["x-mock-name"], "up-a");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "server_error");
    }
    let response = anthropic(&mock, anthropic_body("hi", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-mock-name"], "up-a");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], "[up-a] echo: hi");
    assert_eq!(mock.request_count(), 3);
}

#[tokio::test]
async fn drop_mid_stream_aborts_the_body() {
    let mock = mock().await;
    let mut response = openai(&mock, openai_body("[drop-mid-stream] a b c d e", true)).await;
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let error = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => panic!("the stream ended cleanly"),
            Err(error) => break error,
        }
    };
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    let received = String::from_utf8(received).unwrap();
    assert!(received.starts_with("data: "));
    assert!(!received.contains("[DONE]"));

    let response = anthropic(&mock, anthropic_body("[drop-mid-stream]", false)).await;
    assert_eq!(response.status(), 200);
    assert!(response.json::<Value>().await.is_err());
}

#[tokio::test]
async fn slow_and_stall() {
    let mock = mock().await;
    let started = Instant::now();
    let response = openai(&mock, openai_body("[slow:150]", false)).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(response.status(), 200);

    let started = Instant::now();
    let mut response = anthropic(&mock, anthropic_body("[stall:200] a b c", true)).await;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_millis(200));
    assert!(String::from_utf8_lossy(&first).starts_with("event: message_start"));
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(String::from_utf8(rest).unwrap().contains("message_stop"));
}

#[tokio::test]
async fn bad_requests_and_models() {
    let mock = mock().await;
    let response = openai(&mock, json!({"model": "m"})).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let mut body = anthropic_body("hi", false);
    body.as_object_mut().unwrap().remove("max_tokens");
    let response = anthropic(&mock, body).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let body: Value = reqwest::get(format!("{}/v1/models", mock.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["object"], "model");
    assert_eq!(mock.request_count(), 2, "model listing is not counted");
}

#[test]
fn script_parsing() {
    let script = Script::parse("[tool:a] [tool:b {\"x\": [1]}] [tool: bad] [tool:c {oops}]");
    let names: Vec<&str> = script.tools.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(Script::parse("[error:200]").error, None);
    assert_eq!(
        Script::parse("[error:503]").error,
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(Script::parse("[slow: 20]").slow_ms, Some(20));
    assert!(Script::parse("[no-usage]").no_usage);
    assert!(!Script::parse("[no-usage").no_usage);
}

#[test]
fn splitting_concatenates_back() {
    for text in ["", "a", " a  b\tc ", "héllo wörld ünïcode"] {
        assert_eq!(split_words(text).collect::<String>(), text);
    }
    assert_eq!(split_words("echo: a b").count(), 3);
    for json in ["{}", r#"{"city":"Zürich","n":1}"#, "é"] {
        assert_eq!(split_json(json).collect::<String>(), json);
    }
    assert_eq!(split_json(r#"{"city":"Paris"}"#).count(), 3);
}
