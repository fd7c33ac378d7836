//! A decision made through any instance reaches the call waiting on another: a grant releases
//! it, a denial refuses it, votes cast on different instances meet the quorum together, and a
//! store that is down refuses a vote (nothing granted) until it is back.

use warden_approval::workflow::Choice;
use warden_approval::{Status, UseRefusal};
use warden_core::RecordKind;

use super::support::{Instance, args, database, next_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_on_a_is_released_by_a_grant_through_c() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let _b = Instance::start(db.url()).await;
    let c = Instance::start(db.url()).await;
    let entry = a.raise("r-1", &args(1), 1).await;
    let mut waiting = entry.subscribe();
    // C never saw the request: the approver's decision through it finds it in the store.
    let decided = c.decide("r-1", "alice", Choice::Approve).await.unwrap();
    assert_eq!(decided.outcome, "granted");
    assert_eq!(
        next_status(&mut waiting, Status::Pending).await,
        Status::Granted
    );
    // The call waiting on A is released: its grant is used there, once.
    a.use_grant(&entry, &args(1), "act-1").await.unwrap();
    assert_eq!(entry.status(), Status::Used);
    // Recorded where it happened: the grant on C, the use on A.
    assert_eq!(c.ledger.count(RecordKind::ApprovalGranted), 1);
    assert_eq!(a.ledger.count(RecordKind::ApprovalGranted), 0);
    assert_eq!(a.ledger.count(RecordKind::ApprovalUsed), 1);
    // Every instance reads the same request.
    for i in [&a, &c] {
        let stored = i.approvals.store().get("r-1").await.unwrap().unwrap();
        assert_eq!(stored.status, Status::Used);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_through_c_refuses_the_call_waiting_on_a() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let c = Instance::start(db.url()).await;
    let entry = a.raise("r-1", &args(1), 1).await;
    let mut waiting = entry.subscribe();
    let decided = c.decide("r-1", "bob", Choice::Deny).await.unwrap();
    assert_eq!(decided.outcome, "denied");
    assert_eq!(
        next_status(&mut waiting, Status::Pending).await,
        Status::Denied
    );
    let (refusal, _) = a.use_grant(&entry, &args(1), "act-1").await.unwrap_err();
    assert_eq!(refusal, UseRefusal::NotGranted(Status::Denied));
    // The same action retried on A is answered with the denial (held until the deadline).
    let again = a
        .approvals
        .by_hash(&super::support::hash(&args(1)))
        .unwrap();
    assert_eq!(again.status(), Status::Denied);
    assert_eq!(again.lock().await.denial.as_ref().unwrap().approver, "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_on_two_instances_meet_a_quorum_of_two() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    let c = Instance::start(db.url()).await;
    // One after the other: alice through A, bob through B.
    let entry = c.raise("r-1", &args(1), 2).await;
    let mut waiting = entry.subscribe();
    assert_eq!(
        a.decide("r-1", "alice", Choice::Approve)
            .await
            .unwrap()
            .outcome,
        "counted"
    );
    let decided = b.decide("r-1", "bob", Choice::Approve).await.unwrap();
    assert_eq!(decided.outcome, "granted");
    assert_eq!(decided.request.approvals.len(), 2);
    assert_eq!(
        next_status(&mut waiting, Status::Pending).await,
        Status::Granted
    );
    c.use_grant(&entry, &args(1), "act-1").await.unwrap();

    // At once, many times: every vote is counted, and exactly one of the two grants.
    for round in 0..10 {
        let id = format!("r-at-once-{round}");
        let entry = c.raise(&id, &args(100 + round), 2).await;
        let (x, y) = tokio::join!(
            a.decide(&id, "alice", Choice::Approve),
            b.decide(&id, "bob", Choice::Approve)
        );
        let mut outcomes = [x.unwrap().outcome, y.unwrap().outcome];
        outcomes.sort_unstable();
        assert_eq!(outcomes, ["counted", "granted"], "round {round}");
        let stored = c.approvals.store().get(&id).await.unwrap().unwrap();
        assert_eq!(stored.status, Status::Granted);
        let mut voters: Vec<&str> = stored.approvals.iter().map(|v| &*v.approver).collect();
        voters.sort_unstable();
        assert_eq!(voters, ["alice", "bob"]);
        let mut rx = entry.subscribe();
        next_status(&mut rx, Status::Pending).await;
    }
}

/// PostgreSQL stops while an approver votes: the vote is refused with a clear error
/// (`503 store_unavailable`), nothing is recorded as granted and the waiting call is not
/// released; when PostgreSQL is back, the same vote works without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_during_a_vote_refuses_it_and_grants_nothing() {
    let cluster = tokio::task::spawn_blocking(warden_testkit::postgres::Cluster::start)
        .await
        .unwrap()
        .unwrap();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE fleet")
        .execute(&mut admin)
        .await
        .unwrap();
    drop(admin);
    let url = cluster.url("fleet");
    let a = Instance::start(&url).await;
    let c = Instance::start(&url).await;
    let entry = a.raise("r-1", &args(1), 1).await;
    let waiting = entry.subscribe();
    c.entry("r-1").await;

    cluster.stop().unwrap();
    let err = c.decide("r-1", "alice", Choice::Approve).await.unwrap_err();
    assert_eq!(err.status, 503, "{}", err.message);
    assert_eq!(err.code, "store_unavailable");
    assert!(
        err.message.contains("did not take effect"),
        "{}",
        err.message
    );
    assert_eq!(c.ledger.count(RecordKind::ApprovalGranted), 0);
    assert_eq!(
        c.approvals.store().entry("r-1").unwrap().status(),
        Status::Pending
    );
    assert_eq!(*waiting.borrow(), Status::Pending);
    // Nor is a grant used while the store is down.
    let (refusal, message) = a.use_grant(&entry, &args(1), "act-1").await.unwrap_err();
    assert_eq!(refusal, UseRefusal::NotGranted(Status::Granted));
    assert!(message.contains("store"), "{message}");

    cluster.start_server().unwrap();
    let decided = c.decide("r-1", "alice", Choice::Approve).await.unwrap();
    assert_eq!(decided.outcome, "granted");
    let mut waiting = waiting;
    assert_eq!(
        next_status(&mut waiting, Status::Pending).await,
        Status::Granted
    );
    a.use_grant(&entry, &args(1), "act-1").await.unwrap();
}
