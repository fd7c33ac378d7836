use std::time::Duration;

use time::macros::datetime;

use super::*;
use crate::SessionStore;

const NOW: OffsetDateTime = datetime!(2026-12-06 10:00 UTC);

fn control(id: &str, action: ControlAction, scope: ControlScope, target: Option<&str>) -> Control {
    Control {
        id: id.to_owned(),
        action,
        scope,
        target: target.map(str::to_owned),
        tool: None,
        reason: format!("reason {id}"),
        evidence: vec![1, 2],
        detector: None,
        set_by: Actor {
            id: "op".to_owned(),
            name: "ops".to_owned(),
            role: "admin".to_owned(),
        },
        set_at: NOW,
        expires_at: None,
        lifted_at: None,
        lifted_by: None,
        lift_reason: None,
    }
}

async fn two_sessions(db: &StateDb) -> (Arc<Session>, Arc<Session>) {
    let store = SessionStore::open(db).await.unwrap();
    let hour = Duration::from_secs(3600);
    let (a, _) = store
        .open_session("agent", "alice", "", hour, NOW)
        .await
        .unwrap();
    let (b, _) = store
        .open_session("agent", "bob", "", hour, NOW)
        .await
        .unwrap();
    (store.get(&a.id).unwrap(), store.get(&b.id).unwrap())
}

#[tokio::test]
async fn each_scope_applies_to_exactly_its_sessions_and_the_strictest_wins() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let (alice, bob) = two_sessions(&db).await;
    let controls = Controls::open(&db).await.unwrap();
    assert_eq!(
        controls.applying(&alice, None, NOW).posture,
        Posture::Normal
    );

    let c = control(
        "c1",
        ControlAction::Conservative,
        ControlScope::Principal,
        Some("alice"),
    );
    controls.store(&c).await.unwrap();
    controls.install(c).unwrap();
    assert_eq!(
        controls.applying(&alice, None, NOW).posture,
        Posture::Conservative
    );
    assert_eq!(controls.applying(&bob, None, NOW).posture, Posture::Normal);

    let f = control(
        "c2",
        ControlAction::Frozen,
        ControlScope::Session,
        Some(&bob.id),
    );
    controls.install(f).unwrap();
    let applied = controls.applying(&bob, None, NOW);
    assert_eq!(applied.posture, Posture::Frozen);
    assert_eq!(applied.changed(Reason::PostureFrozen).unwrap().id, "c2");
    assert_eq!(
        controls.applying(&alice, None, NOW).posture,
        Posture::Conservative
    );

    // A gateway-wide conservative control does not weaken a session's frozen posture.
    controls
        .install(control(
            "c3",
            ControlAction::Conservative,
            ControlScope::Gateway,
            None,
        ))
        .unwrap();
    assert_eq!(controls.applying(&bob, None, NOW).posture, Posture::Frozen);

    let mut t = control(
        "c4",
        ControlAction::FreezeTool,
        ControlScope::Agent,
        Some("agent"),
    );
    t.tool = Some("fs.write".to_owned());
    controls.install(t).unwrap();
    assert!(
        controls
            .applying(&alice, Some("fs.write"), NOW)
            .tool_frozen
            .is_some()
    );
    assert!(
        controls
            .applying(&alice, Some("fs.read"), NOW)
            .tool_frozen
            .is_none()
    );
    assert!(controls.applying(&alice, None, NOW).tool_frozen.is_none());

    let r = control(
        "c5",
        ControlAction::RevokeSession,
        ControlScope::Agent,
        Some("other"),
    );
    controls.install(r).unwrap();
    assert!(
        controls
            .applying(&alice, None, NOW)
            .session_revoked
            .is_none()
    );
}

#[tokio::test]
async fn controls_survive_a_reopen_lifted_ones_do_not_apply_and_expiry_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let (alice, _) = two_sessions(&db).await;
    let controls = Controls::open(&db).await.unwrap();
    let mut expiring = control("c1", ControlAction::Frozen, ControlScope::Gateway, None);
    expiring.expires_at = Some(NOW + time::Duration::minutes(10));
    let lifted = control(
        "c2",
        ControlAction::Conservative,
        ControlScope::Gateway,
        None,
    );
    for c in [&expiring, &lifted] {
        controls.store(c).await.unwrap();
        controls.install(c.clone()).unwrap();
    }
    let mut l = lifted.clone();
    l.lifted_at = Some(NOW);
    controls.lift(&l).await.unwrap();
    drop(controls);

    let reopened = Controls::open(&db).await.unwrap();
    assert_eq!(reopened.held(), 1);
    assert_eq!(
        reopened.applying(&alice, None, NOW).posture,
        Posture::Frozen
    );
    let later = NOW + time::Duration::minutes(10);
    // Past its expiry it no longer applies, even before the sweeper noticed.
    assert_eq!(
        reopened.applying(&alice, None, later).posture,
        Posture::Normal
    );
    let due = reopened.due(later);
    assert_eq!(due.len(), 1);
    reopened.expire(&due[0]).await.unwrap();
    assert!(reopened.due(later).is_empty());
    let all = reopened.list_all().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, "c2", "newest first");
    assert!(all[0].lifted_at.is_some());
    assert_eq!(Controls::open(&db).await.unwrap().held(), 0);
}

#[test]
fn a_poisoned_snapshot_reads_as_frozen() {
    let controls = Arc::new(Controls::in_memory());
    let c = controls.clone();
    let _ = std::thread::spawn(move || {
        let _guard = c.snapshot.write().unwrap();
        panic!("poison");
    })
    .join();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (alice, _) = rt.block_on(async {
        let db = StateDb::open(dir.path()).await.unwrap();
        two_sessions(&db).await
    });
    let applied = controls.applying(&alice, Some("fs.read"), NOW);
    assert_eq!(applied.posture, Posture::Frozen);
    assert!(applied.stopped().is_some());
}
