//! The store against a real SQLite database: requests survive a reopen, and only a written
//! change takes effect.

use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::machine::Approver;
use crate::request::NewApproval;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

async fn pool(dir: &std::path::Path) -> SqlitePool {
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("state.db"))
        .create_if_missing(true);
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .unwrap()
}

fn request(id: &str, amount: u32) -> ApprovalRequest {
    ApprovalRequest::new(NewApproval {
        id: id.into(),
        action: format!("act-{id}"),
        session: "s1".into(),
        agent: "agent".into(),
        principal: "alice".into(),
        task: "t".into(),
        tool: "bank.pay".into(),
        arguments: json!({ "amount": amount }),
        reason: "rule".into(),
        why: "w".into(),
        rules: Vec::new(),
        authority_for: vec!["pay".into()],
        approvers: vec!["bob".into()],
        quorum: 1,
        charter: "blake3:test".to_owned(),
        requested_at: t0(),
        deadline: t0() + Duration::minutes(10),
        model_turns: Vec::new(),
    })
}

#[tokio::test]
async fn pending_requests_survive_a_reopen_and_stay_decidable() {
    let dir = tempfile::tempdir().unwrap();
    let store = ApprovalStore::open(pool(dir.path()).await, t0())
        .await
        .unwrap();
    let a = store.create(request("r1", 1)).await.unwrap();
    store.create(request("r2", 2)).await.unwrap();
    // A second open request for the same action is refused.
    assert!(matches!(
        store.create(request("r3", 1)).await,
        Err(StoreError::Duplicate)
    ));
    {
        let mut g = store.begin(&a).await.unwrap();
        let mut next = g.clone();
        let bob = Approver {
            principal: Some("bob"),
            has_authority: true,
            channel: "api",
            target: None,
            credential: None,
        };
        next.deny(&bob, true, None, t0()).unwrap();
        g.save(next).await.unwrap();
    }
    drop(store);

    let store = ApprovalStore::open(pool(dir.path()).await, t0())
        .await
        .unwrap();
    assert_eq!(store.open_count(), 1);
    let r1 = store.get("r1").await.unwrap().unwrap();
    assert_eq!(r1.status, Status::Denied);
    let hash = ActionHash::of("s1", "bank.pay", &json!({ "amount": 2 }));
    let e = store.by_hash(&hash).unwrap();
    assert_eq!(e.id(), "r2");
    let mut rx = e.subscribe();
    {
        let mut g = store.begin(&e).await.unwrap();
        let mut next = g.clone();
        let bob = Approver {
            principal: Some("bob"),
            has_authority: true,
            channel: "api",
            target: None,
            credential: None,
        };
        next.approve(&bob, true, None, t0()).unwrap();
        g.save(next).await.unwrap();
    }
    rx.changed().await.unwrap();
    assert_eq!(*rx.borrow(), Status::Granted);
    let listed = store.list(Some(Status::Granted), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(store.list(None, 10).await.unwrap().len(), 2);
    // Past the deadline both are due.
    assert_eq!(store.due(t0() + Duration::minutes(10)).len(), 2);
    assert!(store.due(t0()).is_empty());
}

#[tokio::test]
async fn a_failed_write_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(dir.path()).await;
    let store = ApprovalStore::open(pool.clone(), t0()).await.unwrap();
    let e = store.create(request("r1", 1)).await.unwrap();
    sqlx::query("DROP TABLE approvals")
        .execute(&pool)
        .await
        .unwrap();
    let mut g = store.begin(&e).await.unwrap();
    let mut next = g.clone();
    let bob = Approver {
        principal: Some("bob"),
        has_authority: true,
        channel: "api",
        target: None,
        credential: None,
    };
    next.approve(&bob, true, None, t0()).unwrap();
    assert!(g.save(next).await.is_err());
    assert_eq!(g.status, Status::Pending);
    assert_eq!(e.status(), Status::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_calls_arriving_together_raise_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = ApprovalStore::open(pool(dir.path()).await, t0())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        #[expect(clippy::disallowed_methods, reason = "every task is awaited below")]
        tasks.push(tokio::spawn(async move {
            store.create(request(&format!("r{i}"), 7)).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::Duplicate) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.list(None, 100).await.unwrap().len(), 1);
}

/// A page listing open requests refreshes on `watch_arrivals`: it changes once per stored
/// request, and not for a duplicate that stored nothing.
#[tokio::test]
async fn a_stored_request_is_announced_and_a_duplicate_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = ApprovalStore::open(pool(dir.path()).await, t0())
        .await
        .unwrap();
    let mut arrivals = store.watch_arrivals();
    assert!(!arrivals.has_changed().unwrap());
    store.create(request("r1", 7)).await.unwrap();
    assert!(arrivals.has_changed().unwrap());
    assert_eq!(*arrivals.borrow_and_update(), 1);
    assert!(matches!(
        store.create(request("r2", 7)).await,
        Err(StoreError::Duplicate)
    ));
    assert!(!arrivals.has_changed().unwrap());
    store.create(request("r3", 8)).await.unwrap();
    assert_eq!(*arrivals.borrow_and_update(), 2);
}
