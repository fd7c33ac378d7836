//! `store::prune_ledger` on real ledgers: a row built from the reader's proof prunes the ledger
//! in whole chunks, the writer reopens it and goes on, `signed::verify_ledger` resumes from
//! the row; a row that does not fit the ledger is refused and changes nothing.

use warden_audit::merkle;
use warden_audit::signed::{
    self, Finding,
    pruned::{PrunedRow, frontier_from_proof},
};
use warden_audit::store::prune_ledger;
use warden_audit::{LedgerError, LedgerReader};

use super::signed::{checkpoint, key, verify};
use super::support::{fill, open};

/// A closed ledger of 600 records with a checkpoint record after record 600 (of 600), the
/// key, and the `pruned` row for pruning through 512 with that checkpoint.
async fn ready() -> (
    tempfile::TempDir,
    warden_audit::checkpoint::SigningKey,
    PrunedRow,
) {
    let key = key();
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 600).await;
    let note = checkpoint(&ledger, &key).await;
    ledger.shutdown().await.unwrap();
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let proof = reader.inclusion_proof(512, 600).await.unwrap();
    let last = reader.get(512).await.unwrap().unwrap();
    reader.close().await;
    let leaf = merkle::leaf_hash(&last.hash);
    let frontier = frontier_from_proof(512, 600, &leaf, &proof).unwrap();
    let row = PrunedRow {
        through: 512,
        head_hash: last.hash,
        checkpoint: note,
        proof,
        frontier: frontier.nodes().to_vec(),
    };
    (dir, key, row)
}

#[tokio::test]
async fn a_pruned_ledger_verifies_reopens_and_grows() {
    let (dir, key, row) = ready().await;
    let done = prune_ledger(dir.path(), &row, 600, "/archive").unwrap();
    assert_eq!((done.through, done.record), (512, 602));
    let report = verify(dir.path(), &key.verifier(), None);
    assert_eq!(report.finding, None, "{report:?}");
    assert_eq!(report.records, 602 - 512);
    // The plain chain check resumes from the row too.
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let plain = reader.verify().await.unwrap();
    assert!(plain.is_intact(), "{plain:?}");
    assert_eq!(reader.get(512).await.unwrap(), None);
    reader.close().await;
    // The writer reopens it, appends past the next chunk, and signs.
    let ledger = open(dir.path()).await;
    fill(&ledger, 300).await;
    checkpoint(&ledger, &key).await;
    ledger.shutdown().await.unwrap();
    let report = verify(dir.path(), &key.verifier(), None);
    assert_eq!(report.finding, None, "{report:?}");
    assert_eq!(report.signed, 902);
}

#[tokio::test]
async fn a_row_that_does_not_fit_is_refused_and_changes_nothing() {
    let (dir, key, row) = ready().await;
    for bad in [
        PrunedRow {
            through: 500,
            ..row.clone()
        },
        PrunedRow {
            through: 768,
            ..row.clone()
        },
        PrunedRow {
            head_hash: [1; 32],
            ..row.clone()
        },
    ] {
        let err = prune_ledger(dir.path(), &bad, 600, "/archive").unwrap_err();
        assert!(matches!(err, LedgerError::Format { .. }), "{err:?}");
    }
    let report = verify(dir.path(), &key.verifier(), None);
    assert_eq!((report.finding, report.records), (None, 601));
    // Held by a writer: refused as locked.
    let ledger = open(dir.path()).await;
    let err = prune_ledger(dir.path(), &row, 600, "/archive").unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err:?}");
    ledger.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_pruned_row_that_was_tampered_with_is_a_bad_checkpoint() {
    let (dir, key, row) = ready().await;
    prune_ledger(dir.path(), &row, 600, "/archive").unwrap();
    let conn = super::support::raw(dir.path());
    conn.execute_batch("UPDATE pruned SET proof = '[]'")
        .unwrap();
    conn.close().unwrap();
    assert!(matches!(
        signed::verify_ledger(dir.path(), &key.verifier(), None)
            .unwrap()
            .finding,
        Some(Finding::BadCheckpoint { seq: None, .. })
    ));
}
