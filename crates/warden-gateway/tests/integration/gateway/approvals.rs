//! Human approval, end to end in-process: requests for every kind of escalation, approvers and
//! their authority, binding and single use, the waiting call, signed links, restarts, and the
//! adversarial cases named as such.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_core::{ManualClock, SystemClock};

use super::{Harness, Start as _, is_error, text_of};

fn refusals(records: &[warden_audit::Record]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.kind.to_string() == "approval_refused")
        .map(|r| r.payload["refusal"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorised_approver_releases_the_waiting_mcp_call() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (session, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "ask for it").await });

    let list = h.wait_for_approval(&bob, 1).await;
    let req = &list[0];
    // What the approver sees.
    assert_eq!(req["status"], "pending");
    assert_eq!(req["agent"], "agent-1");
    assert_eq!(req["principal"], "alice");
    assert_eq!(req["session"], session.as_str());
    assert_eq!(req["task"], "testing");
    assert_eq!(req["tool"], "echo.echo");
    assert_eq!(req["arguments"], json!({ "text": "ask for it" }));
    assert_eq!(req["reason"], "rule");
    assert!(req["why"].as_str().unwrap().contains("echo-ask"), "{req}");
    assert_eq!(req["rules"][0]["id"], "echo-ask");
    assert!(req["rules"][0]["location"]["line"].as_u64().unwrap() > 0);
    assert!(req["requested_at"].is_string() && req["deadline"].is_string());
    assert_eq!(req["approvers"], json!(["bob", "carol"]));
    assert_eq!(req["model_turns"], json!([]));
    assert_eq!(
        warden_testkit::echo::count(&h.calls),
        0,
        "nothing runs before approval"
    );

    let id = req["id"].as_str().unwrap();
    let (status, body) = h
        .operator(
            reqwest::Method::GET,
            &format!("/v1/approvals/{id}"),
            &bob,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], id);

    let (status, body) = h
        .decide_approval(&bob, id, "approve", Some("looks right"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "granted");
    let answer = call.await.unwrap();
    assert!(!is_error(&answer), "{answer}");
    assert_eq!(text_of(&answer), "ask for it");
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);

    let records = h.records().await;
    let granted = records
        .iter()
        .find(|r| r.kind.to_string() == "approval_granted")
        .unwrap();
    assert_eq!(granted.payload["approver"], "bob");
    assert_eq!(granted.payload["reason"], "looks right");
    let kinds: Vec<String> = records.iter().map(|r| r.kind.to_string()).collect();
    let pos = |k: &str| kinds.iter().position(|x| x == k).unwrap();
    assert!(pos("approval_requested") < pos("approval_granted"));
    assert!(pos("approval_granted") < pos("approval_used"));
    assert!(pos("approval_used") < pos("action_result"));
    let (_, shown) = h
        .operator(
            reqwest::Method::GET,
            &format!("/v1/approvals/{id}"),
            &bob,
            None,
        )
        .await;
    assert_eq!(shown["status"], "used");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_escalation_raises_a_request() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    // Default posture: no rule matches.
    let (status, body) = h.decide(&token, "nothing matches this", None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["verdict"], "ask");
    assert_eq!(body["refusal"], "approval_pending");
    // Preapproved scope overflow: five uses, the sixth asks.
    for i in 0..5 {
        let (_, b) = h.decide(&token, &format!("counted {i}"), None).await;
        assert_eq!(b["verdict"], "allow", "{b}");
    }
    let (status, _) = h.decide(&token, "counted 5", None).await;
    assert_eq!(status, 202);
    // Conservative posture: an autonomous action asks.
    let c = h
        .set_control(json!({ "action": "conservative", "scope": "gateway", "reason": "testing" }))
        .await;
    let (status, _) = h.decide(&token, "hello there", None).await;
    assert_eq!(status, 202);
    h.lift_control(c["id"].as_str().unwrap()).await;

    let list = h.wait_for_approval(&bob, 3).await;
    let mut reasons: Vec<&str> = list.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        ["conservative_posture", "default_posture", "scope_exceeded"]
    );
    let default = list
        .iter()
        .find(|r| r["reason"] == "default_posture")
        .unwrap();
    assert_eq!(default["authority_for"], json!(["default"]));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_the_agent_tries_to_approve_its_own_request_on_both_planes() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (status, body) = h.decide(&token, "ask me", None).await;
    assert_eq!(status, 202);
    let id = body["approval"]["id"].as_str().unwrap().to_owned();

    // Operator plane, with the agent's session token.
    let (status, body) = h.decide_approval(&token, &id, "approve", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "wrong_plane");
    // Agent plane: there is no approval channel there.
    let resp = h
        .http
        .post(format!("http://{}/v1/approvals/{id}/approve", h.agent_addr))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "agent_credential");
    // Nor through MCP: no tool or method decides approvals.
    let (_, body) = h
        .mcp(&token, "approvals/approve", json!({ "id": id }))
        .await;
    assert_eq!(body["error"]["code"], -32601, "{body}");

    let (_, shown) = h
        .operator(
            reqwest::Method::GET,
            &format!("/v1/approvals/{id}"),
            &bob,
            None,
        )
        .await;
    assert_eq!(shown["status"], "pending");
    let records = h.records().await;
    let refused: Vec<&warden_audit::Record> = records
        .iter()
        .filter(|r| r.kind.to_string() == "approval_refused")
        .collect();
    assert_eq!(refused.len(), 2, "both attempts recorded");
    assert!(
        refused
            .iter()
            .all(|r| r.payload["refusal"] == "agent_credential")
    );
    assert_eq!(refused[0].payload["channel"], "operator_plane");
    assert_eq!(refused[1].payload["channel"], "agent_plane");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_approvers_without_the_authority_and_self_approval() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let dave = h.approver_token("dave").await;
    let alice = h.approver_token("alice").await;
    let (_, body) = h.decide(&token, "ask me", None).await;
    let id = body["approval"]["id"].as_str().unwrap().to_owned();

    // An approver without the authority for the rule.
    let (status, body) = h.decide_approval(&dave, &id, "approve", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("no_authority"))
    );
    let (status, _) = h.decide_approval(&dave, &id, "deny", None).await;
    assert_eq!(status, 403);
    // Self-approval under separation of duties: alice holds the role, but the agent acts
    // for her.
    let (status, body) = h.decide_approval(&alice, &id, "approve", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("self_approval"))
    );
    // An admin credential is not an approver's.
    let (status, body) = h
        .decide_approval(&h.operator_token, &id, "approve", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_an_approver"))
    );
    // An approver's credential opens no sessions.
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            "/v1/sessions",
            &dave,
            Some(json!({ "agent": "agent-1", "user": "dave" })),
        )
        .await;
    assert_eq!(status, 403);
    // An unknown principal cannot be given a credential.
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            "/v1/operator-tokens",
            &h.operator_token,
            Some(json!({ "name": "x", "role": "approver", "principal": "mallory" })),
        )
        .await;
    assert_eq!(status, 400);

    let (_, shown) = h
        .operator(
            reqwest::Method::GET,
            &format!("/v1/approvals/{id}"),
            &dave,
            None,
        )
        .await;
    assert_eq!(shown["status"], "pending");
    let records = h.records().await;
    assert_eq!(
        refusals(&records),
        [
            "no_authority",
            "no_authority",
            "self_approval",
            "not_an_approver"
        ]
    );
    let issued: Vec<&Value> = records
        .iter()
        .filter(|r| r.kind.to_string() == "operator_token_issued")
        .map(|r| &r.payload)
        // The bootstrap token, made offline, is recorded at its first use.
        .filter(|p| p["offline"] == false)
        .collect();
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[0]["principal"], "dave");
    assert_eq!(issued[0]["by"], "bootstrap");
    assert!(
        issued.iter().all(|p| p.get("token").is_none()),
        "no secret in the ledger"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_a_quorum_reached_with_the_same_approver_twice() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let bob_again = h.approver_token("bob").await;
    let carol = h.approver_token("carol").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "quorum please").await });
    let id = h.wait_for_approval_id(&bob).await;

    let (status, body) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("counted")));
    // The same approver, with the same or another credential, does not count twice.
    for t in [&bob, &bob_again] {
        let (status, body) = h.decide_approval(t, &id, "approve", None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("duplicate_approver"))
        );
    }
    assert!(!call.is_finished(), "one approver is not a quorum of two");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    let (status, body) = h.decide_approval(&carol, &id, "approve", None).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("granted")));
    let answer = call.await.unwrap();
    assert!(!is_error(&answer), "{answer}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_a_replayed_approval_and_arguments_a_used_for_b() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let (other_session_token, other_token) = h.open_session("1h").await;
    let _ = other_session_token;
    let bob = h.approver_token("bob").await;
    let (_, a) = h.decide(&token, "ask A", None).await;
    let id_a = a["approval"]["id"].as_str().unwrap().to_owned();
    let (status, _) = h.decide_approval(&bob, &id_a, "approve", None).await;
    assert_eq!(status, 200);

    // Arguments B are not released by the approval of A: they raise their own request.
    let (status, b) = h.decide(&token, "ask B", None).await;
    assert_eq!(status, 202, "{b}");
    assert_ne!(b["approval"]["id"], a["approval"]["id"]);
    // Nor is the same action in another session.
    let (status, _) = h.decide(&other_token, "ask A", None).await;
    assert_eq!(status, 202);
    // A, retried, uses the grant — once.
    let (status, used) = h.decide(&token, "ask A", None).await;
    assert_eq!(
        (status, used["verdict"].as_str()),
        (200, Some("allow")),
        "{used}"
    );
    let (status, again) = h.decide(&token, "ask A", None).await;
    assert_eq!(status, 202, "a used approval releases nothing: {again}");
    assert_ne!(again["approval"]["id"], a["approval"]["id"]);
    // Replaying the decision on the used request is refused.
    let (status, body) = h.decide_approval(&bob, &id_a, "approve", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("replay"))
    );

    let records = h.records().await;
    let used: Vec<&warden_audit::Record> = records
        .iter()
        .filter(|r| r.kind.to_string() == "approval_used")
        .collect();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0].payload["approval"], id_a.as_str());
    assert_eq!(refusals(&records), ["replay"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_refuses_the_waiting_call_and_its_retries() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let carol = h.approver_token("carol").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "ask to delete").await });
    let id = h.wait_for_approval_id(&carol).await;
    let (status, body) = h
        .decide_approval(&carol, &id, "deny", Some("not today"))
        .await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("denied")));
    let answer = call.await.unwrap();
    assert!(is_error(&answer));
    let text = text_of(&answer);
    assert!(text.contains("denied by `carol`: not today"), "{text}");
    // The same action again: refused at once with the denial.
    let retry = h.call(&token, "ask to delete").await;
    assert!(text_of(&retry).contains("was denied by `carol`"), "{retry}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    let records = h.records().await;
    let denied = records
        .iter()
        .find(|r| r.kind.to_string() == "approval_denied")
        .unwrap();
    assert_eq!(denied.payload["approver"], "carol");
    assert_eq!(denied.payload["reason"], "not today");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_denies_with_a_clear_message() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let h = Arc::new(Harness::start(clock.clone()).await);
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "ask and wait").await });
    let id = h.wait_for_approval_id(&bob).await;
    clock.advance(time::Duration::seconds(61));
    let answer = call.await.unwrap();
    assert!(is_error(&answer));
    assert!(
        text_of(&answer).contains("none was given before the deadline (60s"),
        "{answer}"
    );
    // Too late to approve.
    let (status, body) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_decided"))
    );
    let kinds = h.kinds().await;
    assert!(kinds.contains(&"approval_timed_out".to_owned()));
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_approver_available_denies_at_once() {
    // A rule nobody may approve (the `approver` role covers `echo-*`, not `lonely`).
    let h = Harness::start_with(
        Arc::new(SystemClock),
        "    - { id: lonely, tool: echo.echo, tier: approval, args: { text: { prefix: lonely } } }\n",
    )
    .await;
    let (_, token) = h.open_session("1h").await;
    let (status, body) = h.decide(&token, "lonely call", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["refusal"], "approval_unavailable");
    assert!(
        body["message"].as_str().unwrap().contains("`lonely`"),
        "{body}"
    );
    assert!(h.kinds().await.contains(&"approval_unavailable".to_owned()));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_pending_requests_decidable() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (status, first) = h.decide(&token, "ask across a restart", None).await;
    assert_eq!(status, 202);
    let (status, _) = h.decide(&token, "ask across a restart, too", None).await;
    assert_eq!(status, 202);
    h.restart().await;
    let list = h.wait_for_approval(&bob, 2).await;
    assert_eq!(list.len(), 2);
    let id = first["approval"]["id"].as_str().unwrap();
    let (status, body) = h.decide_approval(&bob, id, "approve", None).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("granted")),
        "{body}"
    );
    let (status, body) = h.decide(&token, "ask across a restart", None).await;
    assert_eq!(
        (status, body["verdict"].as_str()),
        (200, Some("allow")),
        "{body}"
    );
    h.stop().await;
}

/// Issue 10, point 12: a grant does not outlive the charter it was given under. Approved,
/// then the gateway restarts with a changed charter: the same call is refused, because the
/// authority and quorum that granted it may no longer hold. Before, the grant released the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_given_under_another_charter_releases_nothing() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (status, first) = h.decide(&token, "ask before the change", None).await;
    assert_eq!(status, 202, "{first}");
    let id = first["approval"]["id"].as_str().unwrap();
    let (status, body) = h.decide_approval(&bob, id, "approve", None).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("granted")),
        "{body}"
    );
    // The charter changes (one more rule) while the grant waits to be used.
    let charter = std::fs::read_to_string(h.config.charters.first()).unwrap();
    let changed = charter.replace(
        "  rules:\n",
        "  rules:\n    - { id: added-later, tool: echo.echo, tier: autonomous, args: { text: { prefix: zzz } } }\n",
    );
    assert_ne!(charter, changed);
    std::fs::write(h.config.charters.first(), changed).unwrap();
    h.restart().await;
    let (status, body) = h.decide(&token, "ask before the change", None).await;
    assert_ne!(body["verdict"].as_str(), Some("allow"), "{status} {body}");
    assert!(
        body.to_string().contains("was given under charter"),
        "{status} {body}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decide_api_long_polls_and_a_dropped_connection_picks_up_the_decision() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    // A short long-poll ends with `pending`.
    let (status, body) = h.decide(&token, "ask patiently", Some("1s")).await;
    assert_eq!(
        (status, body["verdict"].as_str()),
        (202, Some("ask")),
        "{body}"
    );
    let id = body["approval"]["id"].as_str().unwrap().to_owned();
    // A long one returns as soon as the decision is made.
    let (h2, t2) = (h.clone(), token.clone());
    let poll = tokio::spawn(async move { h2.decide(&t2, "ask patiently", Some("60s")).await });
    // An MCP call for the same action that the client abandons: it must not use the grant.
    let (h3, t3) = (h.clone(), token.clone());
    let abandoned = tokio::spawn(async move {
        let _ = tokio::time::timeout(
            Duration::from_millis(300),
            h3.mcp(
                &t3,
                "tools/call",
                json!({ "name": "echo.echo", "arguments": { "text": "ask patiently" } }),
            ),
        )
        .await;
    });
    abandoned.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 200);
    let (status, body) = poll.await.unwrap();
    assert_eq!(
        (status, body["verdict"].as_str()),
        (200, Some("allow")),
        "{body}"
    );
    assert_eq!(
        warden_testkit::echo::count(&h.calls),
        0,
        "the abandoned call did not run"
    );
    let used = h
        .records()
        .await
        .iter()
        .filter(|r| r.kind.to_string() == "approval_used")
        .count();
    assert_eq!(used, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_mcp_call_retried_picks_up_the_grant() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let params = json!({ "name": "echo.echo", "arguments": { "text": "ask once more" } });
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        h.mcp(&token, "tools/call", params.clone()),
    )
    .await;
    assert!(dropped.is_err(), "the call waits for approval");
    let id = h.wait_for_approval_id(&bob).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        warden_testkit::echo::count(&h.calls),
        0,
        "nobody was there to receive it"
    );
    let answer = h.call(&token, "ask once more").await;
    assert!(!is_error(&answer), "{answer}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_pending_requests_none_lost_or_double_released() {
    const N: usize = 1000;
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("8h").await;
    let bob = h.approver_token("bob").await;
    let shared = h.app_state();
    let session = shared.sessions.authenticate(&token).unwrap();
    // Every request waits in the real governor (no sockets: 1,000 open HTTP connections
    // would test the machine's file limits, not warden).
    let mut waiters = Vec::new();
    for i in 0..N {
        let (shared, session) = (shared.clone(), session.clone());
        waiters.push(tokio::spawn(async move {
            let r = shared
                .governor
                .authorize(
                    &session,
                    "echo.echo",
                    json!({ "text": format!("ask #{i}") }),
                    warden_core::gate::Via::DecideApi,
                )
                .await;
            (i, r.map(|a| a.action_id))
        }));
    }
    let (status, body) = h
        .operator(reqwest::Method::GET, "/v1/approvals", &bob, None)
        .await;
    assert_eq!(status, 200);
    let _ = body;
    let list = h.wait_for_approval(&bob, N).await;
    assert_eq!(list.len(), N, "none lost");
    // Approve every one, 8 at a time; each approval twice (the second must be refused).
    let ids: Vec<String> = list
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let bob = Arc::new(bob);
    let mut approvals = Vec::new();
    for chunk in ids.chunks(N / 8) {
        let (h, bob, chunk) = (h.clone(), bob.clone(), chunk.to_vec());
        approvals.push(tokio::spawn(async move {
            let mut refused = 0;
            for id in chunk {
                let (status, _) = h.decide_approval(&bob, &id, "approve", None).await;
                assert_eq!(status, 200);
                let (status, _) = h.decide_approval(&bob, &id, "approve", None).await;
                if status == 409 {
                    refused += 1;
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for a in approvals {
        refused += a.await.unwrap();
    }
    assert_eq!(refused, N, "every second approval was refused");
    let mut released = std::collections::HashSet::new();
    for w in waiters {
        let (i, r) = w.await.unwrap();
        let action = r.unwrap_or_else(|e| panic!("request {i} was not released: {}", e.message));
        assert!(released.insert(action));
    }
    assert_eq!(released.len(), N);
    let records = h.records().await;
    let used: std::collections::HashSet<String> = records
        .iter()
        .filter(|r| r.kind.to_string() == "approval_used")
        .map(|r| r.payload["approval"].as_str().unwrap().to_owned())
        .collect();
    let used_count = records
        .iter()
        .filter(|r| r.kind.to_string() == "approval_used")
        .count();
    assert_eq!(
        (used.len(), used_count),
        (N, N),
        "each released exactly once"
    );
    h.stop().await;
}

/// A webhook receiver: every body it gets, in order.
async fn receiver() -> (String, Arc<std::sync::Mutex<Vec<(Value, String)>>>) {
    let got: Arc<std::sync::Mutex<Vec<(Value, String)>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let g = g.clone();
            async move {
                let sig = headers
                    .get("x-warden-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                g.lock()
                    .unwrap()
                    .push((serde_json::from_str(&body).unwrap(), sig));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_links_decide_and_adversarial_forged_or_expired_signatures_are_refused() {
    let (hook, got) = receiver().await;
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let h = Arc::new(
        Harness::start_configured(clock.clone(), "", move |c| {
            c.approval_webhook = Some(warden_gateway::config::Webhook {
                url: hook.parse().unwrap(),
                slack: false,
            });
        })
        .await,
    );
    // Links point at the real operator plane.
    let public = format!("http://{}", h.operator_addr);
    let (_, token) = h.open_session("1h").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "ask by webhook").await });
    let started = Instant::now();
    let payload = loop {
        if let Some((p, _)) = got.lock().unwrap().first().cloned() {
            break p;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no webhook");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(payload["type"], "approval.requested");
    assert_eq!(payload["approval"]["tool"], "echo.echo");
    let links = payload["links"].as_array().unwrap();
    let bob = links.iter().find(|l| l["approver"] == "bob").unwrap();
    // The configured public URL is `http://127.0.0.1`; aim at the operator plane's port.
    let fix = |u: &str| u.replacen("http://127.0.0.1", &public, 1);
    let approve = fix(bob["approve"].as_str().unwrap());
    let deny = fix(bob["deny"].as_str().unwrap());
    let http = reqwest::Client::new();

    // A GET shows a page and decides nothing (link previewers fetch links).
    let page = http.get(&approve).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("<form method=post>"));
    // Forged: the signature of the deny link on the approve URL; a changed approver.
    let deny_sig = deny.split("sig=").nth(1).unwrap();
    let forged = format!("{}sig={deny_sig}", approve.split("sig=").next().unwrap());
    let r = http.post(&forged).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let as_carol = approve.replace("approver=bob", "approver=carol");
    let r = http.post(&as_carol).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(!call.is_finished());
    // The real link approves, as bob.
    let r = http
        .post(&approve)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("reason=via+slack")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A browser's form post gets a page back.
    assert!(r.text().await.unwrap().contains("Done: granted"));
    let id = payload["approval"]["id"].as_str().unwrap();
    let bob_token = h.approver_token("bob").await;
    let (_, body) = h
        .operator(
            reqwest::Method::GET,
            &format!("/v1/approvals/{id}"),
            &bob_token,
            None,
        )
        .await;
    assert_eq!(body["approvals"][0]["approver"], "bob");
    assert_eq!(body["approvals"][0]["channel"], "link");
    assert_eq!(body["approvals"][0]["reason"], "via slack");
    let answer = call.await.unwrap();
    assert!(!is_error(&answer), "{answer}");
    // Replayed: the same link again (a program gets JSON).
    let r = http.post(&approve).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "replay");
    // A link without its signature is a clear error in the API's shape.
    let r = http
        .post(approve.split('&').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_link");
    // Expired: a new request's link, used after its deadline.
    let (h2, t2) = (h.clone(), token.clone());
    let late = tokio::spawn(async move { h2.call(&t2, "ask by webhook, late").await });
    let started = Instant::now();
    let second = loop {
        if let Some((p, _)) = got.lock().unwrap().get(1).cloned() {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no second webhook"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let link = second["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["approver"] == "carol")
        .unwrap()["approve"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(time::Duration::seconds(61));
    let r = http.post(fix(&link)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 410);
    let answer = late.await.unwrap();
    assert!(is_error(&answer));

    let records = h.records().await;
    assert_eq!(
        refusals(&records),
        // Refusals without a credential: the first per source and window in full, the second
        // bad signature counted into the window's aggregate (issue 10, point 13).
        [
            "bad_signature",
            "replay",
            "anonymous_refusals",
            "link_expired"
        ]
    );
    let notified = records
        .iter()
        .filter(|r| r.kind.to_string() == "approval_notified")
        .count();
    assert_eq!(notified, 2);
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_does_not_release_a_call_whose_session_was_revoked_meanwhile() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (session, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "ask then revoke").await });
    let id = h.wait_for_approval_id(&bob).await;
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/sessions/{session}/revoke"),
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 200);
    let answer = call.await.unwrap();
    assert!(is_error(&answer));
    assert!(
        text_of(&answer).contains("it was approved, but the session was revoked"),
        "{answer}"
    );
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    h.stop().await;
}

/// Issue 10, point 12: a grant was used although an approver's authority was withdrawn after
/// they voted. Now a grant whose voter's credential was revoked since is not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_a_grant_whose_voters_credential_was_revoked_is_not_used() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_session, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (status, body) = h.decide(&token, "ask for the revoked", None).await;
    assert_eq!(status, 202, "{body}");
    let id = body["approval"]["id"].as_str().unwrap().to_owned();
    let (status, body) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "granted");
    // The admin revokes bob's credential before the grant is used.
    let (_, list) = h
        .operator(
            reqwest::Method::GET,
            "/v1/operator-tokens",
            &h.operator_token,
            None,
        )
        .await;
    let bobs = list["operator_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["principal"] == "bob")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/operator-tokens/{bobs}/revoke"),
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = h.decide(&token, "ask for the revoked", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "deny", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no longer all have the authority"),
        "{body}"
    );
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    h.stop().await;
}
