use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use warden_charter::{BudgetScope, TokenBudget};
use warden_core::SourceLocation;

use super::*;
use crate::sessions::SessionStore;

fn budget(per: BudgetScope, tokens: u64, window: Option<Duration>) -> TokenBudget {
    TokenBudget {
        per,
        tokens,
        window,
        location: SourceLocation {
            file: Arc::from("charter.yaml"),
            line: 1,
            column: 1,
        },
    }
}

async fn setup(budgets: Vec<TokenBudget>) -> (tempfile::TempDir, TokenBudgets, Arc<Session>) {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let sessions = SessionStore::open(&db).await.unwrap();
    let (_, session) = sessions
        .open_session("agent", "alice", "t", Duration::from_secs(3600), now())
        .await
        .unwrap();
    let b = TokenBudgets::open(&db, [("agent".to_owned(), budgets)].into())
        .await
        .unwrap();
    (dir, b, session)
}

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-12-06 12:00:00 UTC)
}

/// Issue 10, point 16: N concurrent calls against a budget that fits one: at most one is
/// admitted. Before the fix a call was only checked (`used < limit`) before it was forwarded
/// and counted after, so every call checked before the first one was counted ran: all N.
#[tokio::test]
async fn issue_10_concurrent_calls_cannot_overrun_a_budget() {
    let (_dir, budgets, session) = setup(vec![budget(BudgetScope::Session, 100, None)]).await;
    let budgets = Arc::new(budgets);
    let mut threads = Vec::new();
    for _ in 0..8 {
        let (b, s) = (budgets.clone(), session.clone());
        threads.push(std::thread::spawn(move || b.reserve(&s, now(), 80)));
    }
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let admitted: Vec<&Reservation> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(admitted.len(), 1, "{results:?}");
    let refused = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(refused.reserved, 80);
    assert!(
        refused.message().contains("reserved by calls in flight"),
        "{}",
        refused.message()
    );
    drop(results);
    // The call ended (its usage counted, its reservation released): the next is admitted as
    // long as some of the budget is left, and refused once it is spent.
    let r = budgets.reserve(&session, now(), 80).unwrap();
    let _ = budgets.count(&session, now(), 60);
    drop(r);
    let r = budgets.reserve(&session, now(), 80).unwrap();
    let _ = budgets.count(&session, now(), 60);
    drop(r);
    let spent = budgets.reserve(&session, now(), 80).unwrap_err();
    assert_eq!((spent.used, spent.reserved), (120, 0));
    assert!(spent.message().contains("is spent"), "{}", spent.message());
}

/// A reservation is released when dropped, whatever the call's end (an error, a cut stream).
#[tokio::test]
async fn a_dropped_reservation_frees_the_budget() {
    let (_dir, budgets, session) = setup(vec![budget(BudgetScope::Agent, 100, None)]).await;
    let first = budgets.reserve(&session, now(), 90).unwrap();
    assert!(budgets.reserve(&session, now(), 90).is_err());
    drop(first);
    assert!(budgets.reserve(&session, now(), 90).is_ok());
}

/// Issue 10, point 15: counters of ended windows do not stay in memory for ever.
#[tokio::test]
async fn issue_10_counters_of_ended_windows_are_pruned() {
    let hour = Duration::from_secs(3600);
    let (_dir, budgets, session) =
        setup(vec![budget(BudgetScope::Principal, 1000, Some(hour))]).await;
    for h in 0..5 {
        let t = now() + time::Duration::hours(h);
        let _ = budgets.count(&session, t, 10);
    }
    let used = budgets.counts.lock().unwrap().used.len();
    assert_eq!(used, 1, "only the current window's counter is kept");
}
