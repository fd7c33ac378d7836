//! Reading by session and by kind: the pages the console's timelines and lists read, and the
//! indexes behind them (a ledger made before the indexes gets them at the writer's next open).

use serde_json::json;
use warden_audit::{LedgerReader, NewRecord, PageBound, RecordKind};

use super::support::open;

fn of(session: Option<&str>, kind: RecordKind, n: u64) -> NewRecord {
    NewRecord {
        session: session.map(str::to_owned),
        kind,
        payload: json!({ "n": n }),
    }
}

#[tokio::test]
async fn a_session_is_read_a_page_at_a_time_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    // Two sessions interleaved, and records of no session between them.
    for n in 0..30 {
        let session = match n % 3 {
            0 => Some("s-a"),
            1 => Some("s-b"),
            _ => None,
        };
        ledger
            .append(of(session, RecordKind::ActionAttempted, n))
            .await
            .unwrap();
    }
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    assert_eq!(reader.session_count("s-a").await.unwrap(), 10);
    assert_eq!(reader.session_count("nobody").await.unwrap(), 0);

    let first = reader
        .session_page("s-a", PageBound::After(0), 4)
        .await
        .unwrap();
    let seqs: Vec<u64> = first.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 4, 7, 10]);
    assert!(first.iter().all(|r| r.session.as_deref() == Some("s-a")));

    let next = reader
        .session_page("s-a", PageBound::After(10), 4)
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [13, 16, 19, 22]
    );

    // Before: the records just before, still oldest first.
    let before = reader
        .session_page("s-a", PageBound::Before(22), 3)
        .await
        .unwrap();
    assert_eq!(
        before.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [13, 16, 19]
    );

    let past_the_end = reader
        .session_page("s-a", PageBound::After(28), 4)
        .await
        .unwrap();
    assert!(past_the_end.is_empty());
    ledger.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_newest_records_of_some_kinds_come_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    let kinds = [
        RecordKind::ObserverAlert,
        RecordKind::ActionAttempted,
        RecordKind::ControlSet,
    ];
    for n in 0..12 {
        let kind = kinds[usize::try_from(n % 3).unwrap()];
        ledger.append(of(None, kind, n)).await.unwrap();
    }
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let alerts = reader
        .newest_of_kinds(&["observer_alert", "control_set"], None, 5)
        .await
        .unwrap();
    assert_eq!(
        alerts.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [12, 10, 9, 7, 6]
    );
    let older = reader
        .newest_of_kinds(&["observer_alert"], Some(7), 10)
        .await
        .unwrap();
    assert_eq!(older.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 1]);
    assert!(
        reader
            .newest_of_kinds(&[], None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    ledger.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_records_of_some_kinds_in_a_range_are_exactly_a_filter_of_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    let kinds = [
        RecordKind::ActionAttempted,
        RecordKind::ActionDecided,
        RecordKind::ActionForwarded,
        RecordKind::ActionResult,
        RecordKind::ModelCompleted,
        RecordKind::ObserverAlert,
    ];
    for n in 0..60u64 {
        // An uneven pattern, so that pages start and end on every kind.
        let kind = kinds[usize::try_from((n * 7 + n / 5) % 6).unwrap()];
        ledger.append(of(None, kind, n)).await.unwrap();
    }
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let every = reader.range(1, 1000).await.unwrap();
    let asked: [&[&str]; 4] = [
        &["action_decided", "model_completed"],
        &["action_decided"],
        &["observer_alert", "action_attempted", "no_such_kind"],
        &["no_such_kind"],
    ];
    for wanted in asked {
        for (from, through) in [(1, 60), (1, 1), (7, 33), (59, 80), (30, 29), (0, u64::MAX)] {
            for limit in [0, 1, 3, 1000] {
                let got = reader
                    .kinds_in_range(wanted, from, through, limit)
                    .await
                    .unwrap();
                let expected: Vec<u64> = every
                    .iter()
                    .filter(|r| r.seq >= from && r.seq <= through)
                    .filter(|r| wanted.contains(&r.kind.as_str()))
                    .map(|r| r.seq)
                    .take(usize::try_from(limit).unwrap())
                    .collect();
                assert_eq!(
                    got.iter().map(|r| r.seq).collect::<Vec<_>>(),
                    expected,
                    "{wanted:?} {from}..={through} limit {limit}"
                );
                // Whole records, as `range` reads them.
                for r in &got {
                    assert_eq!(Some(r), every.iter().find(|e| e.seq == r.seq));
                }
            }
        }
    }
    assert!(
        reader
            .kinds_in_range(&[], 1, 60, 10)
            .await
            .unwrap()
            .is_empty()
    );
    ledger.shutdown().await.unwrap();
}

/// The names of the ledger's reading indexes, sorted.
fn reading_indexes(conn: &rusqlite::Connection) -> Vec<String> {
    let mut names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND name LIKE 'records_by_%'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_writer_creates_the_reading_indexes_and_the_chain_ignores_them() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    ledger
        .append(of(Some("s"), RecordKind::SessionOpened, 1))
        .await
        .unwrap();
    ledger.shutdown().await.unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    assert_eq!(
        reading_indexes(&conn),
        ["records_by_kind_group", "records_by_session"]
    );
    // A session's page is served by its index, not by a scan of the ledger (the kind index's
    // queries are checked where they are built, in the store's unit tests).
    let query = "SELECT seq FROM records WHERE session = 's' AND seq > 0 ORDER BY seq LIMIT 5";
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
        .unwrap()
        .query_map([], |row| row.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        plan.iter().any(|p| p.contains("records_by_session")),
        "{query}: {plan:?}"
    );
    // A ledger whose indexes were dropped (one made before they existed) gets them back at
    // the writer's next open, and still verifies; the index by kind of earlier versions is
    // dropped there (the grouped one replaces it).
    conn.execute_batch(
        "DROP INDEX records_by_kind_group; DROP INDEX records_by_session; \
         CREATE INDEX records_by_kind ON records(kind, seq);",
    )
    .unwrap();
    drop(conn);
    let ledger = open(dir.path()).await;
    ledger.shutdown().await.unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    assert_eq!(
        reading_indexes(&conn),
        ["records_by_kind_group", "records_by_session"]
    );
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    assert!(reader.verify().await.unwrap().is_intact());
}
