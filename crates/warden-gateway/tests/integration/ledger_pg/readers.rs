//! The readers: one instance's chain, and every instance merged by time.

use std::sync::Arc;

use time::macros::datetime;
use warden_audit::{LedgerError, LedgerReader, PageBound};
use warden_core::ManualClock;

use super::{instance, open_with, record, store};

#[tokio::test]
async fn the_merged_reader_orders_every_instance_by_time() {
    let (_db, pool) = store().await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let c1 = Arc::new(ManualClock::new(datetime!(2026-12-01 10:00 UTC)));
    let c2 = Arc::new(ManualClock::new(datetime!(2026-12-01 10:00 UTC)));
    let one = open_with(&pool, "gw-1", d1.path(), c1.clone(), Default::default())
        .await
        .unwrap();
    let two = open_with(&pool, "gw-2", d2.path(), c2.clone(), Default::default())
        .await
        .unwrap();
    // Times: gw-2 #1 at :01, gw-1 #1 at :02, gw-2 #2 at :03, gw-1 #2 at :04.
    c2.set(datetime!(2026-12-01 10:01 UTC));
    two.append(record("shared", 1)).await.unwrap();
    c1.set(datetime!(2026-12-01 10:02 UTC));
    one.append(record("shared", 2)).await.unwrap();
    c2.set(datetime!(2026-12-01 10:03 UTC));
    two.append(record("shared", 3)).await.unwrap();
    c1.set(datetime!(2026-12-01 10:04 UTC));
    one.append(record("other", 4)).await.unwrap();

    let merged = LedgerReader::open_postgres(pool.clone(), None)
        .await
        .unwrap();
    assert!(merged.is_merged());
    let n = |records: Vec<warden_audit::Record>| -> Vec<u64> {
        records
            .iter()
            .map(|r| r.payload["n"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(n(merged.tail(10).await.unwrap()), [1, 2, 3, 4]);
    assert_eq!(n(merged.tail(2).await.unwrap()), [3, 4]);
    assert_eq!(merged.session_count("shared").await.unwrap(), 3);
    let first = merged
        .session_page("shared", PageBound::After(0), 2)
        .await
        .unwrap();
    assert_eq!(n(first), [1, 2]);
    let last = merged
        .session_page("shared", PageBound::Before(u64::MAX), 2)
        .await
        .unwrap();
    assert_eq!(n(last), [2, 3]);
    let newest = merged
        .newest_of_kinds(&["action_attempted"], None, 3)
        .await
        .unwrap();
    assert_eq!(n(newest), [4, 3, 2]);
    let kinds = merged
        .session_kinds_before("shared", &["action_attempted"], u64::MAX, 2, 10)
        .await
        .unwrap();
    assert_eq!(n(kinds), [3, 2]);
    // What needs one chain is refused, not answered from a mixture.
    for refused in [
        merged.get(1).await.map(drop),
        merged.range(1, 5).await.map(drop),
        merged.verify().await.map(drop),
        merged.tree_root(1).await.map(drop),
        merged.id().await.map(drop),
        merged
            .session_page("shared", PageBound::After(1), 2)
            .await
            .map(drop),
        merged
            .newest_of_kinds(&["action_attempted"], Some(2), 3)
            .await
            .map(drop),
        merged
            .kinds_in_range(&["action_attempted"], 1, 4, 3)
            .await
            .map(drop),
    ] {
        assert!(
            matches!(refused, Err(LedgerError::Unsupported(_))),
            "{refused:?}"
        );
    }

    // One instance's reader sees only its chain, by seq.
    let only = LedgerReader::open_postgres(pool.clone(), Some(instance("gw-1")))
        .await
        .unwrap();
    assert!(!only.is_merged());
    assert_eq!(n(only.tail(10).await.unwrap()), [2, 4]);
    assert_eq!(
        n(only
            .session_page("shared", PageBound::After(0), 10)
            .await
            .unwrap()),
        [2]
    );
    assert_eq!(
        n(only
            .session_kinds_before("shared", &["action_attempted"], 3, 5, 5)
            .await
            .unwrap()),
        [2]
    );
    // Its records of some kinds in a range of its sequence numbers.
    assert_eq!(
        n(only
            .kinds_in_range(&["action_attempted"], 1, 2, 10)
            .await
            .unwrap()),
        [2, 4]
    );
    assert_eq!(
        n(only
            .kinds_in_range(&["action_attempted"], 2, 9, 10)
            .await
            .unwrap()),
        [4]
    );
    assert_eq!(
        n(only
            .kinds_in_range(&["action_attempted"], 1, 2, 1)
            .await
            .unwrap()),
        [2]
    );
    for none in [
        only.kinds_in_range(&["action_decided"], 1, 2, 10),
        only.kinds_in_range(&["action_attempted"], 2, 1, 10),
        only.kinds_in_range(&[], 1, 2, 10),
    ] {
        assert!(none.await.unwrap().is_empty());
    }
    one.shutdown().await.unwrap();
    two.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reader_of_an_unknown_instance_is_refused_by_name() {
    let (_db, pool) = store().await;
    match LedgerReader::open_postgres(pool.clone(), Some(instance("nowhere"))).await {
        Err(LedgerError::UnknownInstance { instance }) => assert_eq!(instance, "nowhere"),
        other => panic!("expected UnknownInstance, got {other:?}"),
    }
    // The merged reader of an empty store reads nothing, and lists no instance.
    let merged = LedgerReader::open_postgres(pool.clone(), None)
        .await
        .unwrap();
    assert!(merged.tail(5).await.unwrap().is_empty());
    assert!(merged.instances().await.unwrap().is_empty());
}
