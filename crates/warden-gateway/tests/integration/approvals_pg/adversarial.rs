//! Adversarial: an approver's vote replayed through another instance, a used grant approved
//! again elsewhere, forged and oversized request ids on every instance, forged notifications
//! and a forged row in the store.

use warden_approval::Status;
use warden_approval::workflow::Choice;
use warden_core::{Clock, RecordKind};

use super::support::{Instance, args, database, held, next_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_replayed_on_another_instance_is_refused() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    let entry = a.raise("r-1", &args(1), 2).await;
    assert_eq!(
        a.decide("r-1", "bob", Choice::Approve)
            .await
            .unwrap()
            .outcome,
        "counted"
    );
    // Bob's vote again, through B (which never saw it): one approver is one vote.
    let err = b.decide("r-1", "bob", Choice::Approve).await.unwrap_err();
    assert_eq!((err.status, err.code), (409, "duplicate_approver"));
    assert_eq!(b.ledger.count(RecordKind::ApprovalRefused), 1);
    let stored = b.approvals.store().get("r-1").await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Pending);
    assert_eq!(stored.approvals.len(), 1);
    // Granted by alice through B, used on A; then the votes replayed through B are replays.
    b.decide("r-1", "alice", Choice::Approve).await.unwrap();
    let mut rx = entry.subscribe();
    next_status(&mut rx, Status::Pending).await;
    a.use_grant(&entry, &args(1), "act-1").await.unwrap();
    for who in ["alice", "carol"] {
        let err = b.decide("r-1", who, Choice::Approve).await.unwrap_err();
        assert_eq!((err.status, err.code), (409, "replay"), "{who}");
        let err = b.decide("r-1", who, Choice::Deny).await.unwrap_err();
        assert_eq!((err.status, err.code), (409, "replay"), "{who}");
    }
    let stored = a.approvals.store().get("r-1").await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Used);
    assert_eq!(stored.approvals.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_request_ids_are_unknown_on_every_instance() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    a.raise("r-1", &args(1), 1).await;
    let long = "x".repeat(64 * 1024);
    for forged in [
        "0190f1c2-0000-7000-8000-000000000000",
        "r-1' OR '1'='1",
        "r-1'; DROP TABLE approvals; --",
        "%",
        "",
        long.as_str(),
        "r-1\0",
    ] {
        for i in [&a, &b] {
            let err = i
                .decide(forged, "alice", Choice::Approve)
                .await
                .unwrap_err();
            assert_eq!((err.status, err.code), (404, "unknown_approval"));
        }
    }
    // Nothing was decided, and the table is intact.
    let stored = b.approvals.store().get("r-1").await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Pending);
    assert_eq!(b.approvals.store().list(None, 10).await.unwrap().len(), 1);
}

/// Notifications carry only an id, and the follower believes the row, not the notification:
/// a forged one (a real id whose row did not change, an unknown id, an oversized or odd
/// payload) changes nothing and releases nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_notifications_change_nothing() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    let entry = a.raise("r-1", &args(1), 1).await;
    let waiting = entry.subscribe();
    held(&b, "r-1").await;
    let pool = a.db.postgres().unwrap();
    let long = "y".repeat(7000);
    for payload in ["r-1", "r-unknown", "", "r-1' OR 1=1 --", long.as_str()] {
        sqlx::query("SELECT pg_notify('warden_approvals', $1)")
            .bind(payload)
            .execute(pool)
            .await
            .unwrap();
    }
    // What the follower does for each, done here too (and a poll), so nothing is left in
    // flight: nothing changed.
    for i in [&a, &b] {
        let store = i.approvals.store();
        assert!(!store.refresh("r-1", i.clock.now()).await.unwrap());
        assert!(!store.refresh("r-unknown", i.clock.now()).await.unwrap());
        assert_eq!(store.reconcile(i.clock.now()).await.unwrap(), 0);
        assert_eq!(store.entry("r-1").unwrap().status(), Status::Pending);
        assert!(store.entry("r-unknown").is_none());
    }
    assert!(!waiting.has_changed().unwrap());
    assert_eq!(
        warden_approval::store::NOTIFY_CHANNEL,
        warden_session::Channel::Approvals.name()
    );
}

/// A row written into the store behind the gateways' back whose body names another request
/// (or is not a request) is refused as corrupt, never loaded or decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_row_is_refused_as_corrupt() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    a.raise("r-1", &args(1), 1).await;
    let pool = a.db.postgres().unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM approvals WHERE id = 'r-1'")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut granted: serde_json::Value = serde_json::from_str(&body).unwrap();
    granted["status"] = "granted".into();
    for (id, body) in [
        ("r-forged", granted.to_string()),
        ("r-junk", "{\"not\": \"a request\"}".to_owned()),
    ] {
        sqlx::query("INSERT INTO approvals (id, action_hash, status, requested_at, deadline, body) VALUES ($1, $1, 'granted', '2027-01-15T08:00:00Z', '2099-01-01T00:00:00Z', $2)")
            .bind(id)
            .bind(body)
            .execute(pool)
            .await
            .unwrap();
        let err = b.decide(id, "alice", Choice::Approve).await.unwrap_err();
        assert_eq!((err.status, err.code), (503, "store_unavailable"), "{id}");
        assert!(err.message.contains("corrupt"), "{}", err.message);
        assert!(
            b.approvals
                .store()
                .refresh(id, b.clock.now())
                .await
                .is_err()
        );
        assert!(b.approvals.store().entry(id).is_none());
    }
    // The poll meets them too, and refuses them.
    assert!(b.approvals.store().reconcile(b.clock.now()).await.is_err());
}
