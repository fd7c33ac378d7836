//! The grouped kind index: its SQL and Rust groupings agree, a call's records touch one leaf,
//! and every query `newest_of_kinds` makes is served by the index (never a scan of the
//! ledger) and returns what a filter over every record returns.

use std::sync::Arc;

use serde_json::json;
use warden_core::SystemClock;

use super::reader::{kinds_in_range_sql, newest_of_kinds_sql};
use super::schema::{KIND_GROUP, kind_group};
use super::{Ledger, LedgerConfig, LedgerReader, NewRecord};
use crate::chain::RecordKind;

fn memory_with(kinds: &[&str]) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE records (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL)")
        .unwrap();
    for (i, k) in kinds.iter().enumerate() {
        conn.execute(
            "INSERT INTO records VALUES (?, ?)",
            rusqlite::params![i64::try_from(i).unwrap() + 1, k],
        )
        .unwrap();
    }
    conn
}

#[test]
fn the_sql_grouping_is_the_rust_grouping_for_every_kind() {
    let mut kinds: Vec<&str> = RecordKind::ALL.iter().map(|k| k.as_str()).collect();
    kinds.extend([
        "action",
        "model",
        "",
        "ACTION_RESULT",
        "action_result ",
        "x'); --",
    ]);
    let conn = memory_with(&kinds);
    let mut statement = conn
        .prepare(&format!(
            "SELECT kind, {KIND_GROUP} FROM records ORDER BY seq"
        ))
        .unwrap();
    let rows = statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    let mut grouped = 0;
    for row in rows {
        let (kind, group) = row.unwrap();
        assert_eq!(group, kind_group(&kind), "{kind:?}");
        grouped += usize::from(group != kind);
    }
    // The four kinds of a governed call and the three of a model call are grouped.
    assert_eq!(grouped, 7);
}

async fn ledger_of(dir: &std::path::Path, kinds: &[RecordKind]) {
    let ledger = Ledger::open(dir, Arc::new(SystemClock), LedgerConfig::default())
        .await
        .unwrap();
    for (n, kind) in kinds.iter().enumerate() {
        ledger
            .append(NewRecord {
                session: Some(format!("s-{}", n % 3)),
                kind: *kind,
                payload: json!({ "n": n }),
            })
            .await
            .unwrap();
    }
    ledger.shutdown().await.unwrap();
}

/// A spread of kinds: the call's four, the model's three, and rarer ones among them.
fn spread(n: usize) -> Vec<RecordKind> {
    let cycle = [
        RecordKind::ActionResult,
        RecordKind::ActionAttempted,
        RecordKind::ActionDecided,
        RecordKind::ActionForwarded,
        RecordKind::ModelRequested,
        RecordKind::ModelIntent,
        RecordKind::ModelCompleted,
        RecordKind::ObserverAlert,
        RecordKind::ActionResult,
        RecordKind::ControlSet,
        RecordKind::ActionDecided,
        RecordKind::CheckpointSigned,
    ];
    (0..n)
        .map(|i| cycle.get((i * 7 + i / 5) % cycle.len()).copied().unwrap())
        .collect()
}

const ASKED: &[&[&str]] = &[
    &["action_forwarded", "action_result"],
    &["action_decided", "model_completed"],
    &["observer_alert"],
    &["observer_alert", "control_set"],
    &["checkpoint_signed"],
    &["gateway_started"],
    &[
        "model_intent",
        "observer_alert",
        "action_attempted",
        "checkpoint_signed",
    ],
    &["no_such_kind"],
];

/// The steps of `sql`'s query plan with `params`.
fn plan_of(
    conn: &rusqlite::Connection,
    sql: &str,
    params: Vec<rusqlite::types::Value>,
) -> Vec<String> {
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    statement
        .query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(3)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn every_query_is_served_by_the_kind_index() {
    let dir = tempfile::tempdir().unwrap();
    ledger_of(dir.path(), &spread(300)).await;
    let conn = rusqlite::Connection::open(dir.path().join(super::DB_FILE)).unwrap();
    for kinds in ASKED {
        let (sql, params) = newest_of_kinds_sql(kinds, 200, 10).unwrap();
        let plan = plan_of(&conn, &sql, params);
        let searches = plan
            .iter()
            .filter(|p| p.contains("USING INDEX records_by_kind_group"))
            .count();
        assert!(searches >= 1, "{kinds:?}: {plan:?}");
        assert!(
            !plan.iter().any(|p| p.starts_with("SCAN records")),
            "{kinds:?} scans the ledger: {plan:?}"
        );
    }
    assert!(newest_of_kinds_sql(&[], 1, 1).is_none());
}

#[tokio::test]
async fn the_newest_of_kinds_are_what_a_filter_of_every_record_gives() {
    let dir = tempfile::tempdir().unwrap();
    let kinds = spread(300);
    ledger_of(dir.path(), &kinds).await;
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    for asked in ASKED {
        for before in [None, Some(1), Some(2), Some(57), Some(300), Some(301)] {
            for limit in [0, 1, 3, 10, 400] {
                let got: Vec<u64> = reader
                    .newest_of_kinds(asked, before, limit)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.seq)
                    .collect();
                let want: Vec<u64> = (1..=300_u64)
                    .rev()
                    .filter(|seq| before.is_none_or(|b| *seq < b))
                    .filter(|seq| {
                        let kind = kinds.get(usize::try_from(seq - 1).unwrap()).unwrap();
                        asked.contains(&kind.as_str())
                    })
                    .take(usize::try_from(limit).unwrap())
                    .collect();
                assert_eq!(got, want, "{asked:?} before {before:?} limit {limit}");
            }
        }
    }
}

/// The WAL frames (pages) 50 commits of one governed call's records each add to `conn`'s
/// ledger.
fn frames_of_fifty_calls(conn: &rusqlite::Connection, wal: &std::path::Path, from: i64) -> u64 {
    let before = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
    let mut seq = from;
    for _ in 0..50 {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for kind in [
            "action_result",
            "action_attempted",
            "action_decided",
            "action_forwarded",
        ] {
            seq += 1;
            conn.execute(
                "INSERT INTO records VALUES (?, 't', 's-1', ?, '{}', x'00', x'00')",
                rusqlite::params![seq, kind],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    let after = std::fs::metadata(wal).unwrap().len();
    (after - before) / (4096 + 24)
}

/// A commit of a call's records writes one leaf of the kind index, where an index by kind
/// wrote one per kind: measured in WAL frames on a real ledger, against the same ledger with
/// the earlier index in its place.
#[tokio::test]
async fn a_calls_records_touch_one_leaf_of_the_kind_index() {
    let dir = tempfile::tempdir().unwrap();
    ledger_of(dir.path(), &spread(3000)).await;
    let conn = rusqlite::Connection::open(dir.path().join(super::DB_FILE)).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0")
        .unwrap();
    let wal = dir.path().join(format!("{}-wal", super::DB_FILE));
    let grouped = frames_of_fifty_calls(&conn, &wal, 3000);
    conn.execute_batch(
        "DROP INDEX records_by_kind_group; CREATE INDEX records_by_kind ON records(kind, seq)",
    )
    .unwrap();
    let by_kind = frames_of_fifty_calls(&conn, &wal, 3200);
    // Three leaves fewer a commit (four kinds, one group), less what splits add.
    assert!(
        grouped + 2 * 50 <= by_kind,
        "grouped: {grouped} frames, by kind: {by_kind} frames, for 50 commits"
    );
}

#[tokio::test]
async fn the_records_of_some_kinds_in_a_range_are_read_by_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    ledger_of(dir.path(), &spread(300)).await;
    let conn = rusqlite::Connection::open(dir.path().join(super::DB_FILE)).unwrap();
    for kinds in 1..=16 {
        let sql = kinds_in_range_sql(kinds);
        let mut params: Vec<rusqlite::types::Value> = vec![100.into(), 200.into(), 10.into()];
        params.extend((0..kinds).map(|i| rusqlite::types::Value::Text(format!("kind_{i}"))));
        assert_eq!(
            plan_of(&conn, &sql, params),
            ["SEARCH records USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"],
            "{kinds} kinds"
        );
    }
}
