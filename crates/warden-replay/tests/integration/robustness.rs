//! The replay's robustness: the ledger left untouched, malformed and unreadable records
//! reported, many pages read in order, the report bounded.

use serde_json::json;
use warden_audit::RecordKind;
use warden_replay::Options;

use super::replay::{LIVE, scripted, variant};
use super::support::{Sim, replay};

fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// What SQLite itself needs to read a WAL database read-only: when no writer has the ledger
/// open, opening it creates an empty `ledger.db-wal` and the shared-memory index
/// `ledger.db-shm` (SQLite cannot read a WAL database without them unless it is opened
/// `immutable`, which `LedgerReader` does not do: a writer may start meanwhile).
const SQLITE_READ_FILES: [&str; 2] = ["ledger.db-shm", "ledger.db-wal"];

#[tokio::test]
async fn replay_never_writes_to_the_ledger_or_creates_a_file_of_its_own() {
    let dir = scripted().await;
    let before = snapshot(dir.path());
    assert!(before.iter().any(|(name, _)| name == "ledger.db"));
    replay(dir.path(), LIVE, &Options::default()).await;
    let shadow_reader = warden_audit::LedgerReader::open(dir.path()).await.unwrap();
    warden_replay::shadow(&shadow_reader, &Options::default())
        .await
        .unwrap();
    shadow_reader.close().await;
    let after = snapshot(dir.path());
    for (name, bytes) in &before {
        let now = after.iter().find(|(n, _)| n == name).map(|(_, b)| b);
        assert!(now == Some(bytes), "`{name}` changed or went away");
    }
    for (name, bytes) in &after {
        if before.iter().any(|(n, _)| n == name) {
            continue;
        }
        assert!(
            SQLITE_READ_FILES.contains(&name.as_str()),
            "replay created `{name}`"
        );
        if name.ends_with("-wal") {
            assert!(bytes.is_empty(), "the reader wrote to the WAL");
        }
    }
    // Read again with those files present: still nothing changes.
    let again = snapshot(dir.path());
    replay(dir.path(), LIVE, &Options::default()).await;
    assert!(snapshot(dir.path()) == again);
}

#[tokio::test]
async fn malformed_records_are_reported_not_fatal() {
    let mut g = Sim::new(LIVE).await;
    g.open("s1", "alice", "t").await;
    g.call("s1", "fs.read", json!({"path": "/a"}))
        .await
        .unwrap();
    // An attempt without its tool, and a decision that is not one.
    g.append(
        Some("s1"),
        RecordKind::ActionAttempted,
        json!({"action": "x1", "arguments": {}}),
    )
    .await;
    g.append(
        Some("s1"),
        RecordKind::ActionDecided,
        json!({"action": "x1", "decision": {"verdict": "perhaps"}}),
    )
    .await;
    g.append(
        Some("s1"),
        RecordKind::ActionAttempted,
        json!({"action": "x2", "tool": "fs.read", "arguments": {}}),
    )
    .await;
    g.append(
        Some("s1"),
        RecordKind::ActionDecided,
        json!({"action": "x2", "decision": 7}),
    )
    .await;
    let bad = g
        .append(Some("s1"), RecordKind::ControlSet, json!({"id": "c"}))
        .await;
    let unreadable = g
        .append(Some("s1"), RecordKind::LabelsAdded, json!({"labels": []}))
        .await;
    g.call("s1", "fs.read", json!({"path": "/b"}))
        .await
        .unwrap();
    let dir = g.close().await;
    // A row that is not a record any more (its payload is not JSON).
    let db = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    db.execute(
        "UPDATE records SET payload = 'not json {' WHERE seq = ?1",
        [unreadable as i64],
    )
    .unwrap();
    drop(db);

    let r = replay(dir.path(), LIVE, &Options::default()).await;
    assert_eq!((r.totals.compared, r.totals.unchanged), (2, 2), "{r:#?}");
    // x1's and x2's decisions, the control, the unreadable row.
    assert_eq!(r.totals.malformed, 4, "{r:#?}");
    let seqs: Vec<u64> = r.malformed.iter().map(|m| m.seq).collect();
    assert!(
        seqs.contains(&bad) && seqs.contains(&unreadable),
        "{seqs:?}"
    );
    assert!(
        r.malformed.iter().any(|m| m.reason.contains("not JSON")),
        "{r:#?}"
    );
    // The records after the unreadable one were read.
    assert_eq!(r.ledger.last_seq, Some(unreadable + 3));
}

/// Past two pages (read ahead two at a time), with an unreadable record in the second: every
/// attempt is still replayed, in order, and the record is reported.
#[tokio::test]
async fn a_ledger_of_many_pages_is_read_in_order_around_an_unreadable_record() {
    let mut g = Sim::new(LIVE).await;
    g.open("s1", "alice", "t").await;
    // More than three pages of records.
    let calls = warden_replay::PAGE + 500;
    for i in 0..calls {
        g.call("s1", "fs.read", json!({ "path": format!("/work/{i}") }))
            .await
            .unwrap();
    }
    let dir = g.close().await;
    // Each call is 3 records (attempted, decided, forwarded): spoil a forwarding record of the
    // second page.
    let bad = warden_replay::PAGE + 10;
    let db = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    let kind: String = db
        .query_row(
            "SELECT kind FROM records WHERE seq = ?1",
            [bad as i64],
            |r| r.get(0),
        )
        .unwrap();
    let bad = if kind == "action_forwarded" {
        bad
    } else if kind == "action_decided" {
        bad + 1
    } else {
        bad + 2
    };
    db.execute(
        "UPDATE records SET payload = 'x' WHERE seq = ?1",
        [bad as i64],
    )
    .unwrap();
    drop(db);
    let r = replay(dir.path(), LIVE, &Options::default()).await;
    assert_eq!(
        (r.totals.attempts, r.totals.unchanged),
        (calls, calls),
        "{:?}",
        r.totals
    );
    assert_eq!(r.totals.malformed, 1);
    assert_eq!(r.malformed[0].seq, bad);
    assert_eq!(r.ledger.records, 1 + 3 * calls - 1);
    assert_eq!(r.ledger.last_seq, Some(1 + 3 * calls));
}

/// Oversized arguments and many distinct changes stay bounded in the report; the counts stay
/// whole.
#[tokio::test]
async fn examples_are_bounded_and_counts_whole() {
    let mut g = Sim::new(LIVE).await;
    g.open("s1", "alice", "t").await;
    let big = "x".repeat(100_000);
    for i in 0..12 {
        g.call(
            "s1",
            "fs.write",
            json!({ "path": format!("/w/{i}"), "content": big }),
        )
        .await
        .unwrap();
    }
    let dir = g.close().await;
    let tight = variant(
        "{ id: write, tool: fs.write, tier: autonomous }",
        "{ id: write, tool: fs.write, tier: approval }",
    );
    let options = Options {
        examples: 3,
        ..Options::default()
    };
    let r = replay(dir.path(), &tight, &options).await;
    assert_eq!(r.changes.len(), 1);
    let g = &r.changes[0];
    assert_eq!((g.count, g.examples.len()), (12, 3));
    for e in &g.examples {
        assert!(
            e.arguments.len() <= warden_replay::report::MAX_ARGUMENT_BYTES,
            "{}",
            e.arguments.len()
        );
        assert!(e.arguments.ends_with('…'));
    }
}
