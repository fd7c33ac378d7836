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
