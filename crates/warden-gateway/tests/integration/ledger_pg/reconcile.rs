//! Start-up reconciliation on both stores (the same scenario on a SQLite ledger and on an
//! instance's chain in PostgreSQL): forwarded actions left without a result get exactly one
//! `unknown` result at the next start, a second start adds nothing, provider-side actions of
//! model calls are left alone, and the mark in `gateway_started` moves so that a start reads
//! only what came after the last one. On a fleet, a decide-API action whose report another
//! instance recorded, or whose report still waits in `pending_results`, is not closed here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Value, json};
use warden_audit::{Ledger, LedgerConfig, LedgerReader, NewRecord, RecordKind};
use warden_core::SystemClock;
use warden_gateway::startup::reconcile::{CLOSED_THROUGH, REASON, Reconciled, close_forwarded};

type Open<'a> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Ledger> + 'a>> + 'a>;

fn rec(kind: RecordKind, payload: Value) -> NewRecord {
    NewRecord {
        session: Some("s-1".to_owned()),
        kind,
        payload,
    }
}

/// An action attempted, decided and forwarded (one commit, as the governor does).
async fn forward(ledger: &Ledger, action: &str) {
    ledger
        .append_batch(vec![
            rec(
                RecordKind::ActionAttempted,
                json!({"action": action, "tool": "fs.read"}),
            ),
            rec(RecordKind::ActionDecided, json!({"action": action})),
            rec(
                RecordKind::ActionForwarded,
                json!({"action": action, "tool": "fs.read"}),
            ),
        ])
        .await
        .unwrap();
}

fn result(action: &str) -> NewRecord {
    rec(
        RecordKind::ActionResult,
        json!({"action": action, "status": "ok"}),
    )
}

/// A start: reconcile, then the `gateway_started` the gateway writes with the mark.
async fn start(ledger: &Ledger) -> Reconciled {
    let done = close_forwarded(ledger).await.unwrap();
    ledger
        .append(NewRecord {
            session: None,
            kind: RecordKind::GatewayStarted,
            payload: json!({ (CLOSED_THROUGH): done.through }),
        })
        .await
        .unwrap();
    done
}

/// The results recorded for `action`: (status, reason).
async fn results(ledger: &Ledger, action: &str) -> Vec<(String, Option<String>)> {
    let reader = LedgerReader::open_source(&ledger.source()).await.unwrap();
    let records = reader.range(1, 10_000).await.unwrap();
    reader.close().await;
    records
        .iter()
        .filter(|r| r.kind == RecordKind::ActionResult && r.payload["action"] == action)
        .map(|r| {
            (
                r.payload["status"].as_str().unwrap().to_owned(),
                r.payload["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn scenario(open: Open<'_>) {
    let ledger = open().await;
    forward(&ledger, "a1").await;
    ledger.append(result("a1")).await.unwrap();
    forward(&ledger, "a2").await;
    // A provider-side action of a model call: its outcome is the completion.
    ledger
        .append(rec(
            RecordKind::ActionForwarded,
            json!({"action": "p1", "tool": "web_search", "call": "c1"}),
        ))
        .await
        .unwrap();
    forward(&ledger, "a3").await;
    // A result queued, committed by the shutdown.
    ledger.append_queued(vec![result("a3")]).await.unwrap();
    ledger.shutdown().await.unwrap();
    drop(ledger);

    // First start: a2 is closed, once.
    let ledger = open().await;
    let first = start(&ledger).await;
    assert_eq!((first.from, first.closed), (0, 1), "{first:?}");
    assert_eq!(first.scanned, 6, "{first:?}");
    assert_eq!(results(&ledger, "a1").await, [("ok".to_owned(), None)]);
    assert_eq!(
        results(&ledger, "a2").await,
        [("unknown".to_owned(), Some(REASON.to_owned()))]
    );
    assert_eq!(results(&ledger, "a3").await, [("ok".to_owned(), None)]);
    assert!(results(&ledger, "p1").await.is_empty());
    ledger.shutdown().await.unwrap();
    drop(ledger);

    // Second start: nothing to close, nothing read below the mark.
    let ledger = open().await;
    let second = start(&ledger).await;
    assert_eq!(second.from, first.through);
    assert_eq!((second.scanned, second.closed), (0, 0), "{second:?}");
    assert_eq!(results(&ledger, "a2").await.len(), 1);
    forward(&ledger, "a4").await;
    ledger.shutdown().await.unwrap();
    drop(ledger);

    // Third start: only a4, past the moved mark.
    let ledger = open().await;
    let third = start(&ledger).await;
    assert!(third.from > first.through, "the mark moved: {third:?}");
    assert_eq!((third.scanned, third.closed), (1, 1), "{third:?}");
    assert_eq!(results(&ledger, "a4").await.len(), 1);
    assert_eq!(results(&ledger, "a2").await.len(), 1);
    let reader = LedgerReader::open_source(&ledger.source()).await.unwrap();
    assert!(reader.verify().await.unwrap().is_intact());
    reader.close().await;
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_forwarded_actions_without_a_result_are_closed_once_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    scenario(Box::new(move || {
        let path = path.clone();
        Box::pin(async move {
            Ledger::open(&path, Arc::new(SystemClock), LedgerConfig::default())
                .await
                .unwrap()
        })
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_forwarded_actions_without_a_result_are_closed_once_at_start_up() {
    let (_db, pool) = super::store().await;
    let dir = tempfile::tempdir().unwrap();
    // Another instance's chain in the same store is not this one's to close.
    let other = super::open(&pool, "other", dir.path()).await;
    forward(&other, "b1").await;
    other.shutdown().await.unwrap();
    let (pool2, path) = (pool.clone(), dir.path().to_path_buf());
    scenario(Box::new(move || {
        let (pool, path) = (pool2.clone(), path.clone());
        Box::pin(async move { super::open(&pool, "gw-1", &path).await })
    }))
    .await;
    let other = super::open(&pool, "other", dir.path()).await;
    assert!(results(&other, "b1").await.is_empty());
    other.shutdown().await.unwrap();
}

/// On a fleet, an action allowed on gw-1 is closed elsewhere when its result report reached
/// another instance (the result is in that instance's chain, in the action's session) or when
/// its report still waits in `pending_results` (the report or the deadline sweep closes it):
/// gw-1's start closes neither, and closes the action that nothing else will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_actions_closed_by_another_instance_or_still_awaiting_their_report_are_left_alone()
{
    let (_db, pool) = super::store().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = super::open(&pool, "gw-1", dir.path()).await;
    for action in ["d1", "d2", "d3"] {
        forward(&ledger, action).await;
    }
    ledger.shutdown().await.unwrap();
    drop(ledger);
    // d1's report was taken by `other`, which recorded it in its own chain.
    let other = super::open(&pool, "other", dir.path()).await;
    other.append(result("d1")).await.unwrap();
    // d3's id in another session's result is not d3's result.
    other
        .append(NewRecord {
            session: Some("s-2".to_owned()),
            kind: RecordKind::ActionResult,
            payload: json!({"action": "d3", "status": "ok"}),
        })
        .await
        .unwrap();
    other.shutdown().await.unwrap();
    // d2's report still waits.
    sqlx::query(
        "INSERT INTO pending_results (action, session, instance, tool, args, due) \
         VALUES ('d2', 's-1', 'gw-1', 'fs.read', '{}', now() + interval '1 hour')",
    )
    .execute(&pool)
    .await
    .unwrap();

    let ledger = super::open(&pool, "gw-1", dir.path()).await;
    let done = start(&ledger).await;
    assert_eq!(done.closed, 1, "{done:?}");
    assert!(results(&ledger, "d1").await.is_empty());
    assert!(results(&ledger, "d2").await.is_empty());
    assert_eq!(
        results(&ledger, "d3").await,
        [("unknown".to_owned(), Some(REASON.to_owned()))]
    );
    ledger.shutdown().await.unwrap();
}
