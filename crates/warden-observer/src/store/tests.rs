#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

use std::os::unix::fs::PermissionsExt as _;

use serde_json::json;
use time::macros::datetime;

use super::*;

fn sent(key: &str, outcome: &str) -> SentResponse {
    SentResponse {
        key: key.to_owned(),
        seq: 42,
        time: datetime!(2026-12-06 10:00:00.5 UTC),
        action: "conservative".to_owned(),
        detector: "burst".to_owned(),
        body: json!({"action": "conservative", "scope": "session", "target": "s-1"}),
        control: (outcome == "sent").then(|| "c-1".to_owned()),
        outcome: outcome.to_owned(),
    }
}

#[test]
fn checkpoint_and_responses_round_trip_across_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("observer");
    let checkpoint = Checkpoint {
        head: Head {
            seq: 1234,
            hash: [7; 32],
        },
        engine: Some(json!({"sessions": {"s-1": {"reads": 15}}})),
        saved_at: datetime!(2026-12-06 10:00:01 UTC),
    };
    {
        let (store, tightened) = Store::open(&dir).unwrap();
        assert!(tightened.is_empty());
        assert_eq!(store.checkpoint().unwrap(), None);
        store.save_checkpoint(&checkpoint, &[]).unwrap();
        assert!(!store.was_sent("k-1").unwrap());
        store.record_response(&sent("k-1", "failed: 503")).unwrap();
        assert!(
            !store.was_sent("k-1").unwrap(),
            "a failed send is tried again"
        );
        store.record_response(&sent("k-1", "sent")).unwrap();
        store.record_response(&sent("k-2", "sent")).unwrap();
    }
    let (store, _) = Store::open(&dir).unwrap();
    assert_eq!(store.checkpoint().unwrap(), Some(checkpoint.clone()));
    assert!(store.was_sent("k-1").unwrap());
    let all = store.responses(10).unwrap();
    assert_eq!(all, vec![sent("k-2", "sent"), sent("k-1", "sent")]);

    let later = Checkpoint {
        head: Head {
            seq: 1300,
            hash: [8; 32],
        },
        engine: None,
        ..checkpoint
    };
    let peer = |seq, byte| Head {
        seq,
        hash: [byte; 32],
    };
    store
        .save_checkpoint(&later, &[("gw-b".to_owned(), peer(40, 1))])
        .unwrap();
    assert_eq!(store.checkpoint().unwrap(), Some(later.clone()));
    assert_eq!(
        store.peer_heads().unwrap(),
        vec![("gw-b".to_owned(), peer(40, 1))]
    );
    // A later save moves each instance's head on; instances not named keep theirs.
    store
        .save_checkpoint(&later, &[("gw-c".to_owned(), peer(3, 2))])
        .unwrap();
    drop(store);
    let (store, _) = Store::open(&dir).unwrap();
    let mut heads = store.peer_heads().unwrap();
    heads.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        heads,
        vec![
            ("gw-b".to_owned(), peer(40, 1)),
            ("gw-c".to_owned(), peer(3, 2))
        ]
    );
}

#[test]
fn the_store_is_the_owners_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("observer");
    let (store, _) = Store::open(&dir).unwrap();
    store.record_response(&sent("k", "sent")).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    drop(store);

    // A directory and database left open to others are tightened and reported.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.join(DB_FILE);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_store, tightened) = Store::open(&dir).unwrap();
    let paths: Vec<_> = tightened.iter().map(|t| t.path.clone()).collect();
    assert!(paths.contains(&dir) && paths.contains(&db), "{paths:?}");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&db), 0o600);
}

#[test]
fn the_responses_kept_are_bounded_and_a_newer_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    for i in 0..(MAX_RESPONSES + 5) {
        store
            .record_response(&sent(&format!("k-{i}"), "sent"))
            .unwrap();
    }
    let count: i64 = store
        .with(|c| Ok(c.query_row("SELECT COUNT(*) FROM responses", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(count, MAX_RESPONSES);
    assert!(!store.was_sent("k-0").unwrap());
    assert!(store.was_sent(&format!("k-{}", MAX_RESPONSES + 4)).unwrap());
    store
        .with(|c| Ok(c.pragma_update(None, "user_version", 99)?))
        .unwrap();
    drop(store);
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}
