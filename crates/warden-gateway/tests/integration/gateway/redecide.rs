//! Approvals pending across a live reload (issue 16, point 4): each is decided again under
//! the charter put in force — voided when it denies the action now, released when it allows
//! it without approval, kept (and later grantable) when it still asks — and recorded as
//! `approval_redecided` before it takes effect.

use std::sync::Arc;

use serde_json::Value;
use warden_charter::CompiledCharter;
use warden_core::SystemClock;

use super::{Harness, Start as _, is_error, text_of};

/// The charter the harness started on, changed by `edit`, compiled.
fn candidate(h: &Harness, edit: impl FnOnce(String) -> String) -> Arc<CompiledCharter> {
    let text = std::fs::read_to_string(h.config.charters.first()).unwrap();
    let text = edit(text);
    let compiled = warden_charter::compile(&[warden_charter::Source::new("next.yaml", &text)])
        .unwrap_or_else(|d| panic!("{d:?}"));
    Arc::new(compiled.charter)
}

/// A rule added before the authority section.
fn with_rule(rule: &str) -> impl FnOnce(String) -> String {
    let rule = rule.to_owned();
    move |text| text.replacen("authority:", &format!("    - {rule}\nauthority:"), 1)
}

/// The records of `kind` for approval `id`.
async fn redecided(h: &Harness, id: &str) -> Vec<Value> {
    h.records_of("approval_redecided")
        .await
        .into_iter()
        .filter(|p| p["approval"] == id)
        .collect()
}

async fn approval_status(h: &Harness, bob: &str, id: &str) -> String {
    let (status, body) = h
        .operator(
            reqwest::Method::GET,
            &format!("/v1/approvals/{id}"),
            bob,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["status"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_whose_action_is_prohibited_now_is_refused_and_voided() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "ask to void").await });
    let id = h.wait_for_approval_id(&bob).await;

    let next = candidate(
        &h,
        with_rule(
            "{ id: echo-void, tool: echo.echo, tier: prohibited, args: { text: { prefix: \"ask to\" } } }",
        ),
    );
    let (previous, done) = warden_gateway::reload::put_in_force(&h.app_state(), next.clone()).await;
    assert_ne!(previous.hash, next.hash);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].approval, id);
    assert_eq!(done[0].outcome, "voided");

    let answer = call.await.unwrap();
    assert!(is_error(&answer), "{answer}");
    let message = text_of(&answer);
    assert!(message.contains("voided"), "{message}");
    assert!(message.contains(&next.hash.to_string()), "{message}");
    assert!(message.contains("echo-void"), "{message}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);

    let records = redecided(&h, &id).await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["outcome"], "voided");
    assert_eq!(r["charter"], next.hash.to_string());
    assert_eq!(r["previous"], previous.hash.to_string());
    assert_eq!(r["was"], "ask");
    assert_eq!(r["now"], "deny");
    assert!(r["action"].is_string());
    assert_eq!(approval_status(&h, &bob, &id).await, "voided");
    // adversarial: an approver's grant after the void does not take
    let (status, body) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_whose_action_is_autonomous_now_proceeds_once() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "ask to release").await });
    let id = h.wait_for_approval_id(&bob).await;

    let next = candidate(&h, |text| {
        text.replace(
            "tier: approval, args: { text: { prefix: ask } }, approval: { timeout: 60s } }",
            "tier: autonomous, args: { text: { prefix: ask } } }",
        )
    });
    let (_, done) = warden_gateway::reload::put_in_force(&h.app_state(), next.clone()).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].outcome, "released");

    let answer = call.await.unwrap();
    assert!(!is_error(&answer), "{answer}");
    assert_eq!(text_of(&answer), "ask to release");
    assert_eq!(warden_testkit::echo::count(&h.calls), 1, "released once");

    let r = &redecided(&h, &id).await[0];
    assert_eq!(r["outcome"], "released");
    assert_eq!(r["now"], "allow");
    assert_eq!(r["tier"], "autonomous");
    // Recorded as released, then used and forwarded.
    let records = h.records().await;
    let seq_of = |kind: &str| {
        records
            .iter()
            .find(|rec| rec.kind.to_string() == kind && rec.payload["approval"] == id.as_str())
            .map(|rec| rec.seq)
            .unwrap()
    };
    assert!(seq_of("approval_redecided") < seq_of("approval_used"));
    assert!(seq_of("approval_used") < seq_of("action_forwarded"));
    assert_eq!(approval_status(&h, &bob, &id).await, "used");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_that_still_asks_is_kept_and_a_later_grant_releases_it() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "ask to keep").await });
    let id = h.wait_for_approval_id(&bob).await;

    // Another charter (one more rule, elsewhere), under which the call still asks.
    let next = candidate(
        &h,
        with_rule(
            "{ id: echo-other, tool: echo.echo, tier: prohibited, args: { text: { prefix: unrelated } } }",
        ),
    );
    let (_, done) = warden_gateway::reload::put_in_force(&h.app_state(), next.clone()).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].outcome, "kept");
    let r = &redecided(&h, &id).await[0];
    assert_eq!(r["outcome"], "kept");
    assert_eq!(r["now"], "ask");
    assert_eq!(approval_status(&h, &bob, &id).await, "pending");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);

    // Not refused as given under another charter: it was rebound to the new one.
    let (status, body) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    let answer = call.await.unwrap();
    assert!(!is_error(&answer), "{answer}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_an_unused_grant_voided_by_a_reload_releases_no_retry() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    // The decide API without waiting: the request stays, granted, for the exact retry.
    let (status, body) = h.decide(&token, "ask for a grant", None).await;
    assert_eq!(status, 202, "{body}");
    let id = h.wait_for_approval_id(&bob).await;
    let (status, body) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(approval_status(&h, &bob, &id).await, "granted");

    let original = h.app_state().governor.charter_for("agent-1").unwrap();
    let next = candidate(
        &h,
        with_rule(
            "{ id: echo-void, tool: echo.echo, tier: prohibited, args: { text: { prefix: \"ask for\" } } }",
        ),
    );
    let (_, done) = warden_gateway::reload::put_in_force(&h.app_state(), next).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].outcome, "voided");
    assert_eq!(redecided(&h, &id).await[0]["status"], "granted");
    assert_eq!(approval_status(&h, &bob, &id).await, "voided");

    // The exact retry, under the charter that voided it: refused.
    let (status, body) = h.decide(&token, "ask for a grant", None).await;
    assert_eq!(body["verdict"], "deny", "{status} {body}");
    // And under the original charter again: the voided grant stays void; the retry asks anew.
    let (_, done) = warden_gateway::reload::put_in_force(&h.app_state(), original).await;
    assert!(done.is_empty(), "{done:?}");
    let (status, body) = h.decide(&token, "ask for a grant", None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["refusal"], "approval_pending");
    assert_ne!(body["approval"]["id"], id.as_str(), "{body}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    assert!(
        !h.records_of("approval_used")
            .await
            .iter()
            .any(|p| p["approval"] == id.as_str())
    );
    h.stop().await;
}

/// Two identical calls wait on one request (the second joins it); a release lets exactly one
/// through, as a grant does, and the upstream sees the action once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_a_release_releases_one_of_two_joined_calls() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (h1, t1) = (h.clone(), token.clone());
    let first = tokio::spawn(async move { h1.call(&t1, "ask twice").await });
    let id = h.wait_for_approval_id(&bob).await;
    let (h2, t2) = (h.clone(), token.clone());
    let second = tokio::spawn(async move { h2.call(&t2, "ask twice").await });
    // The second call joined the request.
    let started = std::time::Instant::now();
    while h.records_of("approval_awaited").await.is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let next = candidate(&h, |text| {
        text.replace(
            "tier: approval, args: { text: { prefix: ask } }, approval: { timeout: 60s } }",
            "tier: autonomous, args: { text: { prefix: ask } } }",
        )
    });
    let (_, done) = warden_gateway::reload::put_in_force(&h.app_state(), next).await;
    assert_eq!(done[0].outcome, "released");
    let answers = [first.await.unwrap(), second.await.unwrap()];
    let ran = answers.iter().filter(|a| !is_error(a)).count();
    assert_eq!(ran, 1, "{answers:?}");
    let refused = answers.iter().find(|a| is_error(a)).unwrap();
    assert!(text_of(refused).contains("releases one call"), "{refused}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);
    assert_eq!(
        h.records_of("approval_used")
            .await
            .iter()
            .filter(|p| p["approval"] == id.as_str())
            .count(),
        1
    );
    h.stop().await;
}

/// A release under a preapproved rule counts a scope use; once the scope is used up, the
/// next request asks again (scope exceeded) and is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preapproved_release_counts_a_use_and_a_used_up_scope_keeps_the_rest() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (status, _) = h.decide(&token, "ask first", None).await;
    assert_eq!(status, 202);
    let first = h.wait_for_approval_id(&bob).await;
    let (status, _) = h.decide(&token, "ask second", None).await;
    assert_eq!(status, 202);
    let list = h.wait_for_approval(&bob, 2).await;
    let second = list
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .find(|i| *i != first)
        .unwrap();

    let next = candidate(&h, |text| {
        text.replace(
            "tier: approval, args: { text: { prefix: ask } }, approval: { timeout: 60s } }",
            "tier: preapproved, args: { text: { prefix: ask } }, scope: { per_session: 1 } }",
        )
    });
    let (_, done) = warden_gateway::reload::put_in_force(&h.app_state(), next).await;
    let outcome = |id: &str| done.iter().find(|d| d.approval == id).unwrap().outcome;
    assert_eq!(outcome(&first), "released", "{done:?}");
    assert_eq!(outcome(&second), "kept", "{done:?}");
    let r = &redecided(&h, &second).await[0];
    assert_eq!(r["now"], "ask");
    assert!(r["why"].as_str().unwrap().contains("scope"), "{r}");
    // The scope is used up by the release: a new call of the rule asks too.
    let (status, body) = h.decide(&token, "ask third", None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["decision"]["reason"], "scope_exceeded", "{body}");
    h.stop().await;
}
