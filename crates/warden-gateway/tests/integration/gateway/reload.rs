//! Live reload of the charter (`POST /v1/charter/reload`, `warden_gateway::reload::reload`):
//! decisions under load while charters flip, a charter that does not compile, what a reload
//! cannot change, the change summary, and servers started and stopped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;
use warden_gateway::reload::{Via, reload};

use super::{Harness, Start as _, is_error};

/// A rule over `flip…` texts whose tier a reload flips.
const FLIP_ALLOWED: &str =
    "    - { id: flip, tool: echo.echo, tier: autonomous, args: { text: { prefix: flip } } }\n";

/// The charter file the gateway started with.
fn charter_text(h: &Harness) -> String {
    std::fs::read_to_string(h.config.charters.first()).unwrap()
}

fn write_charter(h: &Harness, text: &str) {
    std::fs::write(h.config.charters.first(), text).unwrap();
}

/// `POST /v1/charter/reload` as the admin; the status and the answer.
pub(super) async fn reload_api(h: &Harness, body: Option<Value>) -> (u16, Value) {
    h.operator(
        reqwest::Method::POST,
        "/v1/charter/reload",
        &h.operator_token,
        body,
    )
    .await
}

/// `GET /v1/charter` as the admin.
async fn charter_in_force(h: &Harness) -> Value {
    let (status, body) = h
        .operator(reqwest::Method::GET, "/v1/charter", &h.operator_token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_every_call_is_decided_by_exactly_one_of_two_charters() {
    let h = Arc::new(Harness::start_with(Arc::new(SystemClock), FLIP_ALLOWED).await);
    let allowing = charter_text(&h);
    let denying = allowing.replace(
        "{ id: flip, tool: echo.echo, tier: autonomous",
        "{ id: flip, tool: echo.echo, tier: prohibited",
    );
    assert_ne!(allowing, denying);
    let hash_allowing = charter_in_force(&h).await["charter"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_session, token) = h.open_session("1h").await;

    const CALLERS: usize = 4;
    const CALLS: usize = 12;
    const FLIPS: usize = 8;
    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let (h, token) = (h.clone(), token.clone());
        callers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..CALLS {
                let text = format!("flip-{c}-{i}");
                if (c + i) % 2 == 0 {
                    let (status, body) = h
                        .mcp(
                            &token,
                            "tools/call",
                            json!({ "name": "echo.echo", "arguments": { "text": text } }),
                        )
                        .await;
                    assert_eq!(status, 200, "{body}");
                    answers.push((text, "mcp", !is_error(&body)));
                } else {
                    let (status, body) = h.decide(&token, &text, None).await;
                    assert_eq!(status, 200, "{body}");
                    answers.push((text, "decide", body["verdict"] == "allow"));
                }
            }
            answers
        }));
    }
    let flipper = {
        let h = h.clone();
        tokio::spawn(async move {
            let state = h.app_state();
            let mut hashes = Vec::new();
            for f in 0..FLIPS {
                let text = if f % 2 == 0 { &denying } else { &allowing };
                write_charter(&h, text);
                // Half through the API, half through the function the API calls.
                let loaded = if f % 2 == 0 {
                    let (status, body) = reload_api(&h, None).await;
                    assert_eq!(status, 200, "{body}");
                    body
                } else {
                    json!(reload(&state, Via::Cli, Some("test"), None).await.unwrap())
                };
                assert_eq!(loaded["unchanged"], false, "{loaded}");
                hashes.push(loaded["charter"].as_str().unwrap().to_owned());
                tokio::task::yield_now().await;
            }
            hashes
        })
    };
    let mut answers = Vec::new();
    for c in callers {
        answers.extend(c.await.unwrap());
    }
    let hashes = flipper.await.unwrap();
    let hash_denying = hashes[0].clone();
    assert!(
        hashes
            .iter()
            .all(|x| *x == hash_denying || *x == hash_allowing)
    );

    let records = h.records().await;
    let attempts: HashMap<String, (String, u64)> = records
        .iter()
        .filter(|r| r.kind.as_str() == "action_attempted")
        .filter_map(|r| {
            let text = r.payload["arguments"]["text"].as_str()?;
            Some((
                r.payload["action"].as_str()?.to_owned(),
                (text.to_owned(), r.seq),
            ))
        })
        .collect();
    let loaded: Vec<(u64, String)> = records
        .iter()
        .filter(|r| r.kind.as_str() == "charter_loaded")
        .map(|r| (r.seq, r.payload["charter"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(loaded.len(), FLIPS + 1, "one charter_loaded per reload");
    let mut decided: HashMap<String, (bool, String)> = HashMap::new();
    for r in records
        .iter()
        .filter(|r| r.kind.as_str() == "action_decided")
    {
        let action = r.payload["action"].as_str().unwrap();
        let Some((text, _)) = attempts.get(action) else {
            continue;
        };
        let charter = r.payload["decision"]["charter"]
            .as_str()
            .unwrap()
            .to_owned();
        let verdict = r.payload["decision"]["verdict"].as_str().unwrap();
        // Decided by one of the two charters, and as that charter says.
        if charter == hash_allowing {
            assert_eq!(verdict, "allow", "{text} under the allowing charter");
        } else {
            assert_eq!(charter, hash_denying, "{text}: an unknown charter");
            assert_eq!(verdict, "deny", "{text} under the denying charter");
        }
        // After the `charter_loaded` of the charter it names.
        assert!(
            loaded.iter().any(|(seq, h)| *h == charter && *seq < r.seq),
            "{text} decided under {charter} before it was loaded"
        );
        assert!(
            decided
                .insert(text.clone(), (verdict == "allow", charter))
                .is_none(),
            "{text} decided twice"
        );
    }
    // Every attempt has exactly one decision, and its answer matches the record.
    assert_eq!(answers.len(), CALLERS * CALLS);
    assert_eq!(decided.len(), answers.len());
    let (mut mcp_allowed, mut allowed_total) = (0, 0);
    for (text, path, allowed) in &answers {
        let (recorded, _) = &decided[text];
        assert_eq!(allowed, recorded, "{text} via {path}");
        if *allowed {
            allowed_total += 1;
            if *path == "mcp" {
                mcp_allowed += 1;
            }
        }
    }
    // Every allowed call was recorded as forwarded once, and every allowed MCP call reached
    // the echo server once (the decide API's are the agent's to run).
    let forwarded: HashSet<&str> = records
        .iter()
        .filter(|r| r.kind.as_str() == "action_forwarded")
        .filter_map(|r| r.payload["action"].as_str())
        .collect();
    let forwarded_ours = attempts
        .keys()
        .filter(|a| forwarded.contains(a.as_str()))
        .count();
    assert_eq!(forwarded_ours, allowed_total);
    assert_eq!(warden_testkit::echo::count(&h.calls), mcp_allowed as u64);
    // The reloads through the API and the function are recorded with their `via` and `by`.
    let reloads = h.records_of("charter_loaded").await;
    assert_eq!(reloads[1]["via"], "api");
    assert_eq!(reloads[1]["by"], "bootstrap");
    assert_eq!(reloads[2]["via"], "cli");
    assert_eq!(reloads[1]["previous"], hash_allowing.as_str());
    assert_eq!(
        reloads[1]["changes"]["rules"]["changed"]["ids"],
        json!(["flip"])
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charter_that_does_not_compile_is_refused_and_the_old_one_stays() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_session, token) = h.open_session("1h").await;
    let before = charter_in_force(&h).await;
    let good = charter_text(&h);
    let broken = good.replace(
        "tier: autonomous, args: { text: { prefix: hello } }",
        "tier: autonomus, args: { text: { prefix: hello } }",
    );
    assert_ne!(good, broken);
    write_charter(&h, &broken);
    let (status, body) = reload_api(&h, None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "charter_invalid");
    let errors = body["error"]["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("charter.yaml:9:")
                && e.as_str().unwrap().contains("autonomus")),
        "{body}"
    );
    let refused = h.records_of("charter_refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["via"], "api");
    assert_eq!(refused[0]["errors"], body["error"]["errors"]);
    assert_eq!(h.records_of("charter_loaded").await.len(), 1);
    // The old charter is in force and decides.
    let after = charter_in_force(&h).await;
    assert_eq!(after["charter"], before["charter"]);
    assert_eq!(after["generation"], 0);
    let (status, decided) = h.decide(&token, "hello", None).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["verdict"], "allow");
    assert_eq!(decided["decision"]["charter"], before["charter"]);
    // The file put right, a reload of the same charter changes nothing and records nothing.
    write_charter(&h, &good);
    let (status, body) = reload_api(&h, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unchanged"], true);
    assert_eq!(h.records_of("charter_loaded").await.len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_only_a_restart_can_change_is_refused() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let good = charter_text(&h);
    let cases = [
        (
            good.replace("id: agent-1,", "id: agent-2,"),
            "the gateway's agents cannot change on a live reload (added: agent-2; removed: agent-1)",
        ),
        (
            good.replace(
                "    - { id: echo, url:",
                "    - { id: child, command: [node, x.js], env: { K: \"${WARDEN_TEST_UNSET_VARIABLE_16}\" }, tools: [t] }\n    - { id: echo, url:",
            ),
            "WARDEN_TEST_UNSET_VARIABLE_16",
        ),
    ];
    for (text, expect) in cases {
        write_charter(&h, &text);
        let (status, body) = reload_api(&h, Some(json!({ "via": "cli" }))).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "charter_unchangeable", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{message}");
    }
    let refused = h.records_of("charter_refused").await;
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0]["via"], "cli");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("agents cannot change")
    );
    assert_eq!(h.records_of("charter_loaded").await.len(), 1);
    assert_eq!(h.app_state().upstreams.ids(), ["echo"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_added_is_started_and_one_removed_is_stopped() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_session, token) = h.open_session("1h").await;
    let good = charter_text(&h);
    let url = good
        .split("url: \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let added = good
        .replace(
            "actions:\n",
            &format!("    - {{ id: echo2, url: \"{url}\", tools: [echo] }}\nactions:\n"),
        )
        .replace(
            "  rules:\n",
            "  rules:\n    - { id: echo2-any, tool: echo2.echo, tier: autonomous }\n",
        );
    write_charter(&h, &added);
    let (status, body) = reload_api(&h, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["started"], json!(["echo2"]));
    assert_eq!(body["changes"]["servers"]["added"]["ids"], json!(["echo2"]));
    assert_eq!(
        body["changes"]["rules"]["added"]["ids"],
        json!(["echo2-any"])
    );
    assert_eq!(
        body["changes"]["tools"]["added"]["ids"],
        json!(["echo2.echo", "echo2.resources/read"])
    );
    assert_eq!(body["generation"], 1);
    // Its tool is callable now (the reload waited for the server to connect).
    let (status, answer) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "echo2.echo", "arguments": { "text": "anything" } }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(!is_error(&answer), "{answer}");
    let (_, listed) = h.mcp(&token, "tools/list", json!({})).await;
    assert!(listed.to_string().contains("echo2__echo"), "{listed}");
    // The metrics count the new tool by name (the label bounds follow the charter).
    let metrics = h
        .http
        .get(format!("http://{}/metrics", h.operator_addr))
        .bearer_auth(&h.operator_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("warden_decisions_total") && l.contains("tool=\"echo2.echo\"")),
        "{metrics}"
    );

    // Removed: stopped, its tool refused as not inventoried.
    write_charter(&h, &good);
    let (status, body) = reload_api(&h, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stopped"], json!(["echo2"]));
    assert_eq!(
        body["changes"]["servers"]["removed"]["ids"],
        json!(["echo2"])
    );
    assert_eq!(h.app_state().upstreams.ids(), ["echo"]);
    let resp = h
        .http
        .post(format!("http://{}/v1/decide", h.agent_addr))
        .bearer_auth(&token)
        .json(&json!({ "tool": "echo2.echo", "arguments": { "text": "x" } }))
        .send()
        .await
        .unwrap();
    let refused: Value = resp.json().await.unwrap();
    assert_eq!(refused["verdict"], "deny", "{refused}");
    assert_eq!(refused["refusal"], "not_inventoried", "{refused}");
    let (_, answer) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "echo2.echo", "arguments": { "text": "anything" } }),
        )
        .await;
    assert!(answer["error"].is_object() || is_error(&answer), "{answer}");
    // /readyz follows the charter in force.
    let ready: Value = h
        .http
        .get(format!("http://{}/readyz", h.agent_addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["upstreams"], json!({ "echo": "up" }), "{ready}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_approval_is_redecided_by_a_reload_through_the_api() {
    // End to end: a call waits for approval; the reload (the operator API) prohibits it; the
    // re-decision voids the request, after `charter_loaded` is recorded, and the waiting call
    // is refused without reaching the upstream.
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_session, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let call = {
        let (h, token) = (h.clone(), token.clone());
        tokio::spawn(async move { h.call(&token, "ask to void").await })
    };
    let id = h.wait_for_approval_id(&bob).await;
    let next = charter_text(&h).replacen(
        "authority:",
        "    - { id: echo-void, tool: echo.echo, tier: prohibited, args: { text: { prefix: \"ask to\" } } }\nauthority:",
        1,
    );
    write_charter(&h, &next);
    let (status, body) = reload_api(&h, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["redecided"],
        json!([{ "approval": id, "outcome": "voided" }]),
        "{body}"
    );
    let answer = call.await.unwrap();
    assert!(is_error(&answer), "{answer}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    // The re-decision is recorded after the charter it was made under.
    let records = h.records().await;
    let loaded = records
        .iter()
        .rfind(|r| r.kind.as_str() == "charter_loaded")
        .unwrap();
    let redecided = records
        .iter()
        .find(|r| r.kind.as_str() == "approval_redecided")
        .unwrap();
    assert!(loaded.seq < redecided.seq);
    assert_eq!(redecided.payload["charter"], loaded.payload["charter"]);
    assert_eq!(redecided.payload["outcome"], "voided");
    // An approver's grant after the void does not take.
    let (status, _) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 409);
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_definition_changed_is_restarted() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_session, token) = h.open_session("1h").await;
    let good = charter_text(&h);
    let old = h.app_state().upstreams.get("echo").unwrap();
    // The same echo server under another URL (a query it ignores): a changed definition.
    let changed = good.replace("/mcp\", tools: [echo]", "/mcp?v=2\", tools: [echo]");
    assert_ne!(changed, good);
    write_charter(&h, &changed);
    let (status, body) = reload_api(&h, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["changes"]["servers"]["changed"]["ids"],
        json!(["echo"])
    );
    assert_eq!(body["started"], json!(["echo"]));
    assert_eq!(body["stopped"], json!([]));
    let new = h.app_state().upstreams.get("echo").unwrap();
    assert!(!Arc::ptr_eq(&old, &new), "the server was not restarted");
    assert!(new.is_up());
    let answer = h.call(&token, "hello again").await;
    assert!(!is_error(&answer), "{answer}");
    h.stop().await;
}
