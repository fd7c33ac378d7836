//! The WAL's checkpoints: run by the checkpointer, off the commit path; run by the writer
//! itself only when the WAL reaches its bound; the ledger whole and verifiable either way.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use warden_audit::{CommitObserver, Ledger, LedgerConfig, NewRecord, RecordKind};
use warden_core::SystemClock;

use super::support::verify;

/// Counts the checkpoints it is told of, by where they ran.
#[derive(Default)]
struct Checkpoints {
    off_path: AtomicU64,
    on_path: AtomicU64,
    commits: AtomicU64,
}

impl CommitObserver for Checkpoints {
    fn committed(&self, _records: usize, _took: Duration, committed: bool) {
        assert!(committed);
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    fn checkpointed(&self, _took: Duration, on_commit_path: bool) {
        let count = if on_commit_path {
            &self.on_path
        } else {
            &self.off_path
        };
        count.fetch_add(1, Ordering::Relaxed);
    }
}

async fn open(dir: &Path, seen: &Arc<Checkpoints>) -> Ledger {
    let observer: Arc<dyn CommitObserver> = seen.clone();
    Ledger::open_observed(
        dir,
        Arc::new(SystemClock),
        LedgerConfig::default(),
        Some(observer),
    )
    .await
    .unwrap()
}

/// `batches` commits of 100 records of about 2 KiB each (about 115 WAL pages a commit), with
/// `pause` after each (an open loop leaves the writer idle between commits; a closed one
/// never does).
async fn write(ledger: &Ledger, batches: u64, pause: Duration) {
    for b in 0..batches {
        let records = (0..100)
            .map(|i| NewRecord {
                session: Some(format!("s-{}", i % 7)),
                kind: RecordKind::ActionResult,
                payload: json!({ "batch": b, "i": i, "content": "x".repeat(2000) }),
            })
            .collect();
        ledger.append_batch(records).await.unwrap();
        tokio::time::sleep(pause).await;
    }
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

#[tokio::test]
async fn the_checkpointer_copies_the_wal_off_the_commit_path() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Checkpoints::default());
    let ledger = open(dir.path(), &seen).await;
    let db = dir.path().join("ledger.db");
    let before = size(&db);
    // About 6,900 pages: six checkpoints' worth, and below the bound even if the WAL never
    // started again, at a pace that leaves the writer idle between commits, as an open loop
    // does.
    write(&ledger, 60, Duration::from_millis(5)).await;
    // The asks at 1,000 pages and on: at least 4,000 pages are copied into the database file,
    // however slowly this machine runs the checkpointer.
    until("4,000 pages in ledger.db", || {
        size(&db) > before + 4_000 * 4_096
    })
    .await;
    assert!(seen.off_path.load(Ordering::Relaxed) >= 2);
    assert_eq!(seen.on_path.load(Ordering::Relaxed), 0);
    ledger.shutdown().await.unwrap();
    let report = verify(dir.path()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 6_000);
}

#[tokio::test]
async fn the_wal_starts_again_from_its_beginning_when_the_writer_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Checkpoints::default());
    let ledger = open(dir.path(), &seen).await;
    let wal = dir.path().join("ledger.db-wal");
    // About 2,300 pages at an open loop's pace (the checkpointer is asked at 1,000), then
    // 4,600 more with pauses longer than a checkpoint: a commit begins with the WAL all
    // copied, and the WAL starts again from its beginning. The file keeps its length (SQLite
    // writes over it), so it stays at the longest the WAL ever was (about 2,100 pages here):
    // far shorter than everything written (about 6,900 pages, 28 MB), which it would be had
    // the WAL never started again.
    write(&ledger, 20, Duration::from_millis(5)).await;
    write(&ledger, 40, Duration::from_millis(100)).await;
    let longest = size(&wal);
    assert!(
        longest < 3_000 * (4_096 + 24),
        "the WAL is {longest} bytes long: it did not start again"
    );
    assert_eq!(seen.on_path.load(Ordering::Relaxed), 0);
    ledger.shutdown().await.unwrap();
    let report = verify(dir.path()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 6_000);
}

#[tokio::test]
async fn a_reader_holding_an_old_snapshot_makes_the_writer_checkpoint_at_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Checkpoints::default());
    let ledger = open(dir.path(), &seen).await;
    write(&ledger, 1, Duration::ZERO).await;
    // A reader in a read transaction: no checkpoint can copy past its snapshot, so the WAL
    // grows to the bound and the writer checkpoints itself.
    let pinned = rusqlite::Connection::open_with_flags(
        dir.path().join("ledger.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let count = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .unwrap()
    };
    pinned.execute_batch("BEGIN").unwrap();
    assert_eq!(count(&pinned), 100);
    write(&ledger, 160, Duration::ZERO).await;
    assert!(seen.on_path.load(Ordering::Relaxed) >= 1);
    // The reader still reads its snapshot.
    assert_eq!(count(&pinned), 100);
    pinned.execute_batch("COMMIT").unwrap();
    drop(pinned);
    // Released: the next checkpoints copy everything, and the writer stops running them.
    let on_path = seen.on_path.load(Ordering::Relaxed);
    write(&ledger, 20, Duration::from_millis(5)).await;
    ledger.shutdown().await.unwrap();
    assert!(seen.on_path.load(Ordering::Relaxed) <= on_path + 1);
    let report = verify(dir.path()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 18_100);
}

#[tokio::test]
async fn a_writer_never_idle_checkpoints_itself_only_at_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Checkpoints::default());
    let ledger = open(dir.path(), &seen).await;
    // Back to back: the checkpointer copies, but the WAL starts again from its beginning only
    // when a commit begins with everything copied, so it may grow to the bound, where the
    // writer checkpoints itself: at most once per 8,000 pages (SQLite's own: once per 1,000).
    write(&ledger, 300, Duration::ZERO).await;
    let commits = seen.commits.load(Ordering::Relaxed);
    let on_path = seen.on_path.load(Ordering::Relaxed);
    assert!(
        on_path <= commits * 100 / 8_000 + 1,
        "{on_path} checkpoints on the commit path in {commits} commits"
    );
    ledger.shutdown().await.unwrap();
    assert!(seen.off_path.load(Ordering::Relaxed) >= 1);
    let report = verify(dir.path()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 30_000);
}
