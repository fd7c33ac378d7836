//! The gateway in-process, against the echo MCP server: sessions and planes, decisions and
//! the ledger, scope counters under concurrency, expiry, revocation and shutdown.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use warden_core::{Clock, ManualClock, SystemClock};
use warden_gateway::Config;
use warden_testkit::harness::Harness;

#[path = "gateway/a2a.rs"]
mod a2a;
#[path = "gateway/agents.rs"]
mod agents;
#[path = "gateway/agents_adversarial.rs"]
mod agents_adversarial;
#[path = "gateway/approvals.rs"]
mod approvals;
#[path = "gateway/approvals_teach.rs"]
mod approvals_teach;
#[path = "gateway/capture.rs"]
mod capture;
#[path = "gateway/checkpoints.rs"]
mod checkpoints;
#[path = "gateway/checkpoints_adversarial.rs"]
mod checkpoints_adversarial;
#[path = "gateway/controls.rs"]
mod controls;
#[path = "gateway/delegation.rs"]
mod delegation;
#[path = "gateway/delegation_adversarial.rs"]
mod delegation_adversarial;
#[path = "gateway/deployment.rs"]
mod deployment;
#[path = "gateway/files.rs"]
mod files;
#[path = "gateway/instances_adversarial.rs"]
mod instances_adversarial;
#[path = "gateway/inventory.rs"]
mod inventory;
#[path = "gateway/lean_call.rs"]
mod lean_call;
#[path = "gateway/limits.rs"]
mod limits;
#[path = "gateway/many_agents.rs"]
mod many_agents;
#[path = "gateway/model_records.rs"]
mod model_records;
#[path = "gateway/model_turns.rs"]
mod model_turns;
#[path = "gateway/models.rs"]
mod models;
#[path = "gateway/names.rs"]
mod names;
#[path = "gateway/observability.rs"]
mod observability;
#[path = "gateway/paths.rs"]
mod paths;
#[path = "gateway/provenance.rs"]
mod provenance;
#[path = "gateway/provenance_adversarial.rs"]
mod provenance_adversarial;
#[path = "gateway/provenance_model.rs"]
mod provenance_model;
#[path = "gateway/provider_actions.rs"]
mod provider_actions;
#[path = "gateway/redecide.rs"]
mod redecide;
#[path = "gateway/refusals.rs"]
mod refusals;
#[path = "gateway/reload.rs"]
mod reload;
#[path = "gateway/reload_adversarial.rs"]
mod reload_adversarial;
#[path = "gateway/sandbox.rs"]
mod sandbox;
#[path = "gateway/shadow.rs"]
mod shadow;
#[path = "gateway/trace_context.rs"]
mod trace_context;
#[path = "gateway/upstream_credentials.rs"]
mod upstream_credentials;

fn charter(echo_url: &str, extra_rules: &str, inventory_extra: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: tests, serves: the test suite }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
{inventory_extra}actions:
  approval: {{ timeout: 60s }}
  rules:
    - {{ id: echo-hello, tool: echo.echo, tier: autonomous, args: {{ text: {{ prefix: hello }} }} }}
    - {{ id: echo-secret, tool: echo.echo, tier: prohibited, args: {{ text: {{ regex: ".*secret.*" }} }} }}
    - {{ id: echo-counted, tool: echo.echo, tier: preapproved, args: {{ text: {{ prefix: counted }} }}, scope: {{ per_session: 5 }} }}
    - {{ id: echo-ask, tool: echo.echo, tier: approval, args: {{ text: {{ prefix: ask }} }}, approval: {{ timeout: 60s }} }}
    - {{ id: echo-quorum, tool: echo.echo, tier: approval, args: {{ text: {{ prefix: quorum }} }}, approval: {{ timeout: 60s, quorum: 2 }} }}
{extra_rules}authority:
  separation_of_duties: true
  roles:
    - {{ id: ops, approve: [default] }}
    - {{ id: approver, approve: [default, "echo-*"] }}
    - {{ id: viewer }}
  principals:
    - {{ id: alice, roles: [ops, approver] }}
    - {{ id: bob, roles: [approver] }}
    - {{ id: carol, roles: [approver] }}
    - {{ id: dave, roles: [viewer] }}
  enrolment:
    - {{ by: admin, principals: ["*"] }}
"#
    )
}

/// The suite's ways of starting the testkit's harness, on this suite's charter.
trait Start: Sized {
    async fn start(clock: Arc<dyn Clock>) -> Self {
        Self::start_with(clock, "").await
    }

    async fn start_with(clock: Arc<dyn Clock>, extra_rules: &str) -> Self {
        Self::start_full(clock, extra_rules, None).await
    }

    async fn start_full(
        clock: Arc<dyn Clock>,
        extra_rules: &str,
        ledger_max_bytes: Option<u64>,
    ) -> Self {
        Self::start_configured(clock, extra_rules, move |c| {
            c.ledger_max_bytes = ledger_max_bytes
        })
        .await
    }

    async fn start_configured(
        clock: Arc<dyn Clock>,
        extra_rules: &str,
        adjust: impl FnOnce(&mut Config) + Send + 'static,
    ) -> Self {
        Self::start_charter(clock, extra_rules, "", adjust).await
    }

    async fn start_charter(
        clock: Arc<dyn Clock>,
        extra_rules: &str,
        inventory_extra: &str,
        adjust: impl FnOnce(&mut Config) + Send + 'static,
    ) -> Self;
}

impl Start for Harness {
    async fn start_charter(
        clock: Arc<dyn Clock>,
        extra_rules: &str,
        inventory_extra: &str,
        adjust: impl FnOnce(&mut Config) + Send + 'static,
    ) -> Harness {
        let (extra_rules, inventory_extra) = (extra_rules.to_owned(), inventory_extra.to_owned());
        Harness::builder(move |echo_url| charter(echo_url, &extra_rules, &inventory_extra))
            .clock(clock)
            .configure(adjust)
            .start()
            .await
    }
}

fn is_error(body: &Value) -> bool {
    body["result"]["isError"] == json!(true)
}

fn text_of(body: &Value) -> String {
    body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_denied_and_recorded() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (session, token) = h.open_session("1h").await;

    let ok = h.call(&token, "hello world").await;
    assert!(!is_error(&ok), "{ok}");
    assert_eq!(text_of(&ok), "hello world");
    let denied = h.call(&token, "hello secret").await;
    assert!(is_error(&denied), "{denied}");
    assert!(
        text_of(&denied).contains("prohibited by rule `echo-secret`"),
        "{denied}"
    );
    assert_eq!(
        warden_testkit::echo::count(&h.calls),
        1,
        "the denied call must not reach the upstream"
    );

    // A decision error denies: `text` must be a string for `prefix`/`regex`; the restrictive
    // rule errors, so the call is refused and never forwarded.
    let (_, err) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "echo.echo", "arguments": { "text": 42 } }),
        )
        .await;
    assert!(is_error(&err), "{err}");
    assert!(
        text_of(&err).contains("error occurred while deciding"),
        "{err}"
    );
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);

    let records = h.records().await;
    let kinds: Vec<String> = records
        .iter()
        .filter(|r| r.session.as_deref() == Some(session.as_str()))
        .map(|r| r.kind.to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "session_opened",
            "action_attempted",
            "action_decided",
            "action_forwarded",
            "action_result",
            "action_attempted",
            "action_decided",
            "action_attempted",
            "action_decided",
        ]
    );
    let decided = records
        .iter()
        .filter(|r| r.kind.to_string() == "action_decided")
        .nth(1)
        .unwrap();
    assert_eq!(decided.payload["decision"]["verdict"], "deny");
    assert_eq!(decided.payload["decision"]["rules"][0]["id"], "echo-secret");
    assert!(
        decided.payload["decision"]["charter"]
            .as_str()
            .unwrap()
            .starts_with("blake3:")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planes_and_tokens_are_separate() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, agent_token) = h.open_session("1h").await;
    // The agent token on the operator plane.
    let (status, body) = h
        .operator(reqwest::Method::GET, "/v1/sessions", &agent_token, None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "wrong_plane");
    // The operator token on the agent plane.
    let (status, body) = h.mcp(&h.operator_token, "tools/list", json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("operator tokens are refused")
    );
    // Garbage and forged tokens.
    for bad in ["", "wa_not-a-real-token", "Basic abc"] {
        let (status, body) = h.mcp(bad, "tools/list", json!({})).await;
        assert_eq!(status, 401, "{bad}: {body}");
        assert_eq!(body["jsonrpc"], "2.0");
    }
    let (status, _) = h
        .operator(reqwest::Method::GET, "/v1/sessions", "wo_forged", None)
        .await;
    assert_eq!(status, 401);
    // A refusal before the body is read closes the connection instead of reusing it.
    let resp = h
        .http
        .post(format!("http://{}/mcp", h.agent_addr))
        .bearer_auth("wa_forged")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["connection"], "close");
    // Tokens are stored hashed: the database never holds the token itself.
    let db = std::fs::read(h.data.join("state.db")).unwrap();
    let needle = agent_token.as_bytes();
    assert!(
        !db.windows(needle.len()).any(|w| w == needle),
        "the session token is stored in clear"
    );
    // Unknown principal, wrong agent.
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            "/v1/sessions",
            &h.operator_token,
            Some(json!({ "agent": "agent-1", "user": "mallory" })),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("principals: alice"),
        "{body}"
    );
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            "/v1/sessions",
            &h.operator_token,
            Some(json!({ "agent": "other", "user": "alice" })),
        )
        .await;
    assert_eq!(status, 400);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_sessions_are_refused() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let h = Harness::start(clock.clone()).await;
    let (id, token) = h.open_session("10m").await;
    assert!(!is_error(&h.call(&token, "hello").await));

    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/sessions/{id}/revoke"),
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    // Refused at authentication, before the governor (which checks again on every action).
    let (status, revoked) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "echo.echo", "arguments": { "text": "hello" } }),
        )
        .await;
    assert_eq!(status, 401, "{revoked}");
    assert!(
        revoked["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{revoked}"
    );

    let (_, token2) = h.open_session("10m").await;
    clock.advance(time::Duration::minutes(11));
    let (status, expired) = h
        .mcp(
            &token2,
            "tools/call",
            json!({ "name": "echo.echo", "arguments": { "text": "hello" } }),
        )
        .await;
    assert_eq!(status, 401, "{expired}");
    assert!(
        expired["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{expired}"
    );
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);
    let kinds: Vec<String> = h
        .records()
        .await
        .iter()
        .map(|r| r.kind.to_string())
        .collect();
    assert!(kinds.contains(&"session_revoked".to_owned()));
    assert!(kinds.contains(&"session_refused".to_owned()));
    assert!(kinds.contains(&"session_expired".to_owned()));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preapproved_scope_holds_under_concurrency() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (h, token) = (h.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            // The fifth use escalates to approval (a 60 s wait): give it a short leash.
            let call = h.mcp(&token, "tools/call", json!({ "name": "echo.echo", "arguments": { "text": format!("counted {i}") } }));
            matches!(tokio::time::timeout(Duration::from_secs(5), call).await, Ok((200, ref body)) if !is_error(body))
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "exactly the scope's 5 uses run");
    assert_eq!(warden_testkit::echo::count(&h.calls), 5);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_waiting_calls_and_keeps_their_requests() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let (h2, t2) = (h.clone(), token.clone());
    let pending = tokio::spawn(async move { h2.call(&t2, "ask for it").await });
    // Wait until the approval request is in the ledger, then shut down.
    let started = Instant::now();
    loop {
        let kinds: Vec<String> = h
            .records()
            .await
            .iter()
            .map(|r| r.kind.to_string())
            .collect();
        if kinds.contains(&"approval_requested".to_owned()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no approval request recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gw = h.take();
    let t0 = Instant::now();
    gw.shutdown().await;
    let answer = pending.await.unwrap();
    assert!(is_error(&answer), "{answer}");
    assert!(text_of(&answer).contains("shutting down"), "{answer}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "shutdown waited for the approval timeout"
    );
    let kinds: Vec<String> = h
        .records()
        .await
        .iter()
        .map(|r| r.kind.to_string())
        .collect();
    // The request is not timed out by a shutdown: it stays pending, decidable after a restart.
    assert!(!kinds.contains(&"approval_timed_out".to_owned()));
    assert_eq!(kinds.last().map(String::as_str), Some("gateway_stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ledger_denies_and_nothing_unrecorded_runs() {
    let h = Harness::start_full(Arc::new(SystemClock), "", Some(64 * 1024)).await;
    let (_, token) = h.open_session("1h").await;
    let big = "hello ".to_owned() + &"x".repeat(3000);
    let mut refused = None;
    for i in 0..200 {
        let body = h.call(&token, &format!("{big} {i}")).await;
        if is_error(&body) {
            refused = Some((i, body));
            break;
        }
    }
    let (i, body) = refused.expect("the ledger never filled up");
    assert!(
        text_of(&body).contains("the ledger cannot record it"),
        "{body}"
    );
    // Every call that ran was recorded before it ran: the upstream saw exactly the calls
    // before the refusal, and the later ones are refused too.
    assert_eq!(warden_testkit::echo::count(&h.calls), i);
    let again = h.call(&token, "hello again").await;
    assert!(is_error(&again));
    assert_eq!(warden_testkit::echo::count(&h.calls), i);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_ledger_denies() {
    use sqlx::Connection as _;
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    assert!(!is_error(&h.call(&token, "hello before").await));
    // Another process holds the write lock: the ledger cannot write (as it cannot on a
    // read-only file system), and the call must be refused, not run.
    let mut other = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        h.data.join("ledger.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();
    let body = h.call(&token, "hello during").await;
    assert!(
        is_error(&body) && text_of(&body).contains("the ledger cannot record it"),
        "{body}"
    );
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    drop(other);
    assert!(
        !is_error(&h.call(&token, "hello after").await),
        "the ledger recovers once writable"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tools_and_methods_are_refused_and_recorded() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    for name in ["nowhere.tool", "no-dot"] {
        let (status, body) = h
            .mcp(
                &token,
                "tools/call",
                json!({ "name": name, "arguments": {} }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no upstream server offers this tool"),
            "{body}"
        );
    }
    let (_, body) = h.mcp(&token, "foo/bar", json!({})).await;
    assert_eq!(body["error"]["code"], -32601, "{body}");
    let (_, body) = h
        .mcp(&token, "logging/setLevel", json!({ "level": "debug" }))
        .await;
    assert!(body["error"].is_object(), "{body}");
    let attempts: Vec<Value> = h
        .records()
        .await
        .into_iter()
        .filter(|r| r.kind.to_string() == "action_attempted")
        .map(|r| r.payload)
        .collect();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["tool"], "nowhere.tool");
    assert!(attempts[0]["refused"].is_string());
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    h.stop().await;
}

/// The `action_result` records of `action`.
async fn results_of(h: &Harness, action: &str) -> Vec<Value> {
    h.records()
        .await
        .into_iter()
        .filter(|r| r.kind.to_string() == "action_result" && r.payload["action"] == action)
        .map(|r| r.payload)
        .collect()
}

/// Issue 10, point 6: a decide-API action whose result is never reported ends in the ledger
/// as `unknown` once its deadline passes; a late report is still recorded after it. Before,
/// no `action_result` was ever written for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreported_result_is_recorded_as_unknown_after_its_deadline() {
    let h = Harness::start_configured(Arc::new(SystemClock), "", |c| {
        c.result_deadline = Duration::from_secs(1);
    })
    .await;
    let (_, token) = h.open_session("1h").await;
    let (status, body) = h.decide(&token, "hello unreported", None).await;
    assert_eq!(status, 200, "{body}");
    let action = body["action"].as_str().unwrap().to_owned();
    let mut results = Vec::new();
    for _ in 0..100 {
        results = results_of(&h, &action).await;
        if !results.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["status"], "unknown");
    assert_eq!(
        results[0]["reason"],
        "no result was recorded within the deadline"
    );
    // A report that comes late is still recorded, after the `unknown`.
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
    let results = results_of(&h, &action).await;
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[1]["status"], "ok");
    h.stop().await;
}

/// Issue 10, point 6: an action forwarded but without a recorded result when the gateway
/// stops ends in the ledger as `unknown`, before `gateway_stopped`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_without_a_result_at_shutdown_is_recorded_as_unknown() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let (status, body) = h.decide(&token, "hello cut off", None).await;
    assert_eq!(status, 200, "{body}");
    let action = body["action"].as_str().unwrap().to_owned();
    h.stop().await;
    let results = results_of(&h, &action).await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["status"], "unknown");
    assert_eq!(
        results[0]["reason"],
        "the gateway stopped before the action's result was recorded"
    );
    let kinds = h.kinds().await;
    let result_at = kinds.iter().rposition(|k| k == "action_result").unwrap();
    let stopped_at = kinds.iter().rposition(|k| k == "gateway_stopped").unwrap();
    assert!(result_at < stopped_at, "{kinds:?}");
}
