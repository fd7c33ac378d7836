//! The pruned row's frontier, and the store's parallel pass against one pass in order.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::chain::{RecordKind, RecordRef, canonical_json, format_time};
use crate::merkle::{MemoryLeaves, inclusion_proof};
use crate::signed::{Checker, Finding};

proptest! {
    #[test]
    fn the_frontier_a_proof_implies_is_the_tree_of_the_first_leaves(p in 1u64..1500, q_at in any::<proptest::sample::Index>()) {
        let q = q_at.index(p as usize) as u64 + 1;
        let leaves: Vec<_> = (0..p).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let proof = inclusion_proof(&MemoryLeaves(leaves.clone()), q - 1, p).unwrap();
        let mut tree = Frontier::new();
        for leaf in &leaves[..q as usize] {
            tree.push(*leaf, |_, _, _| {});
        }
        let got = frontier_from_proof(q, p, &leaves[q as usize - 1], &proof);
        prop_assert_eq!(got, Some(tree));
    }
}

/// The store's parallel pass (the chain in parts, the tree beside it) names what one pass in
/// order names, whatever the parts, for tamperings on both sides of the seams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parallel_store_pass_agrees_with_one_pass() {
    use crate::checkpoint::{Checkpoint, SigningKey};
    use crate::store::resume::Resume;
    use crate::store::{DB_FILE, verify_signed_in_parts};
    use crate::{Ledger, LedgerConfig, LedgerReader, NewRecord};

    let key = SigningKey::generate("t").unwrap();
    let verifier = key.verifier();
    let tamperings = [
        "",
        r#"UPDATE records SET payload = '{"x":1}' WHERE seq = 37"#,
        "DELETE FROM records WHERE seq = 51",
        "DELETE FROM records WHERE seq > 90",
        "REWRITE 30",
        "UPDATE records SET hash = x'00' WHERE seq = 61",
        "UPDATE records SET seq = -5 WHERE seq = 5",
    ];
    for sql in tamperings {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(
            dir.path(),
            std::sync::Arc::new(warden_core::SystemClock),
            LedgerConfig::default(),
        )
        .await
        .unwrap();
        let mut anchor = String::new();
        for round in 0..4u64 {
            for i in 0..25u64 {
                ledger
                    .append(NewRecord {
                        session: None,
                        kind: RecordKind::ActionAttempted,
                        payload: json!({"round": round, "i": i}),
                    })
                    .await
                    .unwrap();
            }
            let head = *ledger.watch_tree().borrow();
            let cp = Checkpoint {
                origin: "o".to_owned(),
                size: head.size,
                root: head.root,
                time: None,
            };
            anchor = key.sign(&cp);
            ledger
                .append(NewRecord {
                    session: None,
                    kind: RecordKind::CheckpointSigned,
                    payload: cp.record_payload(&anchor),
                })
                .await
                .unwrap();
        }
        ledger.shutdown().await.unwrap();
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        if sql == "REWRITE 30" {
            // Record 30 changed and every hash after it recomputed, as a forger would.
            let reader = LedgerReader::open(dir.path()).await.unwrap();
            let mut all = reader.range(1, 1000).await.unwrap();
            reader.close().await;
            all[29].payload = json!({"forged": true});
            for i in 29..all.len() {
                all[i].prev_hash = all[i - 1].hash;
                all[i].hash = all[i].compute_hash().unwrap();
                conn.execute(
                    "UPDATE records SET payload = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
                    rusqlite::params![
                        all[i].seq as i64,
                        canonical_json(&all[i].payload),
                        all[i].prev_hash.to_vec(),
                        all[i].hash.to_vec()
                    ],
                )
                .unwrap();
            }
        } else if !sql.is_empty() {
            conn.execute_batch(sql).unwrap();
        }
        drop(conn);
        let path = dir.path().join(DB_FILE);
        let one = verify_signed_in_parts(
            &path,
            &verifier,
            Some(&anchor),
            Resume::default(),
            (1, 1_000_000),
        )
        .unwrap();
        if sql == "REWRITE 30" {
            assert_eq!(
                one.finding,
                Some(Finding::Rewritten {
                    from: 26,
                    through: 51,
                    checkpoint_seq: Some(52)
                })
            );
            assert_eq!(one.records, 52);
        }
        for parts in [(2, 10), (3, 7), (8, 1)] {
            let split =
                verify_signed_in_parts(&path, &verifier, Some(&anchor), Resume::default(), parts)
                    .unwrap();
            assert_eq!(split, one, "{sql} {parts:?}");
        }
        // And one pass over the records as the checker reads them (the reader cannot read a
        // row numbered below 1 back).
        if sql.contains("-5") {
            continue;
        }
        let reader = LedgerReader::open(dir.path()).await.unwrap();
        let records = reader.range(0, 1000).await;
        reader.close().await;
        if let Ok(records) = records {
            let mut checker = Checker::new(&verifier, Some(&anchor));
            for r in &records {
                let time = format_time(r.time).unwrap();
                let payload = canonical_json(&r.payload);
                let rf = RecordRef {
                    seq: r.seq,
                    time: &time,
                    session: r.session.as_deref(),
                    kind: r.kind.as_str(),
                    payload: &payload,
                    prev_hash: &r.prev_hash,
                    hash: &r.hash,
                };
                if checker.push(&rf).is_err() {
                    break;
                }
            }
            let fused = checker.finish();
            assert_eq!(fused.finding, one.finding, "{sql}");
            assert_eq!(
                (fused.records, fused.head),
                (one.records, one.head),
                "{sql}"
            );
        }
    }
}
