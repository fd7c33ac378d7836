//! Sessions served by any instance: authentication, labels, trusted text, revocation (at the
//! next request and through the follower), delegation, provenance across instances, lists.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use warden_core::TrustedSource;
use warden_session::{TurnStore, state_db::Backend};

use super::support::{eventually, follow, instance, open, t0, two};

#[tokio::test]
async fn a_session_opened_on_one_instance_authenticates_on_the_other_with_its_labels_and_chain() {
    let (_pg, a, b) = two().await;
    let (parent_token, parent) = open(&a, "pay the rent").await;
    parent.add_labels(&[Arc::from("pii")]);
    a.sessions
        .persist_labels(&parent.id, &[Arc::from("pii")])
        .await
        .unwrap();
    let (child, _) = a
        .sessions
        .open_child(&parent, "b", "sub task", None, t0(), 4)
        .await
        .unwrap();

    let on_b = b
        .sessions
        .authenticate_current(&child.token)
        .await
        .unwrap()
        .expect("the child is known on the other instance");
    assert_eq!(on_b.id, child.id);
    assert_eq!(on_b.principal, "alice");
    assert_eq!(on_b.parent.as_deref(), Some(parent.id.as_str()));
    assert_eq!(on_b.chain, parent.chain_of_child());
    assert_eq!(on_b.labels(), [Arc::from("pii")]);
    // Its ancestors came with it: the decision sees them active, with their labels.
    assert!(!b.sessions.ancestor_inactive(&on_b, t0()));
    assert_eq!(b.sessions.labels_with_ancestors(&on_b), [Arc::from("pii")]);
    let texts: Vec<String> = on_b.trusted_pieces().into_iter().map(|p| p.text).collect();
    assert_eq!(
        texts,
        ["pay the rent"],
        "the parent's trusted text, not the child's task"
    );

    let root = b
        .sessions
        .authenticate_current(&parent_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(root.task, "pay the rent");
    assert!(
        Arc::ptr_eq(&root, &b.sessions.get(&parent.id).unwrap()),
        "held once"
    );
}

#[tokio::test]
async fn a_revocation_on_one_instance_is_refused_on_the_other_at_its_next_request() {
    let (_pg, a, b) = two().await;
    let (token, session) = open(&a, "t").await;
    let held = b
        .sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    assert!(!held.is_revoked());
    assert!(a.sessions.revoke(&session.id, t0()).await.unwrap());
    let next = b
        .sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    assert!(next.is_revoked(), "refused at the next request");
    assert!(
        held.is_revoked(),
        "the copy a waiting call holds is revoked too"
    );
    // Revoked sessions are not kept in memory; the store still answers (refused as revoked).
    assert!(b.sessions.get(&session.id).is_none());
    let again = b
        .sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    assert!(again.is_revoked());
    assert!(
        !b.sessions.revoke(&session.id, t0()).await.unwrap(),
        "already revoked"
    );
}

#[tokio::test]
async fn the_follower_applies_a_revocation_and_labels_between_requests() {
    let (_pg, a, b) = two().await;
    let (_tasks, stop) = follow(&b);
    let (token, session) = open(&a, "t").await;
    // A call on b holds the session (as an approval wait would) and makes no more requests.
    let held = b
        .sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    a.sessions
        .persist_labels(&session.id, &[Arc::from("secret")])
        .await
        .unwrap();
    assert!(
        eventually(|| held.labels().contains(&Arc::from("secret"))).await,
        "labels added on a reach b without a request"
    );
    a.sessions.revoke(&session.id, t0()).await.unwrap();
    assert!(
        eventually(|| held.is_revoked()).await,
        "a revocation on a reaches a call waiting on b"
    );
    assert!(eventually(|| b.sessions.get(&session.id).is_none()).await);
    stop.cancel();
}

#[tokio::test]
async fn labels_and_trusted_text_added_on_one_instance_are_in_the_others_next_decision() {
    let (_pg, a, b) = two().await;
    let (token, session) = open(&a, "pay the rent").await;
    let on_b = b
        .sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    assert!(on_b.labels().is_empty());
    a.sessions
        .persist_labels(&session.id, &[Arc::from("pii")])
        .await
        .unwrap();
    let source = TrustedSource::Instruction { seq: Some(3) };
    session.add_trusted("also pay bob", source.clone()).unwrap();
    a.sessions
        .persist_trust(&session.id, "also pay bob", &source)
        .await
        .unwrap();
    let next = b
        .sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.labels(), [Arc::from("pii")]);
    let texts: Vec<String> = next.trusted_pieces().into_iter().map(|p| p.text).collect();
    assert_eq!(texts, ["pay the rent", "also pay bob"]);
    // Read again, nothing is added twice (on a, which added it itself, neither).
    b.sessions.authenticate_current(&token).await.unwrap();
    assert_eq!(next.trusted_pieces().len(), 2);
    a.sessions.authenticate_current(&token).await.unwrap();
    assert_eq!(session.trusted_pieces().len(), 2);
}

/// The untrusted index is per instance: a session served by two instances decides with an
/// incomplete index on both (fail closed); one served by one instance keeps its index.
#[tokio::test]
async fn a_session_served_by_two_instances_has_its_provenance_incomplete_on_both() {
    let (pg, a, b) = two().await;
    let (token, session) = open(&a, "t").await;
    let (alone_token, alone) = open(&a, "t").await;
    let on_a = a
        .sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    assert!(on_a.provenance().is_complete(), "served by a alone so far");
    let on_b = b
        .sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    assert!(!on_b.provenance().is_complete(), "a served it before b");
    let on_a = a
        .sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    assert!(Arc::ptr_eq(&on_a, &session));
    assert!(!on_a.provenance().is_complete(), "b served it since");

    a.sessions.authenticate_current(&alone_token).await.unwrap();
    a.sessions.authenticate_current(&alone_token).await.unwrap();
    assert!(alone.provenance().is_complete());

    // A restarted instance holds again the active sessions it served (their index is rebuilt
    // from its own chain): the one served only there stays complete.
    assert!(matches!(a.db.backend(), Backend::Postgres(_)));
    let a2 = instance(pg.url(), "gw-a").await;
    let back = a2.sessions.get(&alone.id).expect("held again at start-up");
    assert!(back.provenance().is_complete());
    assert!(
        !a2.sessions
            .get(&session.id)
            .unwrap()
            .provenance()
            .is_complete()
    );
}

#[tokio::test]
async fn every_instance_lists_and_gets_every_session() {
    let (_pg, a, b) = two().await;
    let (_, one) = open(&a, "first").await;
    let (_, two_) = open(&b, "second").await;
    a.sessions.revoke(&one.id, t0()).await.unwrap();
    for on in [&a, &b] {
        let listed = on.sessions.list_current(t0()).await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, [two_.id.as_str(), one.id.as_str()], "newest first");
        assert_eq!(listed[1].status, "revoked");
        let got = on.sessions.get_current(&one.id).await.unwrap().unwrap();
        assert!(got.is_revoked());
    }
    assert!(b.sessions.get_current("no-such").await.unwrap().is_none());
}

/// Delegation across instances: a revoked parent's children opened on another instance are
/// revoked too, and the fan-out bound counts every instance's children.
#[tokio::test]
async fn descendants_and_the_fan_out_count_every_instance() {
    let (_pg, a, b) = two().await;
    let (token, parent) = open(&a, "t").await;
    let on_b = b
        .sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    let (c1, _) = a
        .sessions
        .open_child(&parent, "b", "x", None, t0(), 2)
        .await
        .unwrap();
    b.sessions
        .open_child(&on_b, "b", "y", None, t0(), 2)
        .await
        .unwrap();
    let third = b.sessions.open_child(&on_b, "b", "z", None, t0(), 2).await;
    assert!(
        matches!(
            third,
            Err(warden_session::ChildError::FanOut { live: 2, limit: 2 })
        ),
        "{third:?}"
    );
    a.sessions.revoke(&parent.id, t0()).await.unwrap();
    let revoked = a
        .sessions
        .revoke_descendants(&parent.id, t0())
        .await
        .unwrap();
    assert_eq!(revoked.len(), 2, "the child opened on b too");
    let child = b
        .sessions
        .authenticate_current(&c1.token)
        .await
        .unwrap()
        .unwrap();
    assert!(child.is_revoked());
    // A parent revoked elsewhere opens no child here, whatever this instance held.
    let (token2, p2) = open(&a, "t").await;
    let p2_on_b = b
        .sessions
        .authenticate_current(&token2)
        .await
        .unwrap()
        .unwrap();
    a.sessions.revoke(&p2.id, t0()).await.unwrap();
    let refused = b
        .sessions
        .open_child(&p2_on_b, "b", "w", None, t0(), 8)
        .await;
    assert!(matches!(
        refused,
        Err(warden_session::ChildError::ParentInactive)
    ));
}

#[tokio::test]
async fn model_turns_written_on_one_instance_are_read_on_another() {
    let (_pg, a, b) = two().await;
    let (store, stored) = TurnStore::open(&a.db).await.unwrap();
    assert!(stored.sessions.is_empty());
    store
        .save("s1", &[json!({"prompt": "a"})], 2)
        .await
        .unwrap();
    store
        .save("s1", &[json!({"prompt": "stale"})], 1)
        .await
        .unwrap();
    let (_, stored) = TurnStore::open(&b.db).await.unwrap();
    assert_eq!(stored.last_seq, 2);
    assert_eq!(
        stored.sessions,
        [("s1".to_owned(), vec![json!({"prompt": "a"})])]
    );
    // The ledger mark is the ledger writer's on PostgreSQL: recording it changes nothing.
    warden_session::LedgerMark::new(&a.db)
        .record(5)
        .await
        .unwrap();
}

/// Sessions loaded from the store are not held once expired (the follower's poll evicts them).
#[tokio::test]
async fn expired_sessions_are_evicted_from_memory() {
    let (_pg, a, b) = two().await;
    let (opened, _) = a
        .sessions
        .open_session("a", "alice", "t", Duration::from_secs(1), t0())
        .await
        .unwrap();
    b.sessions
        .authenticate_current(&opened.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.sessions.held(), 1);
    let later = t0() + time::Duration::minutes(5);
    b.sessions
        .follow(&warden_session::Notice::Poll, later)
        .await
        .unwrap();
    assert_eq!(b.sessions.held(), 0);
}
