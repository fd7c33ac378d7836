//! Issue 17, point 1: one gateway, a charter per agent — each session is governed by its own
//! agent's charter only; an agent outside the set has no session; a reload of one agent
//! leaves the others' charters in force.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;
use warden_gateway::config::CharterSource;

use super::{Harness, is_error};

/// The second agent's charter: the first's, as `agent-2`, where `hello` is prohibited (so no
/// call of `echo.echo` could ever be allowed and the tool is not even listed).
fn second_of(first: &str) -> String {
    let second = first.replace("id: agent-1,", "id: agent-2,").replace(
        "id: echo-hello, tool: echo.echo, tier: autonomous, args: { text: { prefix: hello } }",
        "id: echo-hello, tool: echo.echo, tier: prohibited",
    );
    assert_ne!(second, first, "the test charter changed shape");
    second
}

fn second_path(first: &std::path::Path) -> PathBuf {
    first.with_file_name("agent-2.yaml")
}

/// A gateway governing `agent-1` (the suite's charter) and `agent-2`.
async fn two_agents() -> Harness {
    Harness::builder(|url| super::charter(url, "", ""))
        .clock(Arc::new(SystemClock))
        .configure(|c| {
            let first = c.charters.first().to_path_buf();
            let text = std::fs::read_to_string(&first).unwrap();
            std::fs::write(second_path(&first), second_of(&text)).unwrap();
            c.charters = CharterSource::Paths(vec![first.clone(), second_path(&first)]);
        })
        .start()
        .await
}

/// Opens a session for `agent`, acting for alice; the status and body.
async fn open_for(h: &Harness, agent: &str) -> (u16, Value) {
    h.operator(
        reqwest::Method::POST,
        "/v1/sessions",
        &h.operator_token,
        Some(json!({ "agent": agent, "user": "alice", "task": "t", "ttl": "1h" })),
    )
    .await
}

async fn token_for(h: &Harness, agent: &str) -> String {
    let (status, body) = open_for(h, agent).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn charter_of(h: &Harness, agent: &str) -> Value {
    let (status, body) = h
        .operator(
            reqwest::Method::GET,
            &format!("/v1/charter?agent={agent}"),
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_is_governed_by_its_own_agents_charter_only() {
    let h = two_agents().await;
    let loaded = h.records_of("charter_loaded").await;
    let agents: Vec<&str> = loaded.iter().filter_map(|r| r["agent"].as_str()).collect();
    assert_eq!(
        agents,
        ["agent-1", "agent-2"],
        "one charter_loaded per agent"
    );
    assert_ne!(loaded[0]["charter"], loaded[1]["charter"]);

    let one = token_for(&h, "agent-1").await;
    let two = token_for(&h, "agent-2").await;
    // agent-1's charter allows `hello`; agent-2's prohibits the tool outright.
    assert!(!is_error(&h.call(&one, "hello from one").await));
    let refused = h.call(&two, "hello from two").await;
    assert!(is_error(&refused), "{refused}");
    assert_eq!(h.calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Each session lists its own agent's tools only.
    let (_, listed_one) = h.mcp(&one, "tools/list", json!({})).await;
    let (_, listed_two) = h.mcp(&two, "tools/list", json!({})).await;
    let names = |v: &Value| -> Vec<String> {
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&listed_one), ["echo__echo"], "{listed_one}");
    assert!(names(&listed_two).is_empty(), "{listed_two}");

    // The decisions name each agent's own charter and rules.
    let decided = h.records_of("action_decided").await;
    let charters: Vec<&Value> = decided.iter().map(|d| &d["decision"]["charter"]).collect();
    assert_eq!(charters, [&loaded[0]["charter"], &loaded[1]["charter"]]);
    h.assert_ledger_verifies().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_outside_the_set_gets_no_session() {
    let h = two_agents().await;
    for agent in ["agent-3", "", "agent-1 ", &"a".repeat(10_000)] {
        let (status, body) = open_for(&h, agent).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "unknown_agent", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.ends_with("agents: agent-1, agent-2"), "{message}");
        assert!(
            message.len() < 200,
            "the refusal does not echo a huge id back"
        );
    }
    assert!(h.records_of("session_opened").await.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_one_agent_leaves_the_others_charter_in_force() {
    let h = two_agents().await;
    let before_one = charter_of(&h, "agent-1").await;
    let before_two = charter_of(&h, "agent-2").await;
    let one = token_for(&h, "agent-1").await;
    let two = token_for(&h, "agent-2").await;
    // Both files change on disk; only agent-2's reload is asked for.
    let first = h.config.charters.first().to_path_buf();
    let text = std::fs::read_to_string(&first).unwrap();
    let tightened = text.replace(r#"regex: ".*secret.*""#, r#"regex: ".*(secret|now).*""#);
    assert_ne!(tightened, text);
    std::fs::write(&first, &tightened).unwrap();
    std::fs::write(
        second_path(&first),
        second_of(&text).replace(
            "id: echo-hello, tool: echo.echo, tier: prohibited",
            "id: echo-hello, tool: echo.echo, tier: autonomous, args: { text: { prefix: hello } }",
        ),
    )
    .unwrap();
    let (status, body) =
        super::reload::reload_api(&h, Some(json!({ "via": "cli", "agent": "agent-2" }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agents"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["agents"][0]["agent"], "agent-2");
    assert_eq!(body["previous"], before_two["charter"]);

    assert_eq!(
        charter_of(&h, "agent-1").await["charter"],
        before_one["charter"]
    );
    assert_ne!(
        charter_of(&h, "agent-2").await["charter"],
        before_two["charter"]
    );
    // agent-2 now allows `hello`; agent-1 is still under its old charter (`now` is fine).
    assert!(!is_error(&h.call(&two, "hello again").await));
    assert!(!is_error(&h.call(&one, "hello still, now").await));
    let loaded = h.records_of("charter_loaded").await;
    assert_eq!(loaded.len(), 3);
    assert_eq!(loaded[2]["agent"], "agent-2");

    // Reloading an agent the gateway does not govern is refused, recorded.
    let (status, body) = super::reload::reload_api(&h, Some(json!({ "agent": "agent-9" }))).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_agent");
    assert_eq!(h.records_of("charter_refused").await.len(), 1);

    // Then the rest: agent-1's change goes in force, alone.
    let (status, body) = super::reload::reload_api(&h, None).await;
    assert_eq!(status, 200, "{body}");
    let reloaded: Vec<&str> = body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["agent"].as_str())
        .collect();
    assert_eq!(reloaded, ["agent-1"]);
    let refused = h.call(&one, "hello now").await;
    assert!(is_error(&refused), "agent-1 now prohibits `now`: {refused}");
    h.stop().await;
}
