//! The names agents see: `tools/list` lists `server__tool` (a function name OpenAI and
//! Anthropic accept); `tools/call` and the decide API take it and the charter's `server.tool`
//! alike, each decided once under the charter's name and recorded with the name sent.

use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;

use super::{Harness, Start as _, is_error, text_of};

fn is_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_listed_as_function_names_and_called_by_either_name() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (session, token) = h.open_session("1h").await;

    let (_, listed) = h.mcp(&token, "tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["echo__echo"], "{listed}");
    assert!(names.iter().all(|n| is_function_name(n)), "{listed}");

    // Both forms run the same tool under the same rule.
    for (name, text) in [
        ("echo__echo", "hello listed"),
        ("echo.echo", "hello dotted"),
    ] {
        let (status, body) = h
            .mcp(
                &token,
                "tools/call",
                json!({ "name": name, "arguments": { "text": text } }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(!is_error(&body), "{name}: {body}");
        assert!(text_of(&body).contains(text), "{body}");
    }
    // A refusal names the charter's tool, whichever name was sent.
    let (_, body) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "echo__echo", "arguments": { "text": "a secret" } }),
        )
        .await;
    assert!(is_error(&body), "{body}");
    assert!(text_of(&body).contains("`echo.echo`"), "{body}");
    // An unknown tool in the listed form is refused, and recorded as sent.
    let (_, body) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "nowhere__run", "arguments": {} }),
        )
        .await;
    assert_eq!(body["error"]["data"]["warden"], "unknown_tool", "{body}");

    // The decide API takes the listed form too.
    let resp = h
        .http
        .post(format!("http://{}/v1/decide", h.agent_addr))
        .bearer_auth(&token)
        .json(&json!({ "tool": "echo__echo", "arguments": { "text": "hello decide" } }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["verdict"], "allow", "{body}");
    let action = body["action"].as_str().unwrap().to_owned();
    let resp = h
        .http
        .post(format!(
            "http://{}/v1/actions/{action}/result",
            h.agent_addr
        ))
        .bearer_auth(&token)
        .json(&json!({ "status": "ok", "output": "done" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // Each call: one attempt and one decision, under `echo.echo` and its rule, with the name
    // the agent sent when it was not the charter's.
    let records: Vec<_> = h
        .records()
        .await
        .into_iter()
        .filter(|r| r.session.as_deref() == Some(session.as_str()))
        .collect();
    let attempts: Vec<&Value> = records
        .iter()
        .filter(|r| r.kind.as_str() == "action_attempted")
        .map(|r| &r.payload)
        .collect();
    let seen: Vec<(&str, Option<&str>)> = attempts
        .iter()
        .map(|p| (p["tool"].as_str().unwrap(), p["called_as"].as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("echo.echo", Some("echo__echo")),
            ("echo.echo", None),
            ("echo.echo", Some("echo__echo")),
            ("nowhere.run", Some("nowhere__run")),
            ("echo.echo", Some("echo__echo")),
        ]
    );
    let decided: Vec<&Value> = records
        .iter()
        .filter(|r| r.kind.as_str() == "action_decided")
        .map(|r| &r.payload)
        .collect();
    assert_eq!(decided.len(), 4, "one decision per decided call");
    for (i, rule) in [(0, "echo-hello"), (1, "echo-hello"), (3, "echo-hello")] {
        assert_eq!(
            decided[i]["decision"]["rules"][0]["id"], rule,
            "{}",
            decided[i]
        );
    }
    assert_eq!(
        decided[2]["decision"]["rules"][0]["id"], "echo-secret",
        "{}",
        decided[2]
    );
    let results = records
        .iter()
        .filter(|r| r.kind.as_str() == "action_result")
        .count();
    assert_eq!(results, 3, "the two MCP calls and the decide-API action");
    h.stop().await;
}
