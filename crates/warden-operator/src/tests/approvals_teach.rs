//! Issue 13, adversarially: approving "for this session" (`remember`) and reversing a denial
//! with forged, missing and agent credentials, through a link, by the requester, without
//! authority, late, twice; `remember` on a request whose rules do not allow it; races of a
//! reversal against the timeout sweep, an approval and another reversal (exactly one outcome
//! each); and what the approver sees (earlier refusals, provenance) on the API and the link
//! page.

use warden_approval::{Earlier, Status};
use warden_core::provenance::{ArgProvenance, FoundIn};

use super::*;

const ID: &str = "a-1";

/// A pending request of alice's agent for `echo.echo`; `remember` names the arguments its
/// rules let an approver remember (as a rule's `approval.remember` would).
async fn pending(f: &Fixture, remember: &[&str]) -> String {
    pending_with(f, remember, Vec::new(), Vec::new()).await
}

async fn pending_with(
    f: &Fixture,
    remember: &[&str],
    earlier: Vec<Earlier>,
    provenance: Vec<ArgProvenance>,
) -> String {
    let req = ApprovalRequest::new(NewApproval {
        id: ID.into(),
        action: "act-1".into(),
        session: "s-1".into(),
        agent: "agent-1".into(),
        principal: "alice".into(),
        task: "testing".into(),
        tool: "echo.echo".into(),
        arguments: json!({ "text": "NL91ABNA0417164300" }),
        reason: "rule".into(),
        why: "approval by rule `echo-ask`".into(),
        rules: Vec::new(),
        authority_for: vec!["echo-ask".into()],
        approvers: vec!["bob".into()],
        quorum: 1,
        charter: f.state.charter.load().first().hash.to_string(),
        requested_at: t0(),
        deadline: t0() + time::Duration::minutes(15),
        model_turns: Vec::new(),
    })
    .with_context(
        remember.iter().map(|s| (*s).to_owned()).collect(),
        earlier,
        provenance,
    );
    f.state.approvals.create(req).await.unwrap();
    ID.to_owned()
}

async fn approver_token(f: &Fixture, principal: &str) -> String {
    f.state
        .operators
        .create(
            &format!("{principal}-t"),
            OperatorRole::Approver(principal.into()),
            t0(),
            true,
        )
        .await
        .unwrap()
        .token
}

fn post(uri: &str, token: Option<&str>, body: Value) -> Request<Body> {
    let mut req = request("POST", uri, token, Body::from(body.to_string()));
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    req
}

async fn status_of(f: &Fixture, id: &str) -> Status {
    f.state
        .approvals
        .store()
        .get(id)
        .await
        .unwrap()
        .unwrap()
        .status
}

fn refusals(f: &Fixture) -> Vec<String> {
    f.recorder
        .records
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.kind == RecordKind::ApprovalRefused)
        .map(|r| r.payload["refusal"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn count(f: &Fixture, kind: RecordKind) -> usize {
    f.recorder.kinds().iter().filter(|k| **k == kind).count()
}

/// Bob denies request `id` through the API.
async fn deny(f: &Fixture, id: &str) {
    let got = send(
        f,
        post(
            &format!("/v1/approvals/{id}/deny"),
            Some(&f.approver),
            json!({"reason": "who is that?"}),
        ),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
}

#[tokio::test]
async fn remember_and_reverse_with_forged_missing_or_agent_credentials_change_nothing() {
    let f = fixture().await;
    let id = pending(&f, &["text"]).await;
    let approve = format!("/v1/approvals/{id}/approve");
    let reverse = format!("/v1/approvals/{id}/reverse");
    let remember = json!({"remember": true});
    for (uri, body) in [(&approve, &remember), (&reverse, &json!({}))] {
        let none = send(&f, post(uri, None, body.clone())).await;
        assert_api_error("no token", &none, 401, "unauthenticated");
        let forged = format!("{}x", f.approver);
        let got = send(&f, post(uri, Some(&forged), body.clone())).await;
        assert_api_error("forged", &got, 401, "unauthenticated");
        let got = send(&f, post(uri, Some(&f.agent), body.clone())).await;
        assert_api_error("agent token", &got, 403, "wrong_plane");
    }
    assert_eq!(status_of(&f, &id).await, Status::Pending);
    let req = f.state.approvals.store().get(&id).await.unwrap().unwrap();
    assert!(req.approvals.is_empty());
    // The agent's attempts on the approval channel are recorded.
    assert_eq!(
        refusals(&f)
            .iter()
            .filter(|r| *r == "agent_credential")
            .count(),
        2
    );
}

#[tokio::test]
async fn remember_on_a_request_whose_rules_do_not_allow_it_is_refused_and_recorded() {
    let f = fixture().await;
    let id = pending(&f, &[]).await;
    let got = send(
        &f,
        post(
            &format!("/v1/approvals/{id}/approve"),
            Some(&f.approver),
            json!({"remember": true}),
        ),
    )
    .await;
    assert_api_error("remember", &got, 400, "remember_not_allowed");
    assert_eq!(refusals(&f), ["remember_not_allowed"]);
    assert_eq!(status_of(&f, &id).await, Status::Pending);
    // On a denial `remember` means nothing: refused too.
    let got = send(
        &f,
        post(
            &format!("/v1/approvals/{id}/deny"),
            Some(&f.approver),
            json!({"remember": true}),
        ),
    )
    .await;
    assert_api_error("deny remember", &got, 400, "remember_not_allowed");
    // And on a reversal it is a malformed request.
    let got = send(
        &f,
        post(
            &format!("/v1/approvals/{id}/reverse"),
            Some(&f.approver),
            json!({"remember": true}),
        ),
    )
    .await;
    assert_eq!(got.0, StatusCode::BAD_REQUEST, "{}", got.1);
    assert_eq!(status_of(&f, &id).await, Status::Pending);
}

#[tokio::test]
async fn remember_where_a_rule_allows_it_is_kept_on_the_vote_and_recorded() {
    let f = fixture().await;
    let id = pending(&f, &["text"]).await;
    let got = send(
        &f,
        post(
            &format!("/v1/approvals/{id}/approve"),
            Some(&f.approver),
            json!({"remember": true, "reason": "our supplier"}),
        ),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["outcome"], "granted");
    assert_eq!(got.1["approval"]["approvals"][0]["remember"], true);
    assert_eq!(got.1["approval"]["remember"], json!(["text"]));
    let records = f.recorder.records.lock().unwrap().clone();
    let granted = records
        .iter()
        .find(|r| r.kind == RecordKind::ApprovalGranted)
        .unwrap();
    assert_eq!(granted.payload["remember"], true);
    let req = f.state.approvals.store().get(&id).await.unwrap().unwrap();
    assert_eq!(
        req.remembered(),
        [("text".to_owned(), "NL91ABNA0417164300".to_owned())]
    );
    // Bound to the request's own session: the values come from its arguments only.
    assert_eq!(req.session, "s-1");
}

#[tokio::test]
async fn reversals_that_may_not_happen_are_refused_clearly_and_recorded() {
    let f = fixture().await;
    let alice = approver_token(&f, "alice").await;
    let reverse = |token: &str| {
        post(
            &format!("/v1/approvals/{ID}/reverse"),
            Some(token),
            json!({"reason": "changed my mind"}),
        )
    };
    // Not denied (pending).
    pending(&f, &[]).await;
    let got = send(&f, reverse(&f.approver)).await;
    assert_api_error("pending", &got, 409, "not_denied");
    deny(&f, ID).await;
    // By the principal the agent acts for.
    let got = send(&f, reverse(&alice)).await;
    assert_api_error("self", &got, 403, "self_approval");
    // By an admin, who is no approver.
    let got = send(&f, reverse(&f.admin)).await;
    assert_api_error("admin", &got, 403, "not_an_approver");
    // Through a link: links never reverse.
    let link = link(&f, LinkAction::Deny, ID, "bob").replace("/link/deny", "/link/reverse");
    let got = send(&f, request("POST", &link, None, Body::empty())).await;
    assert_eq!(got.0, StatusCode::NOT_FOUND);
    assert_eq!(status_of(&f, ID).await, Status::Denied);
    // After the deadline.
    f.clock.advance(time::Duration::minutes(15));
    let got = send(&f, reverse(&f.approver)).await;
    assert_api_error("late", &got, 410, "expired");
    // And once the sweeper forgot it.
    f.state.approvals.sweep().await;
    let got = send(&f, reverse(&f.approver)).await;
    assert_api_error("late, forgotten", &got, 410, "expired");
    assert_eq!(status_of(&f, ID).await, Status::Denied);
    assert_eq!(
        refusals(&f),
        [
            "not_denied",
            "self_approval",
            "not_an_approver",
            "expired",
            "expired"
        ]
    );
    assert_eq!(count(&f, RecordKind::ApprovalReversed), 0);
    // Unknown request.
    let got = send(
        &f,
        post("/v1/approvals/nope/reverse", Some(&f.approver), json!({})),
    )
    .await;
    assert_api_error("unknown", &got, 404, "unknown_approval");
}

#[tokio::test]
async fn a_reversal_is_recorded_first_and_then_the_request_is_decided_afresh() {
    let f = fixture().await;
    pending(&f, &[]).await;
    deny(&f, ID).await;
    let got = send(
        &f,
        post(
            &format!("/v1/approvals/{ID}/reverse"),
            Some(&f.approver),
            json!({"reason": "I misread it"}),
        ),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["outcome"], "reversed");
    assert_eq!(got.1["approval"]["status"], "pending");
    assert_eq!(got.1["approval"]["denial"], Value::Null);
    // The request is in memory under its action hash, pending: an identical call joins it.
    let entry = f.state.approvals.store().entry(ID).unwrap();
    assert_eq!(entry.status(), Status::Pending);
    assert_eq!(
        f.state
            .approvals
            .by_hash(entry.hash())
            .map(|e| e.id().to_owned()),
        Some(ID.to_owned())
    );
    // Twice: refused.
    let got = send(
        &f,
        post(
            &format!("/v1/approvals/{ID}/reverse"),
            Some(&f.approver),
            json!({}),
        ),
    )
    .await;
    assert_api_error("twice", &got, 409, "not_denied");
    // A ledger that cannot record the reversal: nothing changes.
    deny(&f, ID).await;
    f.recorder.failing.store(true, Ordering::SeqCst);
    let got = send(
        &f,
        post(
            &format!("/v1/approvals/{ID}/reverse"),
            Some(&f.approver),
            json!({}),
        ),
    )
    .await;
    assert_api_error("ledger down", &got, 503, "ledger_unavailable");
    assert_eq!(status_of(&f, ID).await, Status::Denied);
    f.recorder.failing.store(false, Ordering::SeqCst);
    let kinds = f.recorder.kinds();
    let pos = |k: RecordKind| kinds.iter().position(|x| *x == k).unwrap();
    assert!(pos(RecordKind::ApprovalDenied) < pos(RecordKind::ApprovalReversed));
    let reversed = f
        .recorder
        .records
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.kind == RecordKind::ApprovalReversed)
        .cloned()
        .unwrap();
    assert_eq!(reversed.payload["approver"], "bob");
    assert_eq!(reversed.payload["denied_by"], "bob");
    assert_eq!(reversed.payload["denial_reason"], "who is that?");
    assert_eq!(reversed.payload["reason"], "I misread it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_of_a_reversal_have_exactly_one_outcome() {
    for round in 0..20 {
        let f = fixture().await;
        pending(&f, &[]).await;
        deny(&f, ID).await;
        // Two reversals at once: exactly one takes effect.
        let a = send(
            &f,
            post(
                &format!("/v1/approvals/{ID}/reverse"),
                Some(&f.approver),
                json!({}),
            ),
        );
        let b = send(
            &f,
            post(
                &format!("/v1/approvals/{ID}/reverse"),
                Some(&f.approver),
                json!({}),
            ),
        );
        let (a, b) = tokio::join!(a, b);
        let ok = [&a, &b].iter().filter(|g| g.0 == StatusCode::OK).count();
        assert_eq!(ok, 1, "round {round}: {a:?} {b:?}");
        assert_eq!(count(&f, RecordKind::ApprovalReversed), 1);

        // Reverse against approve: the approval either lands on the denied request (refused)
        // or after the reversal (granted); never both a refusal and a grant of one vote.
        deny(&f, ID).await;
        let r = send(
            &f,
            post(
                &format!("/v1/approvals/{ID}/reverse"),
                Some(&f.approver),
                json!({}),
            ),
        );
        let p = send(
            &f,
            post(
                &format!("/v1/approvals/{ID}/approve"),
                Some(&f.approver),
                json!({}),
            ),
        );
        let (r, p) = tokio::join!(r, p);
        assert_eq!(r.0, StatusCode::OK, "{r:?}");
        let status = status_of(&f, ID).await;
        match p.0 {
            StatusCode::OK => assert_eq!(status, Status::Granted),
            StatusCode::CONFLICT => assert_eq!(status, Status::Pending),
            other => panic!("round {round}: approve answered {other}: {p:?}"),
        }
        assert_eq!(
            count(&f, RecordKind::ApprovalGranted),
            usize::from(p.0 == StatusCode::OK)
        );

        // Reverse against the timeout sweep at the deadline: the sweep wins by the clock.
        let f = fixture().await;
        pending(&f, &[]).await;
        deny(&f, ID).await;
        f.clock.advance(time::Duration::minutes(15));
        let r = send(
            &f,
            post(
                &format!("/v1/approvals/{ID}/reverse"),
                Some(&f.approver),
                json!({}),
            ),
        );
        let (r, _) = tokio::join!(r, f.state.approvals.sweep());
        assert_api_error("at the deadline", &r, 410, "expired");
        assert_eq!(status_of(&f, ID).await, Status::Denied);
        assert_eq!(count(&f, RecordKind::ApprovalReversed), 0);

        // A reversal just before the deadline, then the sweep: it times out, once.
        let f = fixture().await;
        pending(&f, &[]).await;
        deny(&f, ID).await;
        f.clock
            .advance(time::Duration::minutes(15) - time::Duration::milliseconds(1));
        let r = send(
            &f,
            post(
                &format!("/v1/approvals/{ID}/reverse"),
                Some(&f.approver),
                json!({}),
            ),
        );
        let (r, _) = tokio::join!(r, f.state.approvals.sweep());
        assert_eq!(r.0, StatusCode::OK, "{r:?}");
        f.clock.advance(time::Duration::milliseconds(1));
        let (a, b) = tokio::join!(f.state.approvals.sweep(), f.state.approvals.sweep());
        assert_eq!(a + b, 1);
        assert_eq!(status_of(&f, ID).await, Status::TimedOut);
    }
}

#[tokio::test]
async fn approvers_see_earlier_refusals_and_provenance_on_the_api_and_the_link_page() {
    let f = fixture().await;
    let earlier = vec![Earlier {
        id: "a-0".into(),
        status: Status::Denied,
        at: t0() - time::Duration::minutes(30),
    }];
    let provenance = vec![ArgProvenance {
        rule: "echo-ask".into(),
        argument: "text".into(),
        value: "NL91ABNA0417164300".into(),
        trusted: None,
        found: vec![FoundIn {
            part: "<script>nl91abna0417164300".into(),
            kind: "iban".into(),
            seq: 42,
            labels: vec!["untrusted_mail".into()],
        }],
        incomplete: false,
    }];
    pending_with(&f, &["text"], earlier, provenance).await;
    let got = send(
        &f,
        request(
            "GET",
            &format!("/v1/approvals/{ID}"),
            Some(&f.approver),
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(got.1["earlier"][0]["id"], "a-0");
    assert_eq!(got.1["earlier"][0]["status"], "denied");
    assert_eq!(got.1["provenance"][0]["found"][0]["seq"], 42);
    let got = send(
        &f,
        request("GET", "/v1/approvals", Some(&f.approver), Body::empty()),
    )
    .await;
    assert_eq!(got.1["approvals"][0]["earlier"][0]["id"], "a-0");
    assert_eq!(got.1["approvals"][0]["provenance"][0]["argument"], "text");
    // The link page: both, escaped, and that a link cannot remember nor reverse.
    let page = send(
        &f,
        request(
            "GET",
            &link(&f, LinkAction::Approve, ID, "bob"),
            None,
            Body::empty(),
        ),
    )
    .await;
    let html = page.1.as_str().unwrap();
    assert!(html.contains("a-0 denied"), "{html}");
    assert!(html.contains("ledger record 42 (untrusted_mail)"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("cannot approve"), "{html}");
    assert!(html.contains("nor reverse a denial"), "{html}");
    // A link asking to remember is refused; the request stays pending.
    let mut req = request(
        "POST",
        &link(&f, LinkAction::Approve, ID, "bob"),
        None,
        Body::from(json!({"remember": true}).to_string()),
    );
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let got = send(&f, req).await;
    assert_api_error("link remember", &got, 403, "link_cannot_remember");
    assert_eq!(status_of(&f, ID).await, Status::Pending);
}
