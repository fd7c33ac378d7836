//! The writer: one chain per instance across restarts, group commit under many tasks, the
//! instance lock, the tree and its proofs.

use std::sync::Arc;

use warden_audit::{LedgerError, LedgerReader, merkle};

use super::{open, record, store};

#[tokio::test]
async fn appends_across_restarts_continue_one_chain_with_its_tree() {
    let (_db, pool) = store().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&pool, "gw-1", dir.path()).await;
    let id = ledger.id().to_owned();
    assert_eq!(ledger.instance().map(|i| i.as_str()), Some("gw-1"));
    let mut last = 0;
    for n in 0..3u64 {
        let batch = (0..100).map(|i| record("s1", n * 100 + i)).collect();
        last = ledger
            .append_batch(batch)
            .await
            .unwrap()
            .last()
            .unwrap()
            .seq;
    }
    assert_eq!(last, 300);
    assert_eq!(*ledger.watch_head().borrow(), 300);
    assert_eq!(ledger.committed_head(), 300);
    assert!(ledger.is_accepting());
    let tree_before = *ledger.watch_tree().borrow();
    ledger.shutdown().await.unwrap();
    assert!(matches!(
        ledger.append(record("s1", 0)).await,
        Err(LedgerError::Closed)
    ));

    // Reopened: the same ledger id, the same tree, and the chain goes on from 301.
    let ledger = open(&pool, "gw-1", dir.path()).await;
    assert_eq!(ledger.id(), id);
    assert_eq!(*ledger.watch_tree().borrow(), tree_before);
    let next = ledger.append(record("s1", 301)).await.unwrap();
    assert_eq!(next.seq, 301);
    let tree = *ledger.watch_tree().borrow();
    assert_eq!(tree.size, 301);

    let reader = LedgerReader::open_source(&ledger.source()).await.unwrap();
    let report = reader.verify().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 301);
    assert_eq!(reader.id().await.unwrap(), id);
    assert_eq!(reader.mark().await.unwrap(), Some(301));
    assert_eq!(reader.tree_root(301).await.unwrap(), tree.root);
    assert_eq!(reader.tree_root(300).await.unwrap(), tree_before.root);
    let tail = reader.tail(2).await.unwrap();
    assert_eq!(tail.iter().map(|r| r.seq).collect::<Vec<_>>(), [300, 301]);
    assert_eq!(reader.get(1).await.unwrap().unwrap().prev_hash, [0; 32]);
    assert_eq!(reader.range(299, 10).await.unwrap().len(), 3);
    ledger.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_instances_keep_independent_chains_that_each_verify() {
    let (_db, pool) = store().await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = open(&pool, "gw-1", d1.path()).await;
    let two = open(&pool, "gw-2", d2.path()).await;
    assert_ne!(one.id(), two.id());
    for n in 0..5 {
        assert_eq!(one.append(record("s", n)).await.unwrap().seq, n + 1);
        assert_eq!(two.append(record("s", n)).await.unwrap().seq, n + 1);
    }
    assert_eq!(two.append(record("s", 9)).await.unwrap().seq, 6);
    for ledger in [&one, &two] {
        let reader = LedgerReader::open_source(&ledger.source()).await.unwrap();
        let report = reader.verify().await.unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(reader.id().await.unwrap(), ledger.id());
    }
    let merged = LedgerReader::open_postgres(pool.clone(), None)
        .await
        .unwrap();
    let listed = merged.instances().await.unwrap();
    let listed: Vec<_> = listed
        .iter()
        .map(|i| (i.instance.as_str(), i.ledger.as_str(), i.head))
        .collect();
    assert_eq!(listed, [("gw-1", one.id(), 5), ("gw-2", two.id(), 6)]);
    one.shutdown().await.unwrap();
    two.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_writer_of_one_instance_is_refused_until_the_first_stops() {
    let (_db, pool) = store().await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = open(&pool, "gw-1", d1.path()).await;
    first.append(record("s", 1)).await.unwrap();
    let second = super::open_with(
        &pool,
        "gw-1",
        d2.path(),
        Arc::new(warden_core::SystemClock),
        Default::default(),
    )
    .await;
    match second {
        Err(LedgerError::InstanceLocked { instance }) => assert_eq!(instance, "gw-1"),
        other => panic!("expected InstanceLocked, got {other:?}"),
    }
    // Another instance is not held by it.
    let other = open(&pool, "gw-2", d2.path()).await;
    other.shutdown().await.unwrap();
    first.shutdown().await.unwrap();
    let again = open(&pool, "gw-1", d2.path()).await;
    assert_eq!(again.append(record("s", 2)).await.unwrap().seq, 2);
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn concurrent_appends_from_many_tasks_lose_nothing() {
    let (_db, pool) = store().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&pool, "gw-1", dir.path()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16u64 {
        let ledger = ledger.clone();
        tasks.spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..40u64 {
                let session = format!("s{t}");
                seqs.push(ledger.append(record(&session, n)).await.unwrap().seq);
            }
            seqs
        });
    }
    let mut seqs: Vec<u64> = tasks.join_all().await.into_iter().flatten().collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=640).collect::<Vec<_>>());
    let reader = LedgerReader::open_source(&ledger.source()).await.unwrap();
    assert!(reader.verify().await.unwrap().is_intact());
    assert_eq!(reader.session_count("s3").await.unwrap(), 40);
    ledger.shutdown().await.unwrap();
}

#[tokio::test]
async fn inclusion_and_consistency_proofs_verify_against_the_published_roots() {
    let (_db, pool) = store().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&pool, "gw-1", dir.path()).await;
    let mut roots = Vec::new();
    let mut hashes = Vec::new();
    for chunk in [1u64, 7, 300, 250, 3] {
        let appended = ledger
            .append_batch((0..chunk).map(|n| record("s", n)).collect())
            .await
            .unwrap();
        hashes.extend(appended.iter().map(|a| a.hash));
        roots.push(*ledger.watch_tree().borrow());
    }
    let reader = LedgerReader::open_source(&ledger.source()).await.unwrap();
    for head in &roots {
        assert_eq!(reader.tree_root(head.size).await.unwrap(), head.root);
        for seq in [1, head.size / 2 + 1, head.size] {
            let proof = reader.inclusion_proof(seq, head.size).await.unwrap();
            let leaf = merkle::leaf_hash(&hashes[usize::try_from(seq - 1).unwrap()]);
            merkle::verify_inclusion(seq - 1, head.size, &leaf, &proof, &head.root).unwrap();
        }
    }
    for pair in roots.windows(2) {
        let (old, new) = (pair[0], pair[1]);
        let proof = reader.consistency_proof(old.size, new.size).await.unwrap();
        merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof).unwrap();
    }
    assert!(matches!(
        reader.tree_root(10_000).await,
        Err(LedgerError::BeyondHead { .. })
    ));
    assert!(matches!(
        reader.inclusion_proof(0, 5).await,
        Err(LedgerError::NotInTree { .. })
    ));
    assert!(matches!(
        reader.consistency_proof(5, 4).await,
        Err(LedgerError::Shrinks { .. })
    ));
    ledger.shutdown().await.unwrap();
}
