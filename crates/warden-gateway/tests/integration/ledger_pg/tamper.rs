//! A store edited behind the writer's back: `verify` names the first bad record of the chain
//! that was changed, and only that chain.

use sqlx::PgPool;
use warden_audit::{LedgerReader, Problem};

use super::{instance, open, record, store};

/// `gw-1` with 8 records and `gw-2` with 3, writers stopped.
async fn two_chains(pool: &PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let one = open(pool, "gw-1", dir.path()).await;
    let two = open(pool, "gw-2", dir.path()).await;
    for n in 0..8 {
        one.append(record("s", n)).await.unwrap();
    }
    for n in 0..3 {
        two.append(record("s", n)).await.unwrap();
    }
    one.shutdown().await.unwrap();
    two.shutdown().await.unwrap();
}

async fn problem(pool: &PgPool, name: &str) -> Option<Problem> {
    let reader = LedgerReader::open_postgres(pool.clone(), Some(instance(name)))
        .await
        .unwrap();
    reader.verify().await.unwrap().first_problem
}

async fn exec(pool: &PgPool, sql: &'static str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

#[tokio::test]
async fn a_changed_payload_is_found_at_its_record() {
    let (_db, pool) = store().await;
    two_chains(&pool).await;
    exec(
        &pool,
        "UPDATE ledger_records SET payload = '{\"n\":99}' WHERE instance = 'gw-1' AND seq = 4",
    )
    .await;
    assert_eq!(
        problem(&pool, "gw-1").await,
        Some(Problem::Changed { seq: 4 })
    );
    assert_eq!(problem(&pool, "gw-2").await, None);
}

#[tokio::test]
async fn a_deleted_row_is_found_where_it_is_missing() {
    let (_db, pool) = store().await;
    two_chains(&pool).await;
    exec(
        &pool,
        "DELETE FROM ledger_records WHERE instance = 'gw-1' AND seq = 5",
    )
    .await;
    assert_eq!(
        problem(&pool, "gw-1").await,
        Some(Problem::Removed { seq: 5, next: 6 })
    );
}

#[tokio::test]
async fn reordered_rows_are_found_at_the_first_that_moved() {
    let (_db, pool) = store().await;
    two_chains(&pool).await;
    // Records 3 and 6 swap places (their sequence numbers).
    for sql in [
        "UPDATE ledger_records SET seq = 1000 WHERE instance = 'gw-1' AND seq = 3",
        "UPDATE ledger_records SET seq = 3 WHERE instance = 'gw-1' AND seq = 6",
        "UPDATE ledger_records SET seq = 6 WHERE instance = 'gw-1' AND seq = 1000",
    ] {
        exec(&pool, sql).await;
    }
    assert_eq!(
        problem(&pool, "gw-1").await,
        Some(Problem::ChainBroken { seq: 3 })
    );
}

#[tokio::test]
async fn a_row_moved_to_another_instance_is_found_in_both_chains() {
    let (_db, pool) = store().await;
    two_chains(&pool).await;
    // gw-1's record 5 becomes gw-2's record 4: gw-2's chain does not link to it.
    exec(
        &pool,
        "UPDATE ledger_records SET instance = 'gw-2', seq = 4 WHERE instance = 'gw-1' AND seq = 5",
    )
    .await;
    assert_eq!(
        problem(&pool, "gw-1").await,
        Some(Problem::Removed { seq: 5, next: 6 })
    );
    assert_eq!(
        problem(&pool, "gw-2").await,
        Some(Problem::ChainBroken { seq: 4 })
    );
}

#[tokio::test]
async fn a_chain_cut_short_of_its_mark_verifies_but_is_below_it_and_refused_to_the_writer() {
    let (_db, pool) = store().await;
    two_chains(&pool).await;
    exec(
        &pool,
        "DELETE FROM ledger_records WHERE instance = 'gw-1' AND seq > 6",
    )
    .await;
    let reader = LedgerReader::open_postgres(pool.clone(), Some(instance("gw-1")))
        .await
        .unwrap();
    let report = reader.verify().await.unwrap();
    // The chain that is left links; only the mark tells that records were removed.
    assert!(report.is_intact());
    assert_eq!(report.head.map(|h| h.seq), Some(6));
    assert_eq!(reader.mark().await.unwrap(), Some(8));
    // The writer does not continue a truncated chain (it would hide the cut).
    let dir = tempfile::tempdir().unwrap();
    let reopened = super::open_with(
        &pool,
        "gw-1",
        dir.path(),
        std::sync::Arc::new(warden_core::SystemClock),
        Default::default(),
    )
    .await;
    let err = reopened.unwrap_err().to_string();
    assert!(err.contains("PostgreSQL"), "{err}");
}
