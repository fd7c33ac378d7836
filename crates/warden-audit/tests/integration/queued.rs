//! Appends that do not wait for their commit ([`Ledger::append_queued`]): they commit with the
//! next group, in queue order; once a later append commits they have committed; a failed
//! commit of theirs is reported and retried before anything queued after them, never
//! silently dropped or overtaken.

use std::time::Duration;

use serde_json::json;
use warden_audit::{Ledger, LedgerError, LedgerReader, NewRecord, RecordKind};

use super::support::{exec, fill, open, record, verify};

const REFUSE: &str = "CREATE TRIGGER refuse BEFORE INSERT ON records \
     BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END";

fn result(i: u64) -> NewRecord {
    NewRecord {
        session: Some("s".to_owned()),
        kind: RecordKind::ActionResult,
        payload: json!({"queued": i}),
    }
}

/// The `seq` of the record whose payload has `queued: i`, if it is stored.
async fn seq_of(reader: &LedgerReader, i: u64) -> Option<u64> {
    reader
        .range(1, 10_000)
        .await
        .unwrap()
        .iter()
        .find(|r| r.payload["queued"].as_u64() == Some(i))
        .map(|r| r.seq)
}

/// Waits (bounded) until the ledger reports a failed append.
async fn until_not_accepting(ledger: &Ledger) {
    for _ in 0..500 {
        if !ledger.is_accepting() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the failed queued append was never reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_commit_implies_the_queued_appends_before_it_committed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    // Several tasks, each queueing results and then waiting on an append: when its waiting
    // append returns, every result it queued before is stored, below it.
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for i in 0..25u64 {
                    let id = t * 1000 + i;
                    ledger.append_queued(vec![result(id)]).await.unwrap();
                    let after = ledger.append(record(id)).await.unwrap();
                    seen.push((id, after.seq));
                }
                seen
            })
        })
        .collect();
    for t in tasks {
        for (id, after) in t.await.unwrap() {
            let queued = seq_of(&reader, id).await;
            assert!(
                queued.is_some_and(|q| q < after),
                "queued {id} at {queued:?}, the append after it at {after}"
            );
        }
    }
    ledger.shutdown().await.unwrap();
    let report = verify(dir.path()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 400);
}

#[tokio::test]
async fn queued_appends_are_committed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    for i in 0..100 {
        ledger.append_queued(vec![result(i)]).await.unwrap();
    }
    ledger.shutdown().await.unwrap();
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let stored = reader.range(1, 1000).await.unwrap();
    let order: Vec<u64> = stored
        .iter()
        .map(|r| r.payload["queued"].as_u64().unwrap())
        .collect();
    assert_eq!(order, (0..100).collect::<Vec<_>>(), "in queue order");
    assert!(reader.verify().await.unwrap().is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_queued_commit_is_reported_and_retried_before_anything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 3).await;
    exec(dir.path(), REFUSE).await;
    ledger.append_queued(vec![result(1)]).await.unwrap();
    until_not_accepting(&ledger).await;
    // Nothing queued after it commits before it: a waiting append fails while it does.
    let err = ledger.append(record(4)).await.unwrap_err();
    assert!(matches!(err, LedgerError::Write(_)), "{err:?}");
    exec(dir.path(), "DROP TRIGGER refuse").await;
    let after = ledger.append(record(5)).await.unwrap();
    assert!(ledger.is_accepting());
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    assert_eq!(
        seq_of(&reader, 1).await,
        Some(4),
        "the queued record was retried first"
    );
    assert_eq!(after.seq, 5);
    ledger.shutdown().await.unwrap();
    let report = verify(dir.path()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_records_that_still_fail_at_shutdown_are_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 2).await;
    exec(dir.path(), REFUSE).await;
    ledger.append_queued(vec![result(1)]).await.unwrap();
    until_not_accepting(&ledger).await;
    // The shutdown finishes (the writer gives the record one last try, then drops it).
    ledger.shutdown().await.unwrap();
    assert!(!ledger.is_accepting());
    let err = ledger.append_queued(vec![result(2)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::Closed), "{err:?}");
    exec(dir.path(), "DROP TRIGGER refuse").await;
    let report = verify(dir.path()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_returns_once_everything_queued_before_it_committed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    for i in 0..50 {
        ledger.append_queued(vec![result(i)]).await.unwrap();
    }
    ledger.flush().await.unwrap();
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    assert_eq!(reader.range(1, 1000).await.unwrap().len(), 50);
    assert_eq!(
        ledger.committed_head(),
        50,
        "the queued commits were acknowledged"
    );
    // Nothing is written for the flush itself; with a queued record failing, it fails.
    exec(dir.path(), REFUSE).await;
    ledger.append_queued(vec![result(50)]).await.unwrap();
    assert!(ledger.flush().await.is_err());
    exec(dir.path(), "DROP TRIGGER refuse").await;
    ledger.flush().await.unwrap();
    assert_eq!(seq_of(&reader, 50).await, Some(51));
    ledger.shutdown().await.unwrap();
    assert_eq!(verify(dir.path()).await.records, 51);
}

/// Counts the writer's group commits and the records in each.
#[derive(Default)]
struct Commits(std::sync::Mutex<Vec<usize>>);

impl warden_audit::CommitObserver for Commits {
    fn committed(&self, records: usize, _took: Duration, committed: bool) {
        if committed {
            self.0.lock().unwrap().push(records);
        }
    }
}

async fn open_counted(dir: &std::path::Path) -> (Ledger, std::sync::Arc<Commits>) {
    let commits = std::sync::Arc::new(Commits::default());
    let ledger = Ledger::open_observed(
        dir,
        std::sync::Arc::new(warden_core::SystemClock),
        warden_audit::LedgerConfig::default(),
        Some(commits.clone()),
    )
    .await
    .unwrap();
    (ledger, commits)
}

#[tokio::test]
async fn a_queued_result_rides_with_the_next_waiting_append_in_one_commit() {
    // The action path's steady state: a result queued, then the next action's attempt
    // appended and waited for. The result lingers for company, so both commit together: one
    // commit (one fsync) per action. Tried a few times: a scheduler pause longer than the
    // linger on a loaded machine commits the result alone, which is allowed, not wrong.
    let dir = tempfile::tempdir().unwrap();
    let (ledger, commits) = open_counted(dir.path()).await;
    let mut together = false;
    for i in 0..5u64 {
        commits.0.lock().unwrap().clear();
        ledger.append_queued(vec![result(i)]).await.unwrap();
        ledger.append(record(i)).await.unwrap();
        let seen = commits.0.lock().unwrap().clone();
        assert_eq!(seen.iter().sum::<usize>(), 2, "both committed: {seen:?}");
        if seen == [2] {
            together = true;
            break;
        }
    }
    assert!(
        together,
        "a queued result never shared the next append's commit"
    );
    ledger.shutdown().await.unwrap();
    assert!(verify(dir.path()).await.is_intact());
}

#[tokio::test]
async fn a_queued_result_alone_is_committed_without_anything_after_it() {
    // Nothing follows (an idle agent): the linger is bounded, the result commits on its own.
    let dir = tempfile::tempdir().unwrap();
    let (ledger, commits) = open_counted(dir.path()).await;
    ledger.append_queued(vec![result(7)]).await.unwrap();
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let mut stored = None;
    for _ in 0..200 {
        stored = seq_of(&reader, 7).await;
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(stored, Some(1), "the lone queued result was committed");
    assert_eq!(*commits.0.lock().unwrap(), vec![1]);
    assert_eq!(ledger.committed_head(), 1);
    ledger.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_flush_ends_the_linger_of_the_queued_results_before_it() {
    // A waiting append behind queued ones ends their linger: a flush behind a queued result
    // returns with the result committed, in one commit with it.
    let dir = tempfile::tempdir().unwrap();
    let (ledger, commits) = open_counted(dir.path()).await;
    ledger.append(record(1)).await.unwrap();
    assert_eq!(*commits.0.lock().unwrap(), vec![1]);
    ledger.append_queued(vec![result(2)]).await.unwrap();
    ledger.flush().await.unwrap();
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    assert_eq!(
        seq_of(&reader, 2).await,
        Some(2),
        "committed before the flush returned"
    );
    assert_eq!(
        *commits.0.lock().unwrap(),
        vec![1, 1],
        "the result and the flush: one commit"
    );
    ledger.shutdown().await.unwrap();
}
