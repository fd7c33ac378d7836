//! Tools outside the charter's inventory: an upstream may offer them and a glob rule may
//! match them, but they are refused and recorded on every path, and never forwarded.

use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;

use super::{Harness, Start as _, is_error, text_of};

/// A permissive glob over the echo server: it matches `echo.shout`, which the echo server
/// offers and the test charter's inventory leaves out.
const ANYTHING_ON_ECHO: &str = "    - { id: echo-anything, tool: \"echo.*\", tier: autonomous }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_outside_the_inventory_is_refused_and_recorded_on_every_path() {
    let h = Harness::start_with(Arc::new(SystemClock), ANYTHING_ON_ECHO).await;
    let (session, token) = h.open_session("1h").await;

    let (_, listed) = h.mcp(&token, "tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["echo__echo"], "{listed}");

    // MCP `tools/call`: refused as a tool result the model can read, never forwarded.
    let (status, body) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "echo.shout", "arguments": { "text": "hello" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(is_error(&body), "{body}");
    assert!(
        text_of(&body).contains("not in the charter's inventory"),
        "{body}"
    );
    assert_eq!(
        warden_testkit::echo::count(&h.calls),
        0,
        "a tool outside the inventory must not reach the upstream"
    );

    // The decide API: the same refusal, for a tool of an inventoried server and for a tool of
    // no server at all.
    for tool in ["echo.shout", "elsewhere.run"] {
        let resp = h
            .http
            .post(format!("http://{}/v1/decide", h.agent_addr))
            .bearer_auth(&token)
            .json(&json!({ "tool": tool, "arguments": { "text": "hello" } }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["verdict"], "deny", "{tool}: {body}");
        assert_eq!(body["refusal"], "not_inventoried", "{tool}: {body}");
        assert!(body["action"].is_string(), "{tool}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("not in the charter's inventory"),
            "{tool}: {body}"
        );
    }

    // An inventoried tool under the same glob still runs.
    let ok = h.call(&token, "whatever").await;
    assert!(!is_error(&ok), "{ok}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);

    // Every refused attempt is recorded with its refusal, and nothing else happened to it:
    // no decision, no forwarding.
    let records: Vec<_> = h
        .records()
        .await
        .into_iter()
        .filter(|r| r.session.as_deref() == Some(session.as_str()))
        .collect();
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r.kind.to_string() == "action_attempted" && r.payload["tool"] != "echo.echo")
        .map(|r| &r.payload)
        .collect();
    let seen: Vec<(&str, &str)> = refused
        .iter()
        .map(|p| (p["tool"].as_str().unwrap(), p["via"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("echo.shout", "mcp"),
            ("echo.shout", "decide_api"),
            ("elsewhere.run", "decide_api")
        ]
    );
    for p in &refused {
        assert!(
            p["refused"]
                .as_str()
                .unwrap()
                .contains("not in the charter's inventory"),
            "{p}"
        );
        assert_eq!(p["arguments"], json!({ "text": "hello" }), "{p}");
        let action = &p["action"];
        assert!(
            records
                .iter()
                .filter(|r| r.kind.to_string() != "action_attempted")
                .all(|r| r.payload["action"] != *action),
            "a refused attempt has no decision and no forwarding: {p}"
        );
    }
    h.stop().await;
}
