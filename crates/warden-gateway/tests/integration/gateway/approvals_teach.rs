//! Issue 13, end to end in-process: a denial reversed before its deadline (the same call,
//! retried, joins the pending request and is released by an approval), the earlier refusals
//! of an action on its next request, and `remember` refused where no rule allows it.

use std::sync::Arc;

use serde_json::json;
use warden_core::{ManualClock, SystemClock};

use super::{Harness, Start as _, is_error, text_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversed_denial_is_pending_again_and_the_retried_call_joins_it() {
    let h = Arc::new(Harness::start(Arc::new(SystemClock)).await);
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let carol = h.approver_token("carol").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "pay the plumber").await });
    let id = h.wait_for_approval_id(&bob).await;
    let (status, body) = h.decide_approval(&bob, &id, "deny", Some("who?")).await;
    assert_eq!(status, 200, "{body}");
    let answer = call.await.unwrap();
    assert!(
        is_error(&answer) && text_of(&answer).contains("denied"),
        "{answer}"
    );
    // Retried while denied: refused at once with the denial.
    let again = h.call(&token, "pay the plumber").await;
    assert!(text_of(&again).contains("was denied"), "{again}");

    // The agent cannot reverse it; carol can.
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/approvals/{id}/reverse"),
            &token,
            Some(json!({})),
        )
        .await;
    assert!(status == 401 || status == 403, "{status}");
    let (status, body) = h
        .decide_approval(&carol, &id, "reverse", Some("the plumber is ours"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "reversed");
    assert_eq!(body["approval"]["status"], "pending");
    assert_eq!(
        body["approval"]["reversals"][0]["denial"]["approver"],
        "bob"
    );
    // Twice: refused, recorded.
    let (status, body) = h.decide_approval(&carol, &id, "reverse", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_denied"))
    );

    // The same call, retried, joins the reversed request (no new one) and runs once approved.
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "pay the plumber").await });
    let pending = h.wait_for_approval(&bob, 1).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], id.as_str());
    let (status, body) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    let answer = call.await.unwrap();
    assert!(!is_error(&answer), "{answer}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 1);

    let kinds = h.kinds().await;
    let pos = |k: &str| kinds.iter().position(|x| x == k).unwrap();
    assert!(pos("approval_denied") < pos("approval_reversed"));
    assert!(pos("approval_reversed") < pos("approval_granted"));
    assert!(pos("approval_granted") < pos("approval_used"));
    let reversed = h.records_of("approval_reversed").await;
    assert_eq!(reversed.len(), 1);
    assert_eq!(reversed[0]["approver"], "carol");
    assert_eq!(reversed[0]["denied_by"], "bob");
    assert_eq!(reversed[0]["reason"], "the plumber is ours");
    let refused = h.records_of("approval_refused").await;
    assert!(
        refused.iter().any(|r| r["refusal"] == "not_denied"),
        "{refused:?}"
    );
    h.assert_ledger_verifies().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_request_shows_the_earlier_refusals_and_a_late_reversal_is_refused() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let h = Arc::new(Harness::start(clock.clone()).await);
    let (_, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let carol = h.approver_token("carol").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "wire it").await });
    let first = h.wait_for_approval_id(&bob).await;
    h.decide_approval(&bob, &first, "deny", None).await;
    assert!(is_error(&call.await.unwrap()));
    // Past the deadline: a reversal is refused (and recorded), and the next call asks anew.
    clock.advance(time::Duration::seconds(61));
    let (status, body) = h.decide_approval(&carol, &first, "reverse", None).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "expired");
    // The sweeper (every 250 ms) forgets the denial past its deadline.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "wire it").await });
    let second = loop {
        let list = h.wait_for_approval(&bob, 1).await;
        if list[0]["id"] != first.as_str() {
            break list[0].clone();
        }
    };
    assert_eq!(second["earlier"][0]["id"], first.as_str());
    assert_eq!(second["earlier"][0]["status"], "denied");
    assert!(second["earlier"][0]["at"].is_string());
    assert_eq!(second["provenance"], json!([]));
    // No rule of this charter has `approval.remember`: remembering is refused, recorded.
    let id = second["id"].as_str().unwrap();
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/approvals/{id}/approve"),
            &bob,
            Some(json!({ "remember": true })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("remember_not_allowed")),
        "{body}"
    );
    let refused = h.records_of("approval_refused").await;
    let codes: Vec<&str> = refused
        .iter()
        .filter_map(|r| r["refusal"].as_str())
        .collect();
    assert!(
        codes.contains(&"expired") && codes.contains(&"remember_not_allowed"),
        "{codes:?}"
    );
    clock.advance(time::Duration::seconds(61));
    assert!(is_error(&call.await.unwrap()));
    h.stop().await;
}

/// Point 1 end to end: a rule with `approval.remember`; bob approves "for this session"; when
/// the grant is used, `trust_added` is recorded (after the use, before the result) and the
/// value is trusted text of that session — and of no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_for_this_session_makes_the_value_trusted_in_that_session_only() {
    const PAYEE: &str = "payee NL91ABNA0417164300";
    let rule = "    - { id: echo-payee, tool: echo.echo, tier: approval, args: { text: { prefix: payee } }, approval: { timeout: 60s, remember: [text] } }\n";
    let h = Arc::new(Harness::start_with(Arc::new(SystemClock), rule).await);
    let (session, token) = h.open_session("1h").await;
    let (other, _) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, PAYEE).await });
    let list = h.wait_for_approval(&bob, 1).await;
    assert_eq!(list[0]["remember"], json!(["text"]));
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/approvals/{id}/approve"),
            &bob,
            Some(json!({ "remember": true })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer = call.await.unwrap();
    assert!(!is_error(&answer), "{answer}");

    let granted = h.records_of("approval_granted").await;
    assert_eq!(granted[0]["remember"], true);
    let trust = h.records_of("trust_added").await;
    assert_eq!(trust.len(), 1, "{trust:?}");
    assert_eq!(
        trust[0],
        json!({
            "session": session,
            "source": { "kind": "approval", "approval": id, "argument": "text" },
            "text": PAYEE,
        })
    );
    let kinds = h.kinds().await;
    let pos = |k: &str| kinds.iter().position(|x| x == k).unwrap();
    assert!(pos("approval_used") < pos("trust_added"));
    assert!(pos("trust_added") < pos("action_result"));
    let sessions = &h.app_state().sessions;
    let mine = sessions.get(&session).unwrap();
    assert!(mine.provenance().trace(PAYEE).is_stated());
    let theirs = sessions.get(&other).unwrap();
    assert!(!theirs.provenance().trace(PAYEE).is_stated());
    h.assert_ledger_verifies().await;
    h.stop().await;
}
