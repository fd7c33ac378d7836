//! The Merkle tree the writer keeps beside the chain: its head after every commit is the root
//! of the records' leaves recomputed from the stored records; the reader's roots and proofs
//! verify; it survives reopening, failed commits, back-fill of an older ledger and pruning.

use std::path::Path;

use serde_json::json;
use warden_audit::merkle::{self, Hash, MemoryLeaves};
use warden_audit::{Ledger, LedgerConfig, LedgerError, LedgerReader, NewRecord, RecordKind};

use super::support::{exec, fill, open, open_with, raw, record};

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Every record's leaf hash, read back from the database in `seq` order.
async fn stored_leaves(dir: &Path) -> Vec<Hash> {
    let reader = LedgerReader::open(dir).await.unwrap();
    let mut leaves = Vec::new();
    loop {
        let page = reader.range(leaves.len() as u64 + 1, 10_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        for r in page {
            assert_eq!(r.seq, leaves.len() as u64 + 1);
            leaves.push(merkle::leaf_hash(&r.hash));
        }
    }
    reader.close().await;
    leaves
}

fn root_of(leaves: &[Hash]) -> Hash {
    let Ok(root) = merkle::root_of(&MemoryLeaves(leaves.to_vec()), leaves.len() as u64);
    root
}

/// The published tree head is the root of exactly the committed records.
fn assert_head(ledger: &Ledger, leaves: &[Hash]) {
    let head = *ledger.watch_tree().borrow();
    assert_eq!(head.size, leaves.len() as u64);
    assert_eq!(head.size, *ledger.watch_head().borrow());
    assert_eq!(head.root, root_of(leaves), "tree head at {}", head.size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_head_is_the_root_of_the_stored_records_across_the_stored_levels() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    assert_head(&ledger, &[]);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut leaves: Vec<Hash> = Vec::new();
    // Singles and batches, landing on and crossing 256, 512 and 65536.
    let targets = [
        1u64, 2, 255, 256, 257, 511, 512, 513, 1000, 65_535, 65_536, 65_537, 66_000,
    ];
    let mut checked = 0;
    for target in targets {
        while (leaves.len() as u64) < target {
            let left = target - leaves.len() as u64;
            let n = if rng.below(3) == 0 {
                1
            } else {
                1 + rng.below(left.min(4_000))
            };
            let n = n.min(left);
            let base = leaves.len() as u64;
            let appended = if n == 1 {
                vec![ledger.append(record(base)).await.unwrap()]
            } else {
                ledger
                    .append_batch((0..n).map(|i| record(base + i)).collect())
                    .await
                    .unwrap()
            };
            leaves.extend(appended.iter().map(|a| merkle::leaf_hash(&a.hash)));
            if leaves.len() < 2_000 || rng.below(8) == 0 {
                assert_head(&ledger, &leaves);
                checked += 1;
            }
        }
        assert_head(&ledger, &leaves);
    }
    assert!(checked > 20);
    ledger.shutdown().await.unwrap();
    assert_eq!(stored_leaves(dir.path()).await, leaves);

    // The reader's roots and proofs, from the stored nodes, for random sizes.
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let n = leaves.len() as u64;
    let mut sizes = vec![1, 2, 255, 256, 257, 512, 65_536, 65_537, n];
    sizes.extend((0..10).map(|_| 1 + rng.below(n)));
    for &size in &sizes {
        let root = root_of(&leaves[..size as usize]);
        assert_eq!(
            reader.tree_root(size).await.unwrap(),
            root,
            "root of {size}"
        );
        for seq in [1, size, 1 + rng.below(size)] {
            let proof = reader.inclusion_proof(seq, size).await.unwrap();
            let leaf = leaves[seq as usize - 1];
            merkle::verify_inclusion(seq - 1, size, &leaf, &proof, &root)
                .unwrap_or_else(|e| panic!("inclusion of {seq} in {size}: {e}"));
            // Another record's leaf does not verify with it.
            let other = leaves[(seq as usize) % size as usize];
            if size > 1 {
                assert!(merkle::verify_inclusion(seq - 1, size, &other, &proof, &root).is_err());
            }
        }
        let old = 1 + rng.below(size);
        let old_root = root_of(&leaves[..old as usize]);
        let proof = reader.consistency_proof(old, size).await.unwrap();
        merkle::verify_consistency(old, size, &old_root, &root, &proof)
            .unwrap_or_else(|e| panic!("consistency {old} -> {size}: {e}"));
    }
    reader.close().await;
}

#[tokio::test]
async fn reopening_keeps_the_root_and_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 300).await;
    let (id, head) = (ledger.id().to_owned(), *ledger.watch_tree().borrow());
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().to_string(), id);
    ledger.shutdown().await.unwrap();

    let ledger = open(dir.path()).await;
    assert_eq!(ledger.id(), id);
    assert_eq!(*ledger.watch_tree().borrow(), head);
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    assert_eq!(reader.id().await.unwrap(), id);
    assert_eq!(reader.tree_root(300).await.unwrap(), head.root);
    // And it goes on growing from there.
    fill(&ledger, 300).await;
    ledger.shutdown().await.unwrap();
    let leaves = stored_leaves(dir.path()).await;
    assert_eq!(reader.tree_root(600).await.unwrap(), root_of(&leaves));
    reader.close().await;

    // Another ledger has another id.
    let other = tempfile::tempdir().unwrap();
    let ledger = open(other.path()).await;
    assert_ne!(ledger.id(), id);
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_leaves_the_tree_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open_with(
        dir.path(),
        LedgerConfig {
            max_size_bytes: Some(512 * 1024),
            ..LedgerConfig::default()
        },
    )
    .await;
    fill(&ledger, 250).await;
    // A batch that crosses the 256 boundary and does not fit: nothing of it is kept, and the
    // writer's tree forgets it too.
    let big: Vec<NewRecord> = (0..20)
        .map(|i| NewRecord {
            session: None,
            kind: RecordKind::ActionResult,
            payload: json!({"i": i, "blob": "x".repeat(40_000)}),
        })
        .collect();
    let err = ledger.append_batch(big).await.unwrap_err();
    assert!(matches!(err, LedgerError::Write(_)), "{err:?}");
    assert_eq!(ledger.watch_tree().borrow().size, 250);
    fill(&ledger, 10).await;
    let leaves = stored_leaves(dir.path()).await;
    assert_eq!(leaves.len(), 260);
    assert_head(&ledger, &leaves);

    // A failure exactly when a stored node is written (a trigger on `tree_nodes`).
    fill(&ledger, 251).await; // 511
    exec(
        dir.path(),
        "CREATE TRIGGER refuse_node BEFORE INSERT ON tree_nodes \
         BEGIN SELECT RAISE(ABORT, 'simulated node failure'); END",
    )
    .await;
    let err = ledger.append(record(0)).await.unwrap_err();
    assert!(matches!(err, LedgerError::Write(_)), "{err:?}");
    exec(dir.path(), "DROP TRIGGER refuse_node").await;
    fill(&ledger, 2).await; // 513
    let leaves = stored_leaves(dir.path()).await;
    assert_eq!(leaves.len(), 513);
    assert_head(&ledger, &leaves);
    ledger.shutdown().await.unwrap();
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    assert_eq!(reader.tree_root(513).await.unwrap(), root_of(&leaves));
    assert_eq!(
        reader.tree_root(512).await.unwrap(),
        root_of(&leaves[..512])
    );
    reader.close().await;
}

#[tokio::test]
async fn an_older_ledger_gets_its_tree_and_id_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 700).await;
    let (id, head) = (ledger.id().to_owned(), *ledger.watch_tree().borrow());
    ledger.shutdown().await.unwrap();

    // A ledger as warden wrote it before the tree.
    exec(dir.path(), "DROP TABLE tree_nodes; DROP TABLE meta").await;
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    assert!(matches!(reader.id().await, Err(LedgerError::NoTree)));
    assert!(matches!(
        reader.tree_root(1).await,
        Err(LedgerError::NoTree)
    ));

    let ledger = open(dir.path()).await;
    assert_eq!(
        *ledger.watch_tree().borrow(),
        head,
        "the back-filled tree has the same root"
    );
    assert_ne!(ledger.id(), id, "a new id");
    assert_eq!(reader.id().await.unwrap(), ledger.id());
    assert_eq!(reader.tree_root(700).await.unwrap(), head.root);
    let nodes: i64 = raw(dir.path())
        .query_row("SELECT count(*) FROM tree_nodes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(nodes, 2 + 1, "two subtrees of 256, one of 512");
    fill(&ledger, 1).await;
    ledger.shutdown().await.unwrap();

    // Records written meanwhile by a warden without the tree (its nodes missing): rebuilt.
    exec(dir.path(), "DELETE FROM tree_nodes WHERE level = 9").await;
    assert!(matches!(
        reader.inclusion_proof(600, 700).await,
        Err(LedgerError::TreeNode { level: 9, index: 0 })
    ));
    let ledger = open(dir.path()).await;
    let leaves = stored_leaves(dir.path()).await;
    assert_head(&ledger, &leaves);
    assert!(reader.inclusion_proof(600, 700).await.is_ok());
    ledger.shutdown().await.unwrap();
    reader.close().await;
}

#[tokio::test]
async fn out_of_range_and_pruned_requests_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 600).await;
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    assert!(matches!(
        reader.tree_root(0).await,
        Err(LedgerError::EmptyTree)
    ));
    assert!(matches!(
        reader.tree_root(601).await,
        Err(LedgerError::BeyondHead {
            size: 601,
            head: 600
        })
    ));
    assert!(matches!(
        reader.inclusion_proof(0, 10).await,
        Err(LedgerError::NotInTree { seq: 0, size: 10 })
    ));
    assert!(matches!(
        reader.inclusion_proof(11, 10).await,
        Err(LedgerError::NotInTree { seq: 11, size: 10 })
    ));
    assert!(matches!(
        reader.inclusion_proof(1, 601).await,
        Err(LedgerError::BeyondHead { .. })
    ));
    assert!(matches!(
        reader.consistency_proof(0, 5).await,
        Err(LedgerError::EmptyTree)
    ));
    assert!(matches!(
        reader.consistency_proof(6, 5).await,
        Err(LedgerError::Shrinks { old: 6, new: 5 })
    ));
    assert_eq!(
        reader.consistency_proof(5, 5).await.unwrap(),
        Vec::<Hash>::new()
    );
    // The largest numbers a caller can pass are refused like any other.
    assert!(matches!(
        reader.tree_root(u64::MAX).await,
        Err(LedgerError::BeyondHead {
            size: u64::MAX,
            head: 600
        })
    ));
    assert!(matches!(
        reader.inclusion_proof(u64::MAX, 600).await,
        Err(LedgerError::NotInTree { .. })
    ));
    assert!(matches!(
        reader.consistency_proof(1, u64::MAX).await,
        Err(LedgerError::BeyondHead { .. })
    ));
    // A stored node that is not a hash is a missing node (not a panic, not a short proof),
    // and the writer's next open rebuilds it.
    exec(
        dir.path(),
        "UPDATE tree_nodes SET hash = x'00' WHERE level = 9; \
         UPDATE tree_nodes SET hash = x'01' WHERE level = 8 AND idx = 0",
    )
    .await;
    assert!(matches!(
        reader.tree_root(600).await,
        Err(LedgerError::TreeNode { level: 9, index: 0 })
    ));
    ledger.shutdown().await.unwrap();
    let ledger = open(dir.path()).await;
    let leaves = stored_leaves(dir.path()).await;
    assert_head(&ledger, &leaves);
    assert_eq!(reader.tree_root(600).await.unwrap(), root_of(&leaves));
    assert_eq!(
        reader.tree_root(256).await.unwrap(),
        root_of(&leaves[..256])
    );
    for e in [
        LedgerError::EmptyTree,
        LedgerError::BeyondHead {
            size: 601,
            head: 600,
        },
        LedgerError::Pruned { seq: 3 },
    ] {
        let text = e.to_string();
        assert!(!text.ends_with('.') && !text.contains('\n'), "{text}");
    }

    // Records 1..=256 pruned (as `warden audit prune` does): what needs them is refused, what
    // does not still works, and so does the writer.
    let leaves = stored_leaves(dir.path()).await;
    exec(dir.path(), "DELETE FROM records WHERE seq <= 256").await;
    assert!(matches!(
        reader.inclusion_proof(3, 600).await,
        Err(LedgerError::Pruned { seq: 1 })
    ));
    assert!(matches!(
        reader.tree_root(100).await,
        Err(LedgerError::Pruned { seq: 1 })
    ));
    assert_eq!(
        reader.tree_root(256).await.unwrap(),
        root_of(&leaves[..256])
    );
    assert_eq!(reader.tree_root(600).await.unwrap(), root_of(&leaves));
    let proof = reader.inclusion_proof(300, 600).await.unwrap();
    merkle::verify_inclusion(299, 600, &leaves[299], &proof, &root_of(&leaves)).unwrap();
    let proof = reader.consistency_proof(256, 600).await.unwrap();
    merkle::verify_consistency(
        256,
        600,
        &root_of(&leaves[..256]),
        &root_of(&leaves),
        &proof,
    )
    .unwrap();
    ledger.shutdown().await.unwrap();
    let ledger = open(dir.path()).await;
    assert_head(&ledger, &leaves);
    let more = ledger.append(record(0)).await.unwrap();
    let mut all = leaves.clone();
    all.push(merkle::leaf_hash(&more.hash));
    assert_head(&ledger, &all);
    ledger.shutdown().await.unwrap();

    // A gap inside the kept records is not called pruned.
    exec(dir.path(), "DELETE FROM records WHERE seq = 400").await;
    let err = reader.inclusion_proof(401, 450).await.unwrap_err();
    assert!(
        matches!(err, LedgerError::Malformed { seq: 400, .. }),
        "{err:?}"
    );
    reader.close().await;
}
