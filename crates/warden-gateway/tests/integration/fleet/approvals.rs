//! Approvals are the fleet's: a call waiting on one instance is released by an approval
//! decided on another.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_waiting_on_a_is_released_by_an_approval_on_c() {
    let (_db, fleet) = three().await;
    let fleet = Arc::new(fleet);
    let (_, token) = fleet.instances[0].open_session("1h").await;
    let bob = fleet.instances[1].approver_token("bob").await;

    let waiting = {
        let (fleet, token) = (fleet.clone(), token.clone());
        tokio::spawn(async move { fleet.instances[0].call(&token, "ask to ship it").await })
    };
    // Raised on A, listed on C.
    let pending = fleet.instances[2].wait_for_approval(&bob, 1).await;
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        warden_testkit::echo::count(&fleet.calls),
        0,
        "nothing ran yet"
    );
    let (status, body) = fleet.instances[2]
        .decide_approval(&bob, &id, "approve", Some("looks fine"))
        .await;
    assert_eq!(status, 200, "{body}");

    let answer = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the call on A was not released by C's approval")
        .unwrap();
    assert!(!is_error(&answer), "{answer}");
    assert_eq!(text_of(&answer), "ask to ship it");
    assert_eq!(warden_testkit::echo::count(&fleet.calls), 1);

    // Decided and used: another decision is refused wherever it is tried (as a replay of a
    // used approval, the same answer as on one gateway).
    let (status, body) = fleet.instances[1]
        .decide_approval(&bob, &id, "deny", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("replay")),
        "{body}"
    );
    // A's chain holds the request and the forwarded call; C's the decision it took.
    let a_kinds: Vec<String> = fleet.instances[0]
        .records()
        .await
        .iter()
        .map(|r| r.kind.to_string())
        .collect();
    for kind in ["approval_requested", "action_forwarded"] {
        assert!(
            a_kinds.iter().any(|k| k == kind),
            "{kind} not in A's chain: {a_kinds:?}"
        );
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denial_on_b_refuses_the_call_waiting_on_a() {
    let (_db, fleet) = three().await;
    let fleet = Arc::new(fleet);
    let (_, token) = fleet.instances[0].open_session("1h").await;
    let bob = fleet.instances[0].approver_token("bob").await;
    let waiting = {
        let (fleet, token) = (fleet.clone(), token.clone());
        tokio::spawn(async move { fleet.instances[0].call(&token, "ask to delete it").await })
    };
    let id = fleet.instances[1].wait_for_approval(&bob, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = fleet.instances[1]
        .decide_approval(&bob, &id, "deny", Some("no"))
        .await;
    assert_eq!(status, 200, "{body}");
    let answer = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the call on A was not released by B's denial")
        .unwrap();
    assert!(is_error(&answer), "{answer}");
    assert_eq!(warden_testkit::echo::count(&fleet.calls), 0);
    fleet.stop().await;
}
