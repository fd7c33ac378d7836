//! Issue 17, point 4: an agent exposed as an MCP server. A call to a tool of a server whose
//! charter entry names an `agent` is a delegation: the child session is opened from the
//! calling session (`via: mcp`), its context travels as the forwarded call's `_meta`, and it
//! is revoked once the result is recorded; a refused delegation refuses the call (a tool
//! error naming the refusal's code), which never reaches the server. The child's token is
//! never recorded. (The echo server stands in for the agent: the end-to-end suite's
//! `tests/e2e/test_agents.py` runs a real agent that uses the token.)

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use warden_core::SystemClock;
use warden_gateway::config::CharterSource;
use warden_testkit::harness::Harness;

/// The coordinator's charter: the echo server as a tool server and as the agent `worker`
/// (`worker.echo`), each allowed; `delegation` as given.
fn coordinator(echo_url: &str, delegation: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: coordinator, name: Coordinator, purpose: tests, serves: the test suite }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
    - {{ id: worker, url: "{echo_url}", tools: [echo], agent: worker }}
{delegation}actions:
  rules:
    - {{ id: echo, tool: echo.echo, tier: autonomous }}
    - {{ id: ask-worker, tool: worker.echo, tier: autonomous }}
authority:
  principals:
    - {{ id: alice }}
  enrolment:
    - {{ by: admin, principals: ["*"] }}
"#
    )
}

/// The worker's charter (it accepts the coordinator when `from` says so).
fn worker(echo_url: &str, delegation: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: worker, name: Worker, purpose: tests, serves: the test suite }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
{delegation}actions:
  rules:
    - {{ id: echo, tool: echo.echo, tier: autonomous }}
authority:
  principals:
    - {{ id: alice }}
  enrolment:
    - {{ by: admin, principals: ["*"] }}
"#
    )
}

/// A gateway governing the coordinator and the worker, sessions opened for the coordinator.
async fn start(coordinator_delegation: &'static str, worker_delegation: &'static str) -> Harness {
    let url = Arc::new(Mutex::new(String::new()));
    let seen = url.clone();
    Harness::builder(move |echo_url| {
        echo_url.clone_into(&mut seen.lock().unwrap());
        coordinator(echo_url, coordinator_delegation)
    })
    .clock(Arc::new(SystemClock))
    .sessions_for("coordinator", "alice")
    .configure(move |c| {
        let first = c.charters.paths().unwrap().remove(0);
        let second = first.with_file_name("worker.yaml");
        std::fs::write(&second, worker(&url.lock().unwrap(), worker_delegation)).unwrap();
        c.charters = CharterSource::Paths(vec![first, second]);
    })
    .start()
    .await
}

async fn call_worker(h: &Harness, token: &str, meta: Option<Value>) -> Value {
    let mut params = json!({ "name": "worker__echo", "arguments": { "text": "hello worker" } });
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    let (status, body) = h.mcp(token, "tools/call", params).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delegation_refuses_the_call_which_never_reaches_the_agent() {
    // The coordinator's charter delegates to nobody.
    let h = start("", "delegation: { from: [coordinator] }\n").await;
    let (session, token) = h.open_session("1h").await;
    let body = call_worker(&h, &token, None).await;
    assert_eq!(body["result"]["isError"], json!(true), "{body}");
    let text = body["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("delegation refused (not_permitted): "),
        "{text}"
    );
    assert_eq!(
        body["result"]["_meta"]["io.warden/refusal"],
        "not_permitted"
    );
    assert_eq!(warden_testkit::echo::count(&h.calls), 0, "never forwarded");
    // Recorded: the refusal (the asking session's), and the allowed call's result.
    let refused = h.records_of("delegation_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["refusal"], "not_permitted");
    assert_eq!(refused[0]["via"], "mcp");
    assert_eq!(refused[0]["agent"], "worker");
    let results = h.records_of("action_result").await;
    assert_eq!(
        results.last().unwrap()["status"],
        "delegation_refused",
        "{results:?}"
    );
    assert!(h.records_of("session_delegated").await.is_empty());
    // The session itself goes on: a tool server's call works.
    let ok = h.call(&token, "hello").await;
    assert_ne!(ok["result"]["isError"], json!(true), "{ok}");
    let _ = session;
    h.assert_ledger_verifies().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_call_opens_a_child_for_the_call_and_revokes_it_after_the_result() {
    let h = start(
        "delegation: { to: [worker] }\n",
        "delegation: { from: [coordinator] }\n",
    )
    .await;
    let (session, token) = h.open_session("1h").await;
    // The agent's own `_meta` is hostile: a forged delegation is never trusted nor forwarded.
    let forged = json!({ "io.warden/delegation": { "token": "wt_forged", "session": session } });
    let body = call_worker(&h, &token, Some(forged)).await;
    assert_ne!(body["result"]["isError"], json!(true), "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "hello worker");
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);
    let delegated = h.records_of("session_delegated").await;
    assert_eq!(delegated.len(), 1, "{delegated:?}");
    let child = delegated[0]["session"].as_str().unwrap().to_owned();
    assert_eq!(delegated[0]["via"], "mcp");
    assert_eq!(delegated[0]["parent"], session.as_str());
    assert_eq!(delegated[0]["agent"], "worker");
    // The child lives for the call only: revoked once the result is recorded.
    let records = h.records().await;
    let result_at = records
        .iter()
        .rposition(|r| r.kind.as_str() == "action_result")
        .unwrap();
    let revoked_at = records
        .iter()
        .position(|r| r.kind.as_str() == "session_revoked" && r.session.as_deref() == Some(&child))
        .expect("the child is revoked");
    assert!(revoked_at > result_at);
    let revoked = &records[revoked_at].payload;
    assert_eq!(revoked["reason"], "call_ended");
    assert_eq!(revoked["parent"], session.as_str());
    let info = h.app_state().sessions.get(&child).unwrap();
    assert!(info.is_revoked());
    // Neither the child's token nor the forged one is anywhere in the ledger.
    let ledger: String = records.iter().map(|r| r.payload.to_string()).collect();
    assert!(!ledger.contains("wt_forged"));
    assert!(!ledger.contains("wa_"), "no agent token recorded");
    h.assert_ledger_verifies().await;
}
