//! Two instances on one throwaway PostgreSQL database.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_core::store::{InstanceId, StoreLocation};
use warden_session::{OperatorCredentials, PoolBounds, Session, SessionStore, StateDb};
use warden_testkit::postgres::TestDb;

/// One "instance": its own pool and stores on the shared database.
pub(crate) struct Instance {
    pub(crate) db: StateDb,
    pub(crate) sessions: SessionStore,
    pub(crate) operators: OperatorCredentials,
    _dir: tempfile::TempDir,
}

/// The test's time (sessions live an hour from it).
pub(crate) fn t0() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// An instance named `name` on `url` (migrated on connect).
pub(crate) async fn instance(url: &str, name: &str) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::parse(url).unwrap();
    let db = StateDb::connect(&location, dir.path(), PoolBounds::default())
        .await
        .unwrap();
    let id = InstanceId::parse(name).unwrap();
    let sessions = SessionStore::open_as(&db, Some(&id)).await.unwrap();
    let operators = OperatorCredentials::open(&db);
    Instance {
        db,
        sessions,
        operators,
        _dir: dir,
    }
}

/// A fresh database and two instances on it.
pub(crate) async fn two() -> (TestDb, Instance, Instance) {
    let pg = TestDb::new().await.unwrap();
    let a = instance(pg.url(), "gw-a").await;
    let b = instance(pg.url(), "gw-b").await;
    (pg, a, b)
}

/// Opens a root session on `on` for agent `a`, principal `alice`; its token and session.
pub(crate) async fn open(on: &Instance, task: &str) -> (String, Arc<Session>) {
    let (opened, session) = on
        .sessions
        .open_session("a", "alice", task, Duration::from_secs(3600), t0())
        .await
        .unwrap();
    (opened.token, session)
}

/// Starts `on`'s listener and its sessions follower (as the gateway does at start-up).
pub(crate) fn follow(on: &Instance) -> (TaskTracker, CancellationToken) {
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();
    let notices = on.db.listen(&tasks, stop.clone()).clone();
    warden_gateway::fleet::sessions::follow(
        on.sessions.clone(),
        &notices,
        OffsetDateTime::now_utc,
        &tasks,
        stop.clone(),
    );
    (tasks, stop)
}

/// Waits (bounded: 10 s) until `cond` holds; whether it did.
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}
