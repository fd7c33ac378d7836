//! Verification against signed checkpoints on real ledger files: every tampering issue 15
//! lists, done to the SQLite file as an attacker with write access would, is named by
//! `signed::verify_ledger` with the right finding; real Ed25519 keys sign real checkpoints.

use std::path::Path;

use serde_json::json;
use warden_audit::chain::{GENESIS_HASH, Record};
use warden_audit::checkpoint::{Checkpoint, SigningKey, VerifierKey, default_origin};
use warden_audit::signed::{self, Finding, Report};
use warden_audit::{Ledger, LedgerReader, NewRecord, RecordKind};

use super::support::{fill, open, raw};

pub(crate) fn key() -> SigningKey {
    SigningKey::generate("warden-test").unwrap()
}

/// Signs the ledger's tree as it is now and appends the `checkpoint_signed` record, as the
/// gateway does; returns the note.
pub(crate) async fn checkpoint(ledger: &Ledger, key: &SigningKey) -> String {
    let head = *ledger.watch_tree().borrow();
    let cp = Checkpoint {
        origin: default_origin(ledger.id()),
        size: head.size,
        root: head.root,
        time: None,
    };
    let note = key.sign(&cp);
    ledger
        .append(NewRecord {
            session: None,
            kind: RecordKind::CheckpointSigned,
            payload: cp.record_payload(&note),
        })
        .await
        .unwrap();
    note
}

/// A closed ledger of 300 records with a checkpoint after every 100 (records 101, 202, 303),
/// and the note of the last one (the anchor an auditor keeps elsewhere).
pub(crate) async fn signed_ledger(key: &SigningKey) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    let mut note = String::new();
    for _ in 0..3 {
        fill(&ledger, 100).await;
        note = checkpoint(&ledger, key).await;
    }
    ledger.shutdown().await.unwrap();
    (dir, note)
}

pub(crate) fn verify(dir: &Path, key: &VerifierKey, anchor: Option<&str>) -> Report {
    signed::verify_ledger(dir, key, anchor).unwrap()
}

fn finding(dir: &Path, key: &SigningKey, anchor: Option<&str>) -> Finding {
    verify(dir, &key.verifier(), anchor)
        .finding
        .expect("a finding")
}

/// Every record, read back.
async fn records(dir: &Path) -> Vec<Record> {
    let reader = LedgerReader::open(dir).await.unwrap();
    let all = reader.range(1, 100_000).await.unwrap();
    reader.close().await;
    all
}

/// Writes `records` over the stored ones (same `seq`): time, session, kind, payload, hashes.
fn overwrite(dir: &Path, records: &[Record]) {
    let conn = raw(dir);
    for r in records {
        conn.execute(
            "UPDATE records SET payload = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
            rusqlite::params![
                r.seq as i64,
                warden_audit::chain::canonical_json(&r.payload),
                r.prev_hash.to_vec(),
                r.hash.to_vec()
            ],
        )
        .unwrap();
    }
}

fn rechain(records: &mut [Record], from: usize) {
    for i in from..records.len() {
        records[i].prev_hash = if i == 0 {
            GENESIS_HASH
        } else {
            records[i - 1].hash
        };
        records[i].hash = records[i].compute_hash().unwrap();
    }
}

#[tokio::test]
async fn an_intact_signed_ledger_verifies_with_and_without_an_anchor() {
    let key = key();
    let (dir, note) = signed_ledger(&key).await;
    let report = verify(dir.path(), &key.verifier(), None);
    assert_eq!(report.finding, None, "{report:?}");
    assert_eq!(
        (report.records, report.checkpoints, report.signed),
        (303, 3, 302)
    );
    let report = verify(dir.path(), &key.verifier(), Some(&note));
    assert_eq!(report.finding, None);
    assert!(report.origin.unwrap().starts_with("warden/ledger/"));
}

#[tokio::test]
async fn an_edited_payload_deleted_or_reordered_record_is_a_chain_problem() {
    let key = key();
    let (dir, note) = signed_ledger(&key).await;
    raw(dir.path())
        .execute_batch(r#"UPDATE records SET payload = '{"tool":"fs.delete"}' WHERE seq = 150"#)
        .unwrap();
    assert_eq!(
        finding(dir.path(), &key, Some(&note)),
        Finding::Changed { seq: 150 }
    );

    let (dir, note) = signed_ledger(&key).await;
    raw(dir.path())
        .execute_batch("DELETE FROM records WHERE seq = 150")
        .unwrap();
    assert_eq!(
        finding(dir.path(), &key, Some(&note)),
        Finding::Removed {
            seq: 150,
            next: 151
        }
    );

    let (dir, note) = signed_ledger(&key).await;
    raw(dir.path())
        .execute_batch(
            "UPDATE records SET seq = -150 WHERE seq = 150; \
             UPDATE records SET seq = 150 WHERE seq = 151; \
             UPDATE records SET seq = 151 WHERE seq = -150;",
        )
        .unwrap();
    assert_eq!(
        finding(dir.path(), &key, Some(&note)),
        Finding::ChainBroken { seq: 150 }
    );
}

#[tokio::test]
async fn a_truncated_tail_an_emptied_ledger_and_a_rollback_are_named() {
    let key = key();
    let (dir, note) = signed_ledger(&key).await;
    raw(dir.path())
        .execute_batch("DELETE FROM records WHERE seq > 250")
        .unwrap();
    assert_eq!(
        finding(dir.path(), &key, Some(&note)),
        Finding::Truncated {
            records: 250,
            checkpoint: 302
        }
    );

    let (dir, note) = signed_ledger(&key).await;
    raw(dir.path())
        .execute_batch("DELETE FROM records")
        .unwrap();
    assert_eq!(
        finding(dir.path(), &key, Some(&note)),
        Finding::Emptied { checkpoint: 302 }
    );

    // Cut back to just after the second checkpoint record: what an older copy looks like.
    let (dir, note) = signed_ledger(&key).await;
    raw(dir.path())
        .execute_batch("DELETE FROM records WHERE seq > 202")
        .unwrap();
    assert_eq!(
        finding(dir.path(), &key, Some(&note)),
        Finding::RolledBack {
            records: 202,
            older: 201,
            checkpoint: 302
        }
    );
}

#[tokio::test]
async fn an_older_copy_put_back_is_a_rollback() {
    let key = key();
    let dir = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 50).await;
    checkpoint(&ledger, &key).await;
    ledger.shutdown().await.unwrap();
    std::fs::copy(dir.path().join("ledger.db"), copy.path().join("ledger.db")).unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 50).await;
    let anchor = checkpoint(&ledger, &key).await;
    ledger.shutdown().await.unwrap();
    for f in ["ledger.db-wal", "ledger.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    std::fs::copy(copy.path().join("ledger.db"), dir.path().join("ledger.db")).unwrap();
    assert_eq!(
        finding(dir.path(), &key, Some(&anchor)),
        Finding::RolledBack {
            records: 51,
            older: 50,
            checkpoint: 101
        }
    );
}

#[tokio::test]
async fn a_recomputed_chain_is_rewritten_from_the_last_checkpoint_that_matched() {
    let key = key();
    let (dir, note) = signed_ledger(&key).await;
    let mut all = records(dir.path()).await;
    all[149].payload = json!({"tool": "fs.read_text_file", "args": {"path": "/innocent"}});
    rechain(&mut all, 149);
    overwrite(dir.path(), &all[149..]);
    // The chain is intact again: only the tree shows it.
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    assert!(reader.verify().await.unwrap().is_intact());
    reader.close().await;
    // Record 101 is the checkpoint of 100 records, record 202 the checkpoint of 201.
    assert_eq!(
        finding(dir.path(), &key, Some(&note)),
        Finding::Rewritten {
            from: 101,
            through: 201,
            checkpoint_seq: Some(202)
        }
    );
    // The whole chain recomputed, from record 1.
    let (dir, note) = signed_ledger(&key).await;
    let mut all = records(dir.path()).await;
    all[0].payload = json!({"rewritten": true});
    rechain(&mut all, 0);
    overwrite(dir.path(), &all);
    assert_eq!(
        finding(dir.path(), &key, Some(&note)),
        Finding::Rewritten {
            from: 1,
            through: 100,
            checkpoint_seq: Some(101)
        }
    );
}

#[tokio::test]
async fn a_forged_record_appended_with_correct_hashes_is_an_unsigned_tail() {
    let key = key();
    let (dir, note) = signed_ledger(&key).await;
    let all = records(dir.path()).await;
    let last = all.last().unwrap();
    let mut forged = Record {
        seq: last.seq + 1,
        time: last.time,
        session: Some("s-1".to_owned()),
        kind: RecordKind::ActionAttempted,
        payload: json!({"tool": "fs.read_text_file", "args": {"path": "/alibi"}}),
        prev_hash: last.hash,
        hash: [0; 32],
    };
    forged.hash = forged.compute_hash().unwrap();
    raw(dir.path())
        .execute(
            "INSERT INTO records (seq, time, session, kind, payload, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                forged.seq as i64,
                warden_audit::chain::format_time(forged.time).unwrap(),
                forged.session,
                forged.kind.as_str(),
                warden_audit::chain::canonical_json(&forged.payload),
                forged.prev_hash.to_vec(),
                forged.hash.to_vec()
            ],
        )
        .unwrap();
    for anchor in [None, Some(note.as_str())] {
        assert_eq!(
            finding(dir.path(), &key, anchor),
            Finding::UnsignedTail {
                from: 304,
                through: 304
            }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_while_the_ledger_is_open_and_appending_is_found() {
    let key = key();
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 40).await;
    checkpoint(&ledger, &key).await;
    let appending = {
        let ledger = ledger.clone();
        tokio::spawn(async move { fill(&ledger, 200).await })
    };
    raw(dir.path())
        .execute_batch(r#"UPDATE records SET payload = '{"edited":1}' WHERE seq = 7"#)
        .unwrap();
    let report = tokio::task::block_in_place(|| verify(dir.path(), &key.verifier(), None));
    assert_eq!(report.finding, Some(Finding::Changed { seq: 7 }));
    appending.await.unwrap();
    checkpoint(&ledger, &key).await;
    assert_eq!(
        tokio::task::block_in_place(|| finding(dir.path(), &key, None)),
        Finding::Changed { seq: 7 }
    );
    ledger.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wrong_public_key_fails() {
    let key = key();
    let other = SigningKey::generate("warden-test").unwrap();
    let (dir, note) = signed_ledger(&key).await;
    assert!(matches!(
        finding(dir.path(), &other, None),
        Finding::BadCheckpoint { seq: Some(101), .. }
    ));
    assert!(matches!(
        finding(dir.path(), &other, Some(&note)),
        Finding::BadCheckpoint { seq: None, .. }
    ));
}

#[tokio::test]
async fn a_checkpoint_record_whose_payload_disagrees_with_its_note_is_bad() {
    let key = key();
    let (dir, note) = signed_ledger(&key).await;
    raw(dir.path())
        .execute_batch(
            "UPDATE records SET payload = json_set(payload, '$.size', 99) WHERE seq = 101",
        )
        .unwrap();
    // The payload change breaks the chain first, so recompute it as an attacker would.
    let mut all = records(dir.path()).await;
    rechain(&mut all, 100);
    overwrite(dir.path(), &all[100..]);
    assert!(matches!(
        finding(dir.path(), &key, Some(&note)),
        Finding::BadCheckpoint { seq: Some(101), reason } if reason.contains("size")
    ));
}

#[tokio::test]
async fn the_parallel_store_pass_finds_what_one_pass_over_an_export_finds() {
    let key = key();
    let (dir, note) = signed_ledger(&key).await;
    let export = tempfile::tempdir().unwrap();
    let all = records(dir.path()).await;
    let text: String = all.iter().map(|r| r.to_json_line() + "\n").collect();
    std::fs::write(export.path().join(signed::export::export_name(1)), text).unwrap();
    let from_store = verify(dir.path(), &key.verifier(), Some(&note));
    let from_export = signed::export::verify(export.path(), &key.verifier(), Some(&note)).unwrap();
    assert_eq!(from_store, from_export);
}
