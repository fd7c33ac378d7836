//! What happens once fleet-wide: a grant is used once (the row lock), a timeout and a use
//! racing end in exactly one of them, sweepers on several instances record one timeout, and
//! the same action asked on two instances raises one request, which both join.

use warden_approval::workflow::Choice;
use warden_approval::{Status, StoreError, UseRefusal};
use warden_core::RecordKind;

use super::support::{Instance, args, database, hash, held, next_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_used_on_a_cannot_be_used_again_on_b() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    let on_a = a.raise("r-1", &args(1), 1).await;
    a.decide("r-1", "alice", Choice::Approve).await.unwrap();
    // B holds the grant too (its follower loaded it), and still thinks it granted when A
    // uses it: B's use locks and re-reads the row, and gets what the machine says of a used
    // grant.
    let on_b = b.entry("r-1").await;
    let mut rx = on_b.subscribe();
    if *rx.borrow() == Status::Pending {
        assert_eq!(next_status(&mut rx, Status::Pending).await, Status::Granted);
    }
    a.use_grant(&on_a, &args(1), "act-a").await.unwrap();
    let (refusal, message) = b.use_grant(&on_b, &args(1), "act-b").await.unwrap_err();
    assert_eq!(refusal, UseRefusal::NotGranted(Status::Used));
    assert!(
        message.contains("already used (by attempt act-a)"),
        "{message}"
    );
    assert_eq!(on_b.status(), Status::Used);
    assert_eq!(b.ledger.count(RecordKind::ApprovalUsed), 0);

    // At once, many times: exactly one of the two uses releases its call.
    for round in 0..10 {
        let id = format!("r-at-once-{round}");
        let args = args(100 + round);
        let on_a = a.raise(&id, &args, 1).await;
        a.decide(&id, "alice", Choice::Approve).await.unwrap();
        let on_b = b.entry(&id).await;
        let (x, y) = tokio::join!(
            a.use_grant(&on_a, &args, "act-a"),
            b.use_grant(&on_b, &args, "act-b")
        );
        assert_eq!(
            usize::from(x.is_ok()) + usize::from(y.is_ok()),
            1,
            "round {round}: {x:?} {y:?}"
        );
    }
    assert_eq!(
        a.ledger.count(RecordKind::ActionForwarded) + b.ledger.count(RecordKind::ActionForwarded),
        11
    );
}

/// A grant is used on A (its clock before the deadline) while B's sweeper (its clock past
/// it) times the request out: exactly one of them takes effect, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_use_and_a_timeout_racing_resolve_to_exactly_one() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    for round in 0..10 {
        let id = format!("r-{round}");
        let args = args(round);
        let on_a = a.raise(&id, &args, 1).await;
        a.decide(&id, "alice", Choice::Approve).await.unwrap();
        b.entry(&id).await;
        b.clock.set(on_a.deadline());
        let action = format!("act-{round}");
        let (used, timed_out) =
            tokio::join!(a.use_grant(&on_a, &args, &action), b.approvals.sweep());
        let stored = a.approvals.store().get(&id).await.unwrap().unwrap();
        match (used, timed_out) {
            (Ok(()), 0) => assert_eq!(stored.status, Status::Used),
            (Err((UseRefusal::NotGranted(Status::TimedOut), _)), 1) => {
                assert_eq!(stored.status, Status::TimedOut);
            }
            other => panic!("round {round}: both or neither: {other:?}"),
        }
        b.clock.set(super::support::t0());
    }
}

/// Every instance sweeps the same request past its deadline at once: one timeout is
/// recorded, and every waiting call sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweepers_on_three_instances_record_one_timeout() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    let c = Instance::start(db.url()).await;
    let entry = a.raise("r-1", &args(1), 1).await;
    let mut waiting = entry.subscribe();
    held(&b, "r-1").await;
    held(&c, "r-1").await;
    for i in [&a, &b, &c] {
        i.clock.set(entry.deadline());
    }
    let (x, y, z) = tokio::join!(
        a.approvals.sweep(),
        b.approvals.sweep(),
        c.approvals.sweep()
    );
    assert_eq!(x + y + z, 1);
    let recorded: usize = [&a, &b, &c]
        .iter()
        .map(|i| i.ledger.count(RecordKind::ApprovalTimedOut))
        .sum();
    assert_eq!(recorded, 1);
    assert_eq!(
        next_status(&mut waiting, Status::Pending).await,
        Status::TimedOut
    );
    // Nobody holds it any more.
    for i in [&a, &b, &c] {
        let gone = tokio::time::timeout(super::support::ARRIVES_WITHIN, async {
            while i.approvals.store().entry("r-1").is_some() {
                i.approvals.sweep().await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(gone.is_ok());
    }
}

/// The same call arriving on A and on B raises one request: the second instance's request is
/// refused as a duplicate and it holds the first one's, which a call there joins; one grant
/// releases one of the two calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_action_on_two_instances_joins_one_request() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    // B asks before its follower heard of A's request: the store says it exists.
    let first = a.raise("r-a", &args(1), 1).await;
    let dup = b.approvals.create(b.request("r-b", &args(1), 1)).await;
    assert!(matches!(dup, Err(StoreError::Duplicate)), "{dup:?}");
    let joined = b.approvals.by_hash(&hash(&args(1))).unwrap();
    assert_eq!(joined.id(), "r-a");
    assert!(b.approvals.store().get("r-b").await.unwrap().is_none());
    let (mut on_a, mut on_b) = (first.subscribe(), joined.subscribe());
    b.decide("r-a", "carol", Choice::Approve).await.unwrap();
    assert_eq!(
        next_status(&mut on_a, Status::Pending).await,
        Status::Granted
    );
    assert_eq!(
        next_status(&mut on_b, Status::Pending).await,
        Status::Granted
    );
    let one = args(1);
    let (x, y) = tokio::join!(
        a.use_grant(&first, &one, "act-a"),
        b.use_grant(&joined, &one, "act-b")
    );
    assert_eq!(usize::from(x.is_ok()) + usize::from(y.is_ok()), 1);

    // At once, many times: one request per action.
    for round in 0..10 {
        let args = args(100 + round);
        let (x, y) = tokio::join!(
            a.approvals
                .create(a.request(&format!("a-{round}"), &args, 1)),
            b.approvals
                .create(b.request(&format!("b-{round}"), &args, 1))
        );
        assert_eq!(
            usize::from(x.is_ok()) + usize::from(y.is_ok()),
            1,
            "round {round}"
        );
        let ids: Vec<String> = [&a, &b]
            .iter()
            .map(|i| i.approvals.by_hash(&hash(&args)).unwrap().id().to_owned())
            .collect();
        assert_eq!(ids[0], ids[1], "round {round}");
    }
    let pending = a
        .approvals
        .store()
        .list(Some(Status::Pending), 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), 10);
}

/// A request denied through B answers the same call on A with the denial, even before A's
/// follower heard of it: the store says so when A asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_on_b_answers_the_same_call_raised_again_on_a() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    b.raise("r-b", &args(1), 1).await;
    b.decide("r-b", "bob", Choice::Deny).await.unwrap();
    let dup = a.approvals.create(a.request("r-a", &args(1), 1)).await;
    assert!(matches!(dup, Err(StoreError::Duplicate)), "{dup:?}");
    let held = a.approvals.by_hash(&hash(&args(1))).unwrap();
    assert_eq!(held.id(), "r-b");
    assert_eq!(held.status(), Status::Denied);
}

/// The instance that raised a request stops: another instance, which loaded it from the
/// store, times it out at its deadline (and an approver could decide it there before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_a_stopped_instance_is_timed_out_by_another() {
    let db = database().await;
    let a = Instance::start(db.url()).await;
    let b = Instance::start(db.url()).await;
    let deadline = a.raise("r-1", &args(1), 1).await.deadline();
    drop(a);
    let on_b = held(&b, "r-1").await;
    assert_eq!(b.approvals.sweep().await, 0);
    b.clock.set(deadline);
    assert_eq!(b.approvals.sweep().await, 1);
    assert_eq!(on_b.status(), Status::TimedOut);
    assert_eq!(b.ledger.count(RecordKind::ApprovalTimedOut), 1);
}
