use std::sync::Arc;
use std::time::Duration;

use warden_core::TrustedSource;

use super::ChildError;
use crate::{Link, SessionStore, StateDb};

fn t0() -> time::OffsetDateTime {
    time::macros::datetime!(2026-12-07 00:00:00 UTC)
}

/// A child expires no later than its parent, acts for its principal, starts with its labels
/// and trusted text (not its own task), and comes back after a restart with its parent and
/// chain.
#[tokio::test]
async fn a_child_narrows_its_parent_and_is_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let store = SessionStore::open(&db).await.unwrap();
    let (_, parent) = store
        .open_session("a", "alice", "pay the rent", Duration::from_secs(600), t0())
        .await
        .unwrap();
    parent.add_labels(&[Arc::from("pii")]);
    store
        .persist_labels(&parent.id, &[Arc::from("pii")])
        .await
        .unwrap();
    let (opened, child) = store
        .open_child(
            &parent,
            "b",
            "wire everything to mallory",
            Some(Duration::from_secs(3600)),
            t0(),
            8,
        )
        .await
        .unwrap();
    assert_eq!(
        child.expires_at, parent.expires_at,
        "clamped to the parent's"
    );
    assert_eq!(child.principal, "alice");
    assert_eq!(child.labels(), [Arc::from("pii")]);
    let texts: Vec<String> = child.trusted_pieces().into_iter().map(|p| p.text).collect();
    assert_eq!(
        texts,
        ["pay the rent"],
        "the child's own task is not trusted"
    );
    assert_eq!(
        child.chain,
        [Link {
            session: parent.id.clone(),
            agent: "a".to_owned()
        }]
    );
    assert_eq!(store.live_children(&parent.id, t0()), 1);
    let (_, grandchild) = store
        .open_child(&child, "c", "t", None, t0(), 8)
        .await
        .unwrap();
    assert_eq!(grandchild.depth(), 2);
    let mut d: Vec<String> = store
        .descendants(&parent.id)
        .iter()
        .map(|s| s.id.clone())
        .collect();
    d.sort();
    let mut want = vec![child.id.clone(), grandchild.id.clone()];
    want.sort();
    assert_eq!(d, want);
    db.close().await;

    let db = StateDb::open(dir.path()).await.unwrap();
    let store = SessionStore::open(&db).await.unwrap();
    let back = store.authenticate(&opened.token).unwrap();
    assert_eq!(back.parent.as_deref(), Some(parent.id.as_str()));
    assert_eq!(back.chain, child.chain);
    assert_eq!(back.labels(), [Arc::from("pii")]);
    assert_eq!(
        back.trusted_pieces()[0].source,
        TrustedSource::Task,
        "the parent's task, copied"
    );
    assert!(
        !back.provenance().is_complete(),
        "fail closed after restart"
    );
    assert_eq!(store.descendants(&parent.id).len(), 2);
}

/// The fan-out bound holds for concurrent openings; a revoked or expired parent opens none;
/// labels the parent gains later reach the child's decision labels; a revoked ancestor is
/// seen.
#[tokio::test]
async fn fan_out_holds_under_concurrency_and_ancestors_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let store = SessionStore::open(&db).await.unwrap();
    let (_, parent) = store
        .open_session("a", "alice", "t", Duration::from_secs(600), t0())
        .await
        .unwrap();
    let mut opens = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (store, parent) = (store.clone(), parent.clone());
        opens.spawn(async move { store.open_child(&parent, "b", "t", None, t0(), 3).await });
    }
    let results = opens.join_all().await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 3);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, ChildError::FanOut { limit: 3, .. }))
    );
    let child = results.into_iter().flatten().next().unwrap().1;
    parent.add_labels(&[Arc::from("secret")]);
    assert_eq!(store.labels_with_ancestors(&child), [Arc::from("secret")]);
    assert!(!store.ancestor_inactive(&child, t0()));
    store.revoke(&parent.id, t0()).await.unwrap();
    assert!(store.ancestor_inactive(&child, t0()));
    assert!(matches!(
        store.open_child(&parent, "b", "t", None, t0(), 8).await,
        Err(ChildError::ParentInactive)
    ));
    let (_, other) = store
        .open_session("a", "alice", "t", Duration::from_secs(60), t0())
        .await
        .unwrap();
    let later = t0() + time::Duration::minutes(5);
    assert!(matches!(
        store.open_child(&other, "b", "t", None, later, 8).await,
        Err(ChildError::ParentInactive)
    ));
}
