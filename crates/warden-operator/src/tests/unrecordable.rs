//! What the operator plane does when the ledger cannot record, and links that point nowhere:
//! nothing takes effect unrecorded (a session is revoked at once, a revocation holds, no
//! credential is issued), and a link to no action is not found and not recorded.

use super::*;

#[tokio::test]
async fn a_session_the_ledger_cannot_record_is_revoked_at_once() {
    let f = fixture().await;
    f.recorder.failing.store(true, Ordering::SeqCst);
    let body = json!({ "agent": "agent-1", "user": "alice", "task": "unrecorded" });
    let got = send(
        &f,
        json_request("POST", "/v1/sessions", &f.admin, body.to_string()),
    )
    .await;
    assert_api_error("open", &got, 503, "ledger_unavailable");
    assert!(
        !got.1.to_string().contains("wa_"),
        "no token is handed out: {}",
        got.1
    );
    let sessions = f.state.sessions.list(t0());
    let unrecorded = sessions.iter().find(|s| s.task == "unrecorded").unwrap();
    assert_eq!(unrecorded.status, "revoked");
}

#[tokio::test]
async fn a_revocation_holds_when_the_ledger_cannot_record_it() {
    let f = fixture().await;
    let session = f.state.sessions.authenticate(&f.agent).unwrap();
    f.recorder.failing.store(true, Ordering::SeqCst);
    let path = format!("/v1/sessions/{}/revoke", session.id);
    let (status, body) = send(&f, request("POST", &path, Some(&f.admin), Body::empty())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], true);
    assert!(session.is_revoked());
    // Revoking it again: no active session by that id.
    let got = send(&f, request("POST", &path, Some(&f.admin), Body::empty())).await;
    assert_api_error("again", &got, 404, "unknown_session");
}

#[tokio::test]
async fn the_link_page_escapes_what_the_agent_and_the_link_carry_and_decides_nothing() {
    let f = fixture().await;
    let id = pending_request(
        &f,
        json!({ "text": "<script>alert(1)</script>" }),
        "\"quoted\" & <b>bold</b>",
    )
    .await;
    let approver = "<img src=x onerror=alert(1)>";
    let page = link(&f, LinkAction::Approve, &id, approver);
    let (status, body) = send(&f, request("GET", &page, None, Body::empty())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let html = body.as_str().unwrap();
    for raw in ["<script>", "<img", "<b>", "\"quoted\""] {
        assert!(!html.contains(raw), "`{raw}` is not escaped: {html}");
    }
    assert!(html.contains("&lt;script&gt;") && html.contains("&lt;img src=x"));
    assert!(
        html.contains("&quot;quoted&quot; &amp; &lt;b&gt;"),
        "{html}"
    );
    let req = f.state.approvals.store().get(&id).await.unwrap().unwrap();
    assert_eq!(req.status, warden_approval::Status::Pending);
    assert!(f.recorder.kinds().is_empty());
}

#[tokio::test]
async fn a_link_to_an_action_that_does_not_exist_is_not_found_and_not_recorded() {
    let f = fixture().await;
    let id = pending_request(&f, json!({ "text": "ask" }), "a rule asks").await;
    let signed = link(&f, LinkAction::Approve, &id, "bob");
    for method in ["GET", "POST"] {
        let grant = signed.replace("/link/approve?", "/link/grant?");
        let got = send(&f, request(method, &grant, None, Body::empty())).await;
        assert_api_error(&format!("{method} grant"), &got, 404, "not_found");
    }
    let req = f.state.approvals.store().get(&id).await.unwrap().unwrap();
    assert_eq!(req.status, warden_approval::Status::Pending);
    assert!(f.recorder.kinds().is_empty());
}

#[tokio::test]
async fn no_operator_credential_is_issued_that_the_ledger_cannot_record() {
    let f = fixture().await;
    let before = f.state.operators.count().await.unwrap();
    f.recorder.failing.store(true, Ordering::SeqCst);
    let body = json!({ "name": "unrecorded", "role": "admin" });
    let got = send(
        &f,
        json_request("POST", "/v1/operator-tokens", &f.admin, body.to_string()),
    )
    .await;
    assert_api_error("issue", &got, 503, "ledger_unavailable");
    assert!(
        !got.1.to_string().contains("wo_"),
        "no token is handed out: {}",
        got.1
    );
    assert_eq!(f.state.operators.count().await.unwrap(), before);
    // With the ledger back, the same request issues one, recorded.
    f.recorder.failing.store(false, Ordering::SeqCst);
    let (status, issued) = send(
        &f,
        json_request("POST", "/v1/operator-tokens", &f.admin, body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(f.state.operators.count().await.unwrap(), before + 1);
    assert!(
        f.recorder
            .kinds()
            .contains(&RecordKind::OperatorTokenIssued)
    );
}
