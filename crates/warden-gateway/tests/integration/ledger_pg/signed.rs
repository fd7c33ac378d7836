//! Signed checkpoints per instance, through the library: each instance's writer appends
//! checkpoints of its own tree head (as the gateway's signer does), and
//! `LedgerReader::verify_signed` checks each chain against its own key in the shared store.

use std::sync::Arc;

use warden_audit::checkpoint::{Checkpoint, SigningKey, default_origin};
use warden_audit::signed::{Finding, OpenNote};
use warden_audit::{Ledger, LedgerError, LedgerReader, NewRecord, RecordKind};

use super::{instance, open, record, store};

/// Signs `ledger`'s published tree head with `key` and appends it, as the gateway's signer.
async fn sign(ledger: &Ledger, key: &SigningKey) {
    let head = *ledger.watch_tree().borrow();
    let checkpoint = Checkpoint {
        origin: default_origin(ledger.id()),
        size: head.size,
        root: head.root,
        time: None,
    };
    let note = key.sign(&checkpoint);
    ledger
        .append(NewRecord {
            session: None,
            kind: RecordKind::CheckpointSigned,
            payload: checkpoint.record_payload(&note),
        })
        .await
        .unwrap();
}

async fn report(pool: &sqlx::PgPool, name: &str, key: &SigningKey) -> warden_audit::signed::Report {
    let key: Arc<dyn OpenNote + Send + Sync> = Arc::new(key.verifier());
    LedgerReader::open_postgres(pool.clone(), Some(instance(name)))
        .await
        .unwrap()
        .verify_signed(key, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_chain_verifies_against_its_own_checkpoints_and_key_only() {
    let (_db, pool) = store().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        SigningKey::generate("gw-1").unwrap(),
        SigningKey::generate("gw-2").unwrap(),
    ];
    for (name, key) in ["gw-1", "gw-2"].iter().zip(&keys) {
        let ledger = open(&pool, name, dir.path()).await;
        for round in 0..3 {
            for i in 0..5 {
                ledger.append(record("s", round * 10 + i)).await.unwrap();
            }
            sign(&ledger, key).await;
        }
        ledger.shutdown().await.unwrap();
    }
    for (name, key) in ["gw-1", "gw-2"].iter().zip(&keys) {
        let r = report(&pool, name, key).await;
        assert_eq!(r.finding, None, "{name}: {r:?}");
        assert_eq!((r.records, r.checkpoints, r.signed), (18, 3, 17), "{name}");
    }
    // The other instance's key opens none of a chain's checkpoints.
    let crossed = report(&pool, "gw-2", &keys[0]).await;
    assert!(
        matches!(
            crossed.finding,
            Some(Finding::BadCheckpoint { seq: Some(6), .. })
        ),
        "{crossed:?}"
    );
    // The merged reader has no one chain to check.
    let merged = LedgerReader::open_postgres(pool.clone(), None)
        .await
        .unwrap();
    let key: Arc<dyn OpenNote + Send + Sync> = Arc::new(keys[0].verifier());
    assert!(matches!(
        merged.verify_signed(key, None).await,
        Err(LedgerError::Unsupported(_))
    ));

    // A record of gw-1 changed: found at that record; gw-2 is untouched.
    sqlx::query(
        "UPDATE ledger_records SET payload = '{\"i\":99}' WHERE instance = 'gw-1' AND seq = 8",
    )
    .execute(&pool)
    .await
    .unwrap();
    let changed = report(&pool, "gw-1", &keys[0]).await;
    assert_eq!(
        changed.finding,
        Some(Finding::Changed { seq: 8 }),
        "{changed:?}"
    );
    assert_eq!(report(&pool, "gw-2", &keys[1]).await.finding, None);
}
