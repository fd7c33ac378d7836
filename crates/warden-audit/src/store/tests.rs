//! The verify scan in parts gives the report of a single pass, for intact and tampered
//! ledgers, whatever the seams.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use warden_core::SystemClock;

use super::scan::VerifyReport;
use super::scan::verify_in_parts;
use super::{Ledger, LedgerConfig, NewRecord};
use crate::chain::{Problem, RecordKind};

async fn ledger(dir: &Path, n: u64) {
    let ledger = Ledger::open(dir, Arc::new(SystemClock), LedgerConfig::default())
        .await
        .unwrap();
    let records = (0..n)
        .map(|i| NewRecord {
            session: (i % 2 == 0).then(|| format!("s-{i}")),
            kind: RecordKind::ActionDecided,
            payload: json!({"i": i}),
        })
        .collect();
    ledger.append_batch(records).await.unwrap();
    ledger.shutdown().await.unwrap();
}

fn tamper(dir: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join(super::DB_FILE)).unwrap();
    conn.execute_batch(sql).unwrap();
}

/// Every way of cutting 30 records into parts agrees with the single pass.
fn all_splits_agree(dir: &Path) -> VerifyReport {
    let single = verify_in_parts(&dir.join(super::DB_FILE), 1, u64::MAX).unwrap();
    for parts in 2..=8 {
        for min_part in [1, 2, 3, 7] {
            let split = verify_in_parts(&dir.join(super::DB_FILE), parts, min_part).unwrap();
            assert_eq!(split, single, "{parts} parts of at least {min_part}");
        }
    }
    single
}

#[tokio::test]
async fn parts_agree_with_a_single_pass() {
    let cases: &[(&str, Option<Problem>)] = &[
        ("", None),
        ("DELETE FROM records WHERE seq = 30", None),
        (
            "UPDATE records SET payload = '{}' WHERE seq = 1",
            Some(Problem::Changed { seq: 1 }),
        ),
        (
            "DELETE FROM records WHERE seq = 1",
            Some(Problem::Removed { seq: 1, next: 2 }),
        ),
        // Around the seams of every split: 8..=16.
        (
            "DELETE FROM records WHERE seq IN (11, 12)",
            Some(Problem::Removed { seq: 11, next: 13 }),
        ),
        (
            "UPDATE records SET payload = '{}' WHERE seq = 11",
            Some(Problem::Changed { seq: 11 }),
        ),
        (
            "UPDATE records SET prev_hash = zeroblob(32) WHERE seq = 16",
            Some(Problem::ChainBroken { seq: 16 }),
        ),
        (
            "UPDATE records SET prev_hash = x'00' WHERE seq = 9",
            Some(Problem::ChainBroken { seq: 9 }),
        ),
        (
            "UPDATE records SET seq = -8 WHERE seq = 8; UPDATE records SET seq = 8 WHERE seq = 9; \
             UPDATE records SET seq = 9 WHERE seq = -8",
            Some(Problem::ChainBroken { seq: 8 }),
        ),
        (
            "UPDATE records SET seq = 0 WHERE seq = 13",
            None, // checked below: malformed, reported first
        ),
        (
            "UPDATE records SET hash = zeroblob(32) WHERE seq = 14; \
             UPDATE records SET payload = '{}' WHERE seq = 20",
            Some(Problem::Changed { seq: 14 }),
        ),
    ];
    for (sql, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        ledger(dir.path(), 30).await;
        if !sql.is_empty() {
            tamper(dir.path(), sql);
        }
        let report = all_splits_agree(dir.path());
        if sql.contains("seq = 0") {
            assert!(
                matches!(
                    report.first_problem,
                    Some(Problem::Malformed { seq: 0, .. })
                ),
                "{report:?}"
            );
        } else {
            assert_eq!(report.first_problem, *expected, "{sql}");
        }
    }
}

/// Counts the commits the writer reports.
#[derive(Default)]
struct Commits(std::sync::Mutex<Vec<(usize, bool)>>);

impl super::CommitObserver for Commits {
    fn committed(&self, records: usize, _took: std::time::Duration, committed: bool) {
        self.0.lock().unwrap().push((records, committed));
    }
}

/// The committed-head watch starts at the ledger's last record, moves with each commit (by any
/// handle) before the appender hears of it, and the commit observer sees every commit.
#[tokio::test]
async fn the_head_watch_follows_the_commits() {
    let dir = tempfile::tempdir().unwrap();
    ledger(dir.path(), 3).await;
    let commits = Arc::new(Commits::default());
    let ledger = Ledger::open_observed(
        dir.path(),
        Arc::new(SystemClock),
        LedgerConfig::default(),
        Some(commits.clone()),
    )
    .await
    .unwrap();
    let mut head = ledger.watch_head();
    assert_eq!(*head.borrow_and_update(), 3);
    let appended = ledger
        .clone()
        .append(NewRecord {
            session: None,
            kind: RecordKind::ActionDecided,
            payload: json!({}),
        })
        .await
        .unwrap();
    assert!(head.has_changed().unwrap());
    assert_eq!(*head.borrow_and_update(), appended.seq);
    assert_eq!(appended.seq, 4);
    assert_eq!(ledger.queue_depth(), 0);
    assert_eq!(*commits.0.lock().unwrap(), vec![(1, true)]);
    ledger.shutdown().await.unwrap();
    // The writer is gone: a follower learns that the ledger closed.
    assert!(head.changed().await.is_err());
}
