//! The `observer` credential role: it reaches only what `OBSERVER_ROUTES` lists (the ledger
//! stream, the metrics, listing and setting controls, its heartbeat) and is refused on every
//! other route; only an admin may issue one.

use super::*;

#[tokio::test]
async fn an_observers_credential_is_refused_on_every_route_it_may_not_reach() {
    let f = fixture().await;
    let observer = f
        .state
        .operators
        .create("observer", OperatorRole::Observer, t0(), true)
        .await
        .unwrap()
        .token;
    let body = json!({ "agent": "agent-1", "user": "alice", "name": "x", "role": "admin" });
    for (method, path) in PROTECTED {
        let got = send(&f, json_request(method, path, &observer, body.to_string())).await;
        assert_api_error(&format!("{method} {path}"), &got, 403, "observer_only");
    }
    assert_eq!(f.state.sessions.list(t0()).len(), 1);
    assert_eq!(f.state.operators.count().await.unwrap(), 3);
    assert!(f.recorder.kinds().is_empty());
}

#[tokio::test]
async fn only_an_admin_issues_an_observer_credential() {
    let f = fixture().await;
    let body = json!({ "name": "obs", "role": "observer" }).to_string();
    let got = send(
        &f,
        json_request("POST", "/v1/operator-tokens", &f.approver, body.clone()),
    )
    .await;
    assert_api_error("approver issuing an observer", &got, 403, "admin_only");
    assert_eq!(f.state.operators.count().await.unwrap(), 2);
    let got = send(
        &f,
        json_request("POST", "/v1/operator-tokens", &f.admin, body),
    )
    .await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    assert_eq!(got.1["role"], "observer", "{}", got.1);
    assert!(got.1["principal"].is_null(), "{}", got.1);
    assert_eq!(f.state.operators.count().await.unwrap(), 3);
    assert_eq!(f.recorder.kinds(), vec![RecordKind::OperatorTokenIssued]);
}

#[tokio::test]
async fn an_observer_may_not_lift_a_control() {
    let f = fixture().await;
    let observer = f
        .state
        .operators
        .create("observer", OperatorRole::Observer, t0(), true)
        .await
        .unwrap()
        .token;
    let body = json!({ "reason": "the observer would rather not" }).to_string();
    let got = send(
        &f,
        json_request("POST", "/v1/controls/c-1/lift", &observer, body),
    )
    .await;
    assert_api_error("observer lifting", &got, 403, "observer_only");
    assert!(f.recorder.kinds().is_empty());
}
