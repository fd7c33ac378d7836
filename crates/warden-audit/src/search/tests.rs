//! The search index over real ledgers: what is indexed, the phrase query, the session filter,
//! incremental updates beside a running writer, rebuilds, and query text that looks like
//! FTS5 syntax.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;

use super::{INDEX_FILE, SearchError, SearchIndex, UpdateReport, is_indexed, payload_text};
use crate::chain::RecordKind;
use crate::store::{DB_FILE, Ledger, LedgerConfig, LedgerError, NewRecord};

fn record(session: &str, kind: RecordKind, payload: Value) -> NewRecord {
    NewRecord {
        session: Some(session.to_owned()),
        kind,
        payload,
    }
}

/// A model call in session `s-1` (records 1 to 4), things that are not indexed (5, 6), and an
/// approval request in session `s-2` (7).
fn conversation() -> Vec<NewRecord> {
    vec![
        record(
            "s-1",
            RecordKind::ModelRequested,
            json!({
                "call": "c-1",
                "route": "openai",
                "request": {
                    "model": "gpt-4o",
                    "messages": [
                        {"role": "system", "content": "You are terse."},
                        {"role": "user", "content": "what is the capital of France"}
                    ]
                }
            }),
        ),
        record(
            "s-1",
            RecordKind::ModelCompleted,
            json!({
                "call": "c-1",
                "completion": {"text": "Paris. Let me read your notes.", "finish_reason": "tool_calls"},
                "usage": {"input_tokens": 12, "output_tokens": 7}
            }),
        ),
        record(
            "s-1",
            RecordKind::ModelIntent,
            json!({"call": "c-1", "tool": "fs.read_text_file", "arguments": "{\"path\":\"/ws/notes.md\"}"}),
        ),
        record(
            "s-1",
            RecordKind::ActionAttempted,
            json!({"tool": "fs.read_text_file", "args": {"path": "/ws/notes.md"}}),
        ),
        record(
            "s-1",
            RecordKind::ActionDecided,
            json!({"verdict": "allow", "note": "France is not mentioned here for nothing"}),
        ),
        NewRecord {
            session: None,
            kind: RecordKind::LabelsAdded,
            payload: json!({"labels": ["Paris"]}),
        },
        record(
            "s-2",
            RecordKind::ApprovalRequested,
            json!({
                "tool": "payments.transfer",
                "args": {"to": "ACME Paris", "amount": 1200},
                "reason": "a \"quoted\" (word) AND * in black and white"
            }),
        ),
    ]
}

async fn open_ledger(dir: &Path) -> Ledger {
    Ledger::open(dir, Arc::new(SystemClock), LedgerConfig::default())
        .await
        .unwrap()
}

/// Writes `records` to the ledger in `dir` and closes it.
async fn write(dir: &Path, records: Vec<NewRecord>) {
    let ledger = open_ledger(dir).await;
    ledger.append_batch(records).await.unwrap();
    ledger.shutdown().await.unwrap();
}

fn seqs(index: &SearchIndex, text: &str, session: Option<&str>) -> Vec<u64> {
    index
        .search(text, session, 100)
        .unwrap()
        .iter()
        .map(|h| h.seq)
        .collect()
}

#[test]
fn fts5_is_compiled_into_the_bundled_sqlite() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let used: i64 = conn
        .query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(used, 1);
    conn.execute_batch("CREATE VIRTUAL TABLE t USING fts5(x)")
        .unwrap();
}

#[test]
fn the_text_is_every_string_in_the_payload() {
    let payload = r#"{"a":"one","b":[1,true,null,"two",{"c":"three"}],"d":2.5}"#;
    assert_eq!(payload_text(payload), "one\ntwo\nthree");
    assert_eq!(payload_text("not json"), "not json");
    assert!(is_indexed("model_requested"));
    assert!(is_indexed("model_something_later"));
    assert!(is_indexed("approval_requested"));
    assert!(is_indexed("action_attempted"));
    assert!(!is_indexed("action_decided"));
    assert!(!is_indexed("budget_exceeded"));
}

#[tokio::test]
async fn finds_model_text_by_its_words_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), conversation()).await;
    let mut index = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(
        index.update().unwrap(),
        UpdateReport {
            scanned: 7,
            indexed: 5,
            rebuilt: false
        }
    );

    let hits = index.search("Capital of FRANCE", None, 20).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hit = &hits[0];
    assert_eq!(hit.seq, 1);
    assert_eq!(hit.session.as_deref(), Some("s-1"));
    assert_eq!(hit.kind, "model_requested");
    assert_eq!(hit.time.len(), 30, "{}", hit.time);
    assert!(
        hit.snippet.contains("[capital of France]"),
        "{}",
        hit.snippet
    );

    // Not in the payload of records that are not indexed (5: action_decided, 6: labels).
    assert_eq!(seqs(&index, "France", None), [1]);
    // Newest first; the approval request's nested argument counts.
    assert_eq!(seqs(&index, "paris", None), [7, 2]);
    // A tool name, as a phrase of its parts, in the intent, the attempt and no other.
    assert_eq!(seqs(&index, "fs.read_text_file", None), [4, 3]);
    assert_eq!(seqs(&index, "/ws/notes.md", None), [4, 3]);
    // Words in another order are not the phrase.
    assert!(seqs(&index, "France capital", None).is_empty());
    // The limit keeps the newest.
    let newest = index.search("paris", None, 1).unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].seq, 7);
    assert!(index.search("paris", None, 0).unwrap().is_empty());
}

#[tokio::test]
async fn the_session_filter_keeps_one_session() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), conversation()).await;
    let mut index = SearchIndex::open(dir.path()).unwrap();
    index.update().unwrap();
    assert_eq!(seqs(&index, "paris", Some("s-1")), [2]);
    assert_eq!(seqs(&index, "paris", Some("s-2")), [7]);
    assert!(seqs(&index, "paris", Some("s-3")).is_empty());
}

#[tokio::test]
async fn updates_pick_up_new_records_beside_the_running_writer() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open_ledger(dir.path()).await;
    ledger.append_batch(conversation()).await.unwrap();

    let mut index = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(index.update().unwrap().scanned, 7);
    assert_eq!(index.update().unwrap(), UpdateReport::default());

    // More than one batch of new records.
    let more: Vec<NewRecord> = (0..2500)
        .map(|i| {
            record(
                "s-3",
                RecordKind::ModelCompleted,
                json!({"completion": {"text": format!("answer number {i} mentions Lyon")}}),
            )
        })
        .collect();
    ledger.append_batch(more).await.unwrap();
    // A second index of the same directory (another process, say) shares the work.
    let mut other = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(
        index.update().unwrap(),
        UpdateReport {
            scanned: 2500,
            indexed: 2500,
            rebuilt: false
        }
    );
    assert_eq!(other.update().unwrap(), UpdateReport::default());
    assert_eq!(index.search("Lyon", None, 10_000).unwrap().len(), 2500);
    assert_eq!(seqs(&other, "answer number 1234", None), [7 + 1235]);
    // The older records are still there, once each.
    assert_eq!(seqs(&index, "paris", None), [7, 2]);
    ledger.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_different_or_shorter_ledger_rebuilds_the_index() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), conversation()).await;
    let mut index = SearchIndex::open(dir.path()).unwrap();
    index.update().unwrap();
    drop(index);

    // Another ledger, longer than the first, in its place: nothing of the old one remains.
    let elsewhere = tempfile::tempdir().unwrap();
    let other: Vec<NewRecord> = (0..9)
        .map(|i| {
            record(
                "s-9",
                RecordKind::ModelRequested,
                json!({"prompt": format!("tell me about Berlin, part {i}")}),
            )
        })
        .collect();
    write(elsewhere.path(), other).await;
    std::fs::copy(elsewhere.path().join(DB_FILE), dir.path().join(DB_FILE)).unwrap();
    let mut index = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(
        index.update().unwrap(),
        UpdateReport {
            scanned: 9,
            indexed: 9,
            rebuilt: true
        }
    );
    assert!(seqs(&index, "paris", None).is_empty());
    assert_eq!(seqs(&index, "berlin", None).len(), 9);

    // The same ledger cut short (its last records removed): rebuilt from what is left.
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch("DELETE FROM records WHERE seq > 4")
        .unwrap();
    drop(conn);
    let report = index.update().unwrap();
    assert!(report.rebuilt);
    assert_eq!(report.scanned, 4);
    assert_eq!(seqs(&index, "berlin", None), [4, 3, 2, 1]);

    // Its last indexed record rewritten: rebuilt too.
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch("UPDATE records SET hash = zeroblob(32) WHERE seq = 4")
        .unwrap();
    drop(conn);
    assert!(index.update().unwrap().rebuilt);

    // Deleting the index file is always safe: the next update builds it again.
    drop(index);
    std::fs::remove_file(dir.path().join(INDEX_FILE)).unwrap();
    let mut index = SearchIndex::open(dir.path()).unwrap();
    let report = index.update().unwrap();
    assert_eq!((report.indexed, report.rebuilt), (4, false));
}

#[tokio::test]
async fn query_syntax_is_literal_text_and_never_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), conversation()).await;
    let mut index = SearchIndex::open(dir.path()).unwrap();
    index.update().unwrap();

    for query in [
        "\"",
        "\"\"",
        "*",
        "AND",
        "(",
        ")",
        "paris AND",
        "OR paris",
        "NOT",
        "NEAR(paris france)",
        "text: paris",
        "session:s-1",
        "{text}: paris",
        "^paris",
        "-paris",
        "+",
        "paris\"",
        "\"paris",
        "a\0b",
        "",
        "   ",
    ] {
        assert!(
            index.search(query, None, 20).is_ok(),
            "{query:?} is an error"
        );
    }
    // A quote, parentheses and `AND` around words are punctuation and a word.
    assert_eq!(seqs(&index, "\"quoted\" (word) AND", None), [7]);
    assert_eq!(seqs(&index, "quoted word and", None), [7]);
    assert_eq!(seqs(&index, "AND", None), [7]);
    assert_eq!(seqs(&index, "paris\"", None), [7, 2]);
    // `*` is not a prefix operator.
    assert!(seqs(&index, "Par*", None).is_empty());
    // `NEAR`, `OR` and column filters are words, not operators.
    assert!(seqs(&index, "NEAR(paris france)", None).is_empty());
    assert!(seqs(&index, "paris OR france", None).is_empty());
    assert!(seqs(&index, "session:s-1", None).is_empty());
    // No word at all matches nothing.
    assert!(seqs(&index, "\"", None).is_empty());
    assert!(seqs(&index, "(", None).is_empty());
}

#[tokio::test]
async fn no_ledger_or_another_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        SearchIndex::open(dir.path()),
        Err(SearchError::Ledger(LedgerError::NotFound { .. }))
    ));
    assert!(!dir.path().join(INDEX_FILE).exists());

    write(dir.path(), conversation()).await;
    let conn = rusqlite::Connection::open(dir.path().join(INDEX_FILE)).unwrap();
    conn.execute_batch("CREATE TABLE mine (x)").unwrap();
    drop(conn);
    let err = SearchIndex::open(dir.path()).unwrap_err();
    assert!(matches!(err, SearchError::Format { .. }), "{err}");
    assert!(err.to_string().contains("move it away"), "{err}");
}
