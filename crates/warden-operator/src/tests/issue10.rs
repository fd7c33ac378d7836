//! Regression tests of issue 10: points 11 (who may mint approver credentials; list, revoke,
//! offline issues recorded) and 13 (anonymous refusals cannot fill the ledger).

use super::*;

fn approval_refusals(f: &Fixture) -> usize {
    f.recorder
        .kinds()
        .iter()
        .filter(|k| **k == RecordKind::ApprovalRefused)
        .count()
}

/// Point 13: every bad link signature appended a record, without any credential. Now 10,000
/// of them append at most one record per source (plus one aggregate per window).
#[tokio::test]
async fn issue_10_ten_thousand_bad_link_signatures_append_a_bounded_number_of_records() {
    let f = fixture().await;
    let id = pending_request(&f, json!({"text": "x"}), "why").await;
    let before = approval_refusals(&f);
    let forged = link(&f, LinkAction::Approve, &id, "bob").replace("sig=", "sig=AAAA");
    for _ in 0..10_000 {
        let got = send(&f, request("POST", &forged, None, Body::empty())).await;
        assert_eq!(got.0, StatusCode::FORBIDDEN);
    }
    // The same from strings that look like agent tokens on the approval routes.
    for i in 0..1_000 {
        let got = send(
            &f,
            request(
                "GET",
                "/v1/approvals",
                Some(&format!("wa_{i}")),
                Body::empty(),
            ),
        )
        .await;
        assert_eq!(got.0, StatusCode::FORBIDDEN);
    }
    let during = approval_refusals(&f) - before;
    assert_eq!(during, 1, "one source, one window: one record in full");
    // Within the window a sweep adds nothing (the aggregate comes when it ends; see
    // `throttle::tests`).
    f.state.approvals.sweep().await;
    assert_eq!(approval_refusals(&f) - before, 1);
}

/// Point 11: an admin could mint an approver credential for any principal. Now only what the
/// charter's `authority.enrolment` grants (here: admins may enrol bob, not alice).
#[tokio::test]
async fn issue_10_an_admin_mints_approver_credentials_only_where_the_charter_says() {
    let f = fixture().await;
    let mint = |p: &str| {
        json_request(
            "POST",
            "/v1/operator-tokens",
            &f.admin,
            json!({"name": format!("{p}-2"), "role": "approver", "principal": p}).to_string(),
        )
    };
    let got = send(&f, mint("alice")).await;
    assert_api_error("alice is not enrolled by admins", &got, 403, "not_enrolled");
    let (status, body) = send(&f, mint("bob")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // adversarial: an approver cannot mint for anyone without a role-based enrolment
    let got = send(
        &f,
        json_request(
            "POST",
            "/v1/operator-tokens",
            &f.approver,
            json!({"name": "x", "role": "approver", "principal": "bob"}).to_string(),
        ),
    )
    .await;
    assert_api_error("approver", &got, 403, "admin_only");
}

/// Point 11: operator credentials could not be listed or revoked, and one made offline left no
/// record. Now they are listed (never their tokens), revoked (recorded; the token stops
/// working), and one made offline is recorded before its first use.
#[tokio::test]
async fn issue_10_operator_credentials_are_listed_revoked_and_offline_issues_recorded() {
    let f = fixture().await;
    let offline = f
        .state
        .operators
        .create("carol-offline", OperatorRole::Admin, t0(), false)
        .await
        .unwrap();
    let issued_before = |f: &Fixture| {
        f.recorder
            .kinds()
            .iter()
            .filter(|k| **k == RecordKind::OperatorTokenIssued)
            .count()
    };
    let n0 = issued_before(&f);
    let (status, _) = send(
        &f,
        request("GET", "/v1/sessions", Some(&offline.token), Body::empty()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        issued_before(&f),
        n0 + 1,
        "the offline issue is recorded at first use"
    );
    let (_, _) = send(
        &f,
        request("GET", "/v1/sessions", Some(&offline.token), Body::empty()),
    )
    .await;
    assert_eq!(issued_before(&f), n0 + 1, "and only once");

    let (status, list) = send(
        &f,
        request("GET", "/v1/operator-tokens", Some(&f.admin), Body::empty()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let tokens = list["operator_tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 3);
    assert!(
        !list.to_string().contains("wo_"),
        "no token in a list: {list}"
    );

    let uri = format!("/v1/operator-tokens/{}/revoke", offline.id);
    let (status, body) = send(&f, request("POST", &uri, Some(&f.admin), Body::empty())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], true);
    assert!(
        f.recorder
            .kinds()
            .contains(&RecordKind::OperatorTokenRevoked)
    );
    let got = send(
        &f,
        request("GET", "/v1/sessions", Some(&offline.token), Body::empty()),
    )
    .await;
    assert_eq!(got.0, StatusCode::UNAUTHORIZED);
    // adversarial: an approver can neither list nor revoke
    let got = send(
        &f,
        request(
            "GET",
            "/v1/operator-tokens",
            Some(&f.approver),
            Body::empty(),
        ),
    )
    .await;
    assert_api_error("approver lists", &got, 403, "admin_only");
    let got = send(&f, request("POST", &uri, Some(&f.approver), Body::empty())).await;
    assert_api_error("approver revokes", &got, 403, "admin_only");
    let got = send(
        &f,
        request(
            "POST",
            "/v1/operator-tokens/nope/revoke",
            Some(&f.admin),
            Body::empty(),
        ),
    )
    .await;
    assert_api_error("unknown", &got, 404, "unknown_operator_token");
}
