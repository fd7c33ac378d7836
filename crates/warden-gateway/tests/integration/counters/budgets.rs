//! Token budgets on PostgreSQL: never exceeded across instances.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use warden_charter::{BudgetScope, TokenBudget};
use warden_core::SourceLocation;
use warden_session::{BudgetRefused, Session, SessionStore, StateDb, TokenBudgets};

use super::common::{instances, unreachable};

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-12-06 12:00:00 UTC)
}

fn budgets(tokens: u64) -> std::collections::HashMap<String, Vec<TokenBudget>> {
    [(
        "agent".to_owned(),
        vec![TokenBudget {
            per: BudgetScope::Principal,
            tokens,
            window: Some(Duration::from_secs(3600)),
            location: SourceLocation {
                file: Arc::from("charter.yaml"),
                line: 1,
                column: 1,
            },
        }],
    )]
    .into()
}

/// Sessions of one principal (the budget is per principal, so every session shares it).
async fn sessions(n: usize) -> (tempfile::TempDir, Vec<Arc<Session>>) {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let store = SessionStore::open(&db).await.unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let (_, s) = store
            .open_session("agent", "alice", "t", Duration::from_secs(3600), now())
            .await
            .unwrap();
        out.push(s);
    }
    (dir, out)
}

async fn row(db: &StateDb) -> (i64, i64) {
    sqlx::query_as(
        "SELECT tokens, reserved FROM model_usage WHERE scope = 'principal' AND key = 'alice'",
    )
    .fetch_one(db.postgres().unwrap())
    .await
    .unwrap()
}

/// 36 concurrent calls of 30 tokens on three instances against a budget of 100: exactly 3
/// hold reservations (90), the rest are refused; counted and released in one statement, the
/// budget then admits one last call (some of it left, nothing in flight), and none after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_budgets_are_never_exceeded_across_instances() {
    let (_db, _dir, dbs) = instances(3).await;
    let (_sdir, sessions) = sessions(36).await;
    let mut each = Vec::new();
    for db in &dbs {
        each.push(Arc::new(
            TokenBudgets::open(db, budgets(100)).await.unwrap(),
        ));
    }
    let mut tasks = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let (b, s) = (each[i % 3].clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            (b.reserve_async(&s, now(), 30).await, b, s)
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (Ok(r), b, s) => held.push((r, b, s)),
            (Err(BudgetRefused::Exceeded(e)), ..) => assert_eq!(e.limit, 100),
            (Err(BudgetRefused::Unavailable(e)), ..) => panic!("{e}"),
        }
    }
    assert_eq!(held.len(), 3, "30 + 30 + 30 fit in 100, a fourth does not");
    assert_eq!(row(&dbs[0]).await, (0, 90));
    for (r, b, s) in held {
        let counted = b.count(&s, now(), 30).releasing(Some(r));
        b.persist(counted).await;
    }
    assert_eq!(row(&dbs[1]).await, (90, 0));
    // Nothing in flight and 10 left: one call is admitted (and may cross the limit).
    let r = each[2]
        .reserve_async(&sessions[0], now(), 30)
        .await
        .unwrap();
    assert!(matches!(
        each[0].reserve_async(&sessions[1], now(), 5).await,
        Err(BudgetRefused::Exceeded(_))
    ));
    let counted = each[2].count(&sessions[0], now(), 30).releasing(Some(r));
    each[2].persist(counted).await;
    assert_eq!(row(&dbs[2]).await, (120, 0));
    for b in &each {
        assert!(matches!(
            b.reserve_async(&sessions[3], now(), 1).await,
            Err(BudgetRefused::Exceeded(e)) if e.used == 120
        ));
    }
}

/// A reservation dropped without being counted (a call refused or failed after reserving)
/// is released in the shared database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_reservation_is_released() {
    let (_db, _dir, dbs) = instances(1).await;
    let (_sdir, sessions) = sessions(1).await;
    let b = TokenBudgets::open(&dbs[0], budgets(100)).await.unwrap();
    let r = b.reserve_async(&sessions[0], now(), 40).await.unwrap();
    assert_eq!(row(&dbs[0]).await, (0, 40));
    drop(r);
    b.released().await;
    assert_eq!(row(&dbs[0]).await, (0, 0));
}

/// PostgreSQL unreachable: the call is refused (`store_unavailable` at the proxy), never
/// admitted unmetered.
#[tokio::test]
async fn the_store_down_refuses_the_model_call() {
    let db = unreachable();
    let (_sdir, sessions) = sessions(1).await;
    let b = TokenBudgets::open(&db, budgets(100)).await.unwrap();
    assert!(matches!(
        b.reserve_async(&sessions[0], now(), 1).await,
        Err(BudgetRefused::Unavailable(_))
    ));
}
