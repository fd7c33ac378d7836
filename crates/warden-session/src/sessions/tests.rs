//! Unit tests of the session store on SQLite.

use super::*;
use warden_provenance::Limits;

/// Issue 10, point 17: a lifetime that ends past the calendar is refused, never a panic
/// (`now + ttl` panicked before).
#[tokio::test]
async fn a_lifetime_past_the_end_of_the_calendar_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let store = SessionStore::open(&db).await.unwrap();
    let end_of_time = time::macros::datetime!(9999-12-31 23:00:00 UTC);
    let err = store
        .open_session("a", "p", "t", MAX_TTL, end_of_time)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTtl), "{err}");
    assert!(store.list(end_of_time).is_empty());
    let ok = store
        .open_session("a", "p", "t", Duration::from_secs(60), end_of_time)
        .await;
    assert!(ok.is_ok());
}

/// Issue 10, point 15: sessions long expired do not stay in memory for ever.
#[tokio::test]
async fn issue_10_long_expired_sessions_are_pruned_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let store = SessionStore::open(&db).await.unwrap();
    let t0 = time::macros::datetime!(2026-12-06 12:00:00 UTC);
    let (old, _) = store
        .open_session("a", "p", "t", Duration::from_secs(60), t0)
        .await
        .unwrap();
    let (live, _) = store
        .open_session("a", "p", "t", Duration::from_secs(3 * 86_400), t0)
        .await
        .unwrap();
    let day = Duration::from_secs(86_400);
    let later = t0 + time::Duration::days(2);
    assert_eq!(store.prune_expired(later, day), 1);
    assert!(store.authenticate(&old.token).is_none());
    assert!(store.authenticate(&live.token).is_some());
    assert_eq!(store.list(later).len(), 1);
    // Recently expired ones are kept (refused as expired, listed).
    assert_eq!(store.prune_expired(t0 + time::Duration::hours(1), day), 0);
}

/// Issue 13: trusted text added to a session is persisted and back, in order and with its
/// source, after the store is reopened; an unreadable stored source is not trusted.
#[tokio::test]
async fn issue_13_trusted_text_is_back_after_a_restart_with_its_sources() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let store = SessionStore::open(&db).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let (opened, session) = store
        .open_session("a", "p", "pay the rent", Duration::from_secs(600), now)
        .await
        .unwrap();
    let source = TrustedSource::Instruction { seq: Some(7) };
    session
        .add_trusted("also pay bob@x.com", source.clone())
        .unwrap();
    store
        .persist_trust(&opened.id, "also pay bob@x.com", &source)
        .await
        .unwrap();
    sqlx::query("INSERT INTO session_trust (session, text, source) VALUES (?, 'forged', '{bad')")
        .bind(&opened.id)
        .execute(&db.pool().unwrap())
        .await
        .unwrap();
    db.close().await;
    let db = StateDb::open(dir.path()).await.unwrap();
    let store = SessionStore::open(&db).await.unwrap();
    let back = store.get(&opened.id).unwrap();
    assert_eq!(
        back.trusted_pieces(),
        [
            TrustedPiece {
                text: "pay the rent".to_owned(),
                source: TrustedSource::Task
            },
            TrustedPiece {
                text: "also pay bob@x.com".to_owned(),
                source
            },
        ]
    );
    let listed = store.list(now);
    assert_eq!(listed[0].trusted.len(), 2);
    assert!(back.trusted_fits(1024));
    assert!(!back.trusted_fits(Limits::default().max_trusted_bytes));
}

/// Issue 10, point 18: a labels lock poisoned by a panic made `labels()` answer none and
/// `add_labels` add none (fail open); the labels stay and are added now.
#[test]
fn issue_10_a_poisoned_labels_lock_keeps_and_adds_labels() {
    let s = Session {
        id: "s".to_owned(),
        agent: "a".to_owned(),
        principal: "p".to_owned(),
        task: "t".to_owned(),
        opened_at: time::OffsetDateTime::UNIX_EPOCH,
        expires_at: time::OffsetDateTime::UNIX_EPOCH,
        chain: Vec::new(),
        parent: None,
        revoked: std::sync::atomic::AtomicBool::new(false),
        labels: Mutex::new(Vec::new()),
        provenance: provenance_of("t"),
        trust_seen: Default::default(),
        served_here: Default::default(),
    };
    s.add_labels(&[Arc::from("pii")]);
    std::thread::scope(|scope| {
        let _ = scope
            .spawn(|| {
                let _held = s.labels.lock();
                panic!("poison the lock");
            })
            .join();
    });
    assert!(s.labels.is_poisoned());
    assert_eq!(s.labels(), [Arc::from("pii")]);
    assert_eq!(s.add_labels(&[Arc::from("secret")]), [Arc::from("secret")]);
    assert_eq!(s.labels(), [Arc::from("pii"), Arc::from("secret")]);
}
