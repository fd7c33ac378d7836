//! Controls on PostgreSQL: set, lifted or expired through one instance, in force (or not) on
//! every other within the poll.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_core::record::RecordFuture;
use warden_core::{ManualClock, NewRecord, RecordError, RecordKind, Recorder};
use warden_operator::controls::ControlDesk;
use warden_session::{Actor, Control, ControlAction, ControlScope, Controls, StateDb};

use super::common::{instances, unreachable};

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-12-06 12:00:00 UTC)
}

fn control(id: &str, expires_at: Option<OffsetDateTime>) -> Control {
    Control {
        id: id.to_owned(),
        action: ControlAction::Frozen,
        scope: ControlScope::Gateway,
        target: None,
        tool: None,
        reason: "tests".to_owned(),
        evidence: Vec::new(),
        detector: None,
        set_by: Actor {
            id: "op".to_owned(),
            name: "op".to_owned(),
            role: "admin".to_owned(),
        },
        set_at: now(),
        expires_at,
        lifted_at: None,
        lifted_by: None,
        lift_reason: None,
    }
}

/// An instance: its controls, following the others' changes (notices on `tasks`).
async fn follower(db: &StateDb, tasks: &TaskTracker, stop: &CancellationToken) -> Arc<Controls> {
    let controls = Arc::new(Controls::open(db).await.unwrap());
    let notices = db.listen(tasks, stop.clone()).clone();
    let c = controls.clone();
    let stop = stop.clone();
    tasks.spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = warden_gateway::fleet::controls::follow(c, notices) => {}
        }
    });
    controls
}

/// Waits (at most 20 s: a bound, not a measure) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "never: {what}");
}

/// A control stored and put in force through A is applied on B by the follower (the
/// notice), and lifted through A it stops applying on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_set_on_one_instance_is_in_force_on_another() {
    let (_db, _dir, dbs) = instances(2).await;
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let a = Controls::open(&dbs[0]).await.unwrap();
    let b = follower(&dbs[1], &tasks, &stop).await;
    let c = control("c-1", None);
    a.store(&c).await.unwrap();
    a.install(c.clone()).unwrap();
    eventually("B applies the control", || b.get("c-1").is_some()).await;
    assert_eq!(b.in_force(now()).len(), 1);
    let mut lifted = c.clone();
    lifted.lifted_at = Some(now());
    lifted.lift_reason = Some("done".to_owned());
    a.lift(&lifted).await.unwrap();
    eventually("B drops the lifted control", || b.get("c-1").is_none()).await;
    stop.cancel();
}

/// A control written with no notification at all (plain SQL, no NOTIFY) is applied by the
/// poll alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_alone_applies_a_control() {
    let (_db, _dir, dbs) = instances(1).await;
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let b = follower(&dbs[0], &tasks, &stop).await;
    let c = control("c-quiet", None);
    sqlx::query("INSERT INTO controls (id, state, body) VALUES ($1, 'in_force', $2)")
        .bind(&c.id)
        .bind(serde_json::to_string(&c).unwrap())
        .execute(dbs[0].postgres().unwrap())
        .await
        .unwrap();
    eventually("the poll applies it", || b.get("c-quiet").is_some()).await;
    sqlx::query("UPDATE controls SET state = 'lifted', changed = nextval(pg_get_serial_sequence('controls', 'changed')) WHERE id = $1")
        .bind(&c.id)
        .execute(dbs[0].postgres().unwrap())
        .await
        .unwrap();
    eventually("the poll drops it", || b.get("c-quiet").is_none()).await;
    stop.cancel();
}

/// A recorder that keeps what it is given.
#[derive(Debug, Default)]
struct Kept(Mutex<Vec<NewRecord>>);

impl Recorder for Kept {
    fn append_batch(&self, records: Vec<NewRecord>) -> RecordFuture<'_> {
        Box::pin(async move {
            self.0
                .lock()
                .map_err(|_| RecordError {
                    message: "poisoned".to_owned(),
                    source: None,
                })?
                .extend(records);
            Ok(())
        })
    }
}

/// Three instances sweep the same expired control at once: its expiry is recorded once, and
/// every instance forgets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expiry_is_recorded_by_one_instance_only() {
    let (_db, _dir, dbs) = instances(3).await;
    let c = control("c-exp", Some(now() + time::Duration::minutes(1)));
    Controls::open(&dbs[0])
        .await
        .unwrap()
        .store(&c)
        .await
        .unwrap();
    let kept = Arc::new(Kept::default());
    let clock = Arc::new(ManualClock::new(now() + time::Duration::minutes(2)));
    let mut desks = Vec::new();
    for db in &dbs {
        let controls = Arc::new(Controls::open(db).await.unwrap());
        assert_eq!(controls.held(), 1);
        desks.push(Arc::new(ControlDesk::new(
            controls,
            kept.clone(),
            clock.clone(),
        )));
    }
    let sweeps: Vec<_> = desks
        .iter()
        .map(|d| {
            let d = d.clone();
            tokio::spawn(async move { d.sweep().await })
        })
        .collect();
    for s in sweeps {
        assert_eq!(s.await.unwrap(), 1);
    }
    let expired = kept
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.kind == RecordKind::ControlExpired)
        .count();
    assert_eq!(expired, 1);
    for d in &desks {
        assert_eq!(d.controls.held(), 0);
    }
    let state: String = sqlx::query_scalar("SELECT state FROM controls WHERE id = 'c-exp'")
        .fetch_one(dbs[0].postgres().unwrap())
        .await
        .unwrap();
    assert_eq!(state, "expired");
}

/// PostgreSQL unreachable: the controls cannot be opened (nothing starts) nor set.
#[tokio::test]
async fn the_store_down_refuses_controls() {
    let db = unreachable();
    assert!(Controls::open(&db).await.is_err());
}
