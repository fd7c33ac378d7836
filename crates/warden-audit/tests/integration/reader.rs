//! The reader's queries: many at once over its few connections, and what a closed reader does.

use warden_audit::{LedgerError, LedgerReader};

use super::support::{fill, open};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_queries_at_once_all_answer() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 20).await;
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let tasks: Vec<_> = (0..64u64)
        .map(|i| {
            let reader = reader.clone();
            tokio::spawn(async move {
                match i % 3 {
                    0 => reader.tail(5).await.unwrap().len() as u64,
                    1 => reader.get(i % 20 + 1).await.unwrap().unwrap().seq,
                    _ => reader.range(i % 20 + 1, 100).await.unwrap().len() as u64,
                }
            })
        })
        .collect();
    for (i, t) in (0..64u64).zip(tasks) {
        let expected = match i % 3 {
            0 => 5,
            1 => i % 20 + 1,
            _ => 20 - i % 20,
        };
        assert_eq!(t.await.unwrap(), expected, "query {i}");
    }
    reader.close().await;
    ledger.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_closed_reader_refuses_queries_but_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, 3).await;
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let clone = reader.clone();
    assert_eq!(reader.tail(10).await.unwrap().len(), 3);
    reader.close().await;
    for err in [
        clone.tail(10).await.unwrap_err(),
        clone.get(1).await.unwrap_err(),
        reader.range(1, 10).await.unwrap_err(),
    ] {
        assert!(matches!(err, LedgerError::Read(_)), "{err:?}");
    }
    assert_eq!(reader.verify().await.unwrap().records, 3);
    reader.close().await;
    ledger.shutdown().await.unwrap();
}

/// Callers share a reader across tasks and threads, as they did before the reader had a pool
/// of its own.
#[test]
fn a_reader_is_send_sync_clone_and_debug() {
    fn shareable<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    shareable::<LedgerReader>();
}

/// A session's records of some kinds, within its last records before a seq: newest first,
/// only that session's, only those kinds, never past the window.
#[tokio::test]
async fn a_sessions_records_of_some_kinds_within_a_window() {
    use warden_audit::{NewRecord, RecordKind};
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    // Session `a`: seq 1..=30, every third an intent; session `b` interleaved from 31.
    let mut batch = Vec::new();
    for i in 1..=30u64 {
        let kind = if i % 3 == 0 {
            RecordKind::ModelIntent
        } else {
            RecordKind::ActionDecided
        };
        batch.push(NewRecord::new(
            Some("a"),
            kind,
            serde_json::json!({ "i": i }),
        ));
        batch.push(NewRecord::new(
            Some("b"),
            RecordKind::ModelIntent,
            serde_json::json!({}),
        ));
    }
    ledger.append_batch(batch).await.unwrap();
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let seqs = |v: Vec<warden_audit::Record>| {
        v.iter()
            .map(|r| r.payload["i"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    // Session `a`'s records are seq 1, 3, 5, …: i = (seq + 1) / 2.
    let all = reader
        .session_kinds_before("a", &["model_intent"], u64::MAX, 1000, 100)
        .await
        .unwrap();
    assert_eq!(seqs(all), vec![30, 27, 24, 21, 18, 15, 12, 9, 6, 3]);
    // Within the last 7 records of `a` before its 20th (seq 39): i = 13..=19.
    let window = reader
        .session_kinds_before("a", &["model_intent"], 39, 7, 100)
        .await
        .unwrap();
    assert_eq!(seqs(window), vec![18, 15]);
    let limited = reader
        .session_kinds_before("a", &["model_intent", "action_decided"], 39, 7, 3)
        .await
        .unwrap();
    assert_eq!(seqs(limited), vec![19, 18, 17]);
    assert!(
        reader
            .session_kinds_before("a", &[], 39, 7, 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        reader
            .session_kinds_before("a", &["model_intent"], 39, 0, 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        reader
            .session_kinds_before("c", &["model_intent"], 99, 9, 3)
            .await
            .unwrap()
            .is_empty()
    );
    reader.close().await;
    ledger.shutdown().await.unwrap();
}
