//! Tampering with a real ledger file, directly in SQL, and what `verify` names.

use std::path::Path;

use warden_audit::chain::record_hash;
use warden_audit::{LedgerReader, Problem, VerifyReport};

use super::support::{exec, fill, open, raw, verify};

/// A closed ledger of `n` records.
async fn ledger_of(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).await;
    fill(&ledger, n).await;
    ledger.shutdown().await.unwrap();
    dir
}

fn problem(report: &VerifyReport) -> Problem {
    report.first_problem.clone().expect("a problem")
}

#[tokio::test]
async fn an_edited_payload_is_named_as_changed() {
    let dir = ledger_of(10).await;
    exec(
        dir.path(),
        r#"UPDATE records SET payload = '{"tool":"fs.delete"}' WHERE seq = 5"#,
    )
    .await;
    let report = verify(dir.path()).await;
    assert_eq!(problem(&report), Problem::Changed { seq: 5 });
    assert_eq!(report.records, 4);
    assert_eq!(report.head.unwrap().seq, 4);
}

#[tokio::test]
async fn an_edited_time_session_or_kind_is_named_as_changed() {
    for edit in [
        "UPDATE records SET time = '2020-01-01T00:00:00.000000000Z' WHERE seq = 3",
        "UPDATE records SET session = NULL WHERE seq = 3",
        "UPDATE records SET kind = 'action_decided' WHERE seq = 3",
        "UPDATE records SET hash = zeroblob(32) WHERE seq = 3",
        "UPDATE records SET hash = x'00' WHERE seq = 3",
    ] {
        let dir = ledger_of(5).await;
        exec(dir.path(), edit).await;
        assert_eq!(
            problem(&verify(dir.path()).await),
            Problem::Changed { seq: 3 },
            "{edit}"
        );
    }
}

#[tokio::test]
async fn a_deleted_record_is_named_as_removed() {
    let dir = ledger_of(10).await;
    exec(dir.path(), "DELETE FROM records WHERE seq = 5").await;
    let p = problem(&verify(dir.path()).await);
    assert_eq!(p, Problem::Removed { seq: 5, next: 6 });
    assert_eq!(
        p.to_string(),
        "record 5 was removed: record 6 follows record 4"
    );

    let dir = ledger_of(10).await;
    exec(dir.path(), "DELETE FROM records WHERE seq <= 2").await;
    assert_eq!(
        problem(&verify(dir.path()).await).to_string(),
        "records 1 to 2 were removed: the ledger starts at record 3"
    );
}

#[tokio::test]
async fn swapped_seq_numbers_break_the_chain_at_the_first_of_them() {
    let dir = ledger_of(10).await;
    exec(
        dir.path(),
        "UPDATE records SET seq = -3 WHERE seq = 3; \
         UPDATE records SET seq = 3 WHERE seq = 7; \
         UPDATE records SET seq = 7 WHERE seq = -3",
    )
    .await;
    assert_eq!(
        problem(&verify(dir.path()).await),
        Problem::ChainBroken { seq: 3 }
    );
}

/// Rewrites record `seq`'s payload and recomputes its hash, as an attacker who knows the
/// format would.
async fn rewrite(dir: &Path, seq: i64, payload: &str) {
    let conn = raw(dir);
    let (time, session, kind, prev): (String, Option<String>, String, Vec<u8>) = conn
        .query_row(
            "SELECT time, session, kind, prev_hash FROM records WHERE seq = ?1",
            [seq],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    let hash = record_hash(
        &prev.try_into().unwrap(),
        seq as u64,
        &time,
        session.as_deref(),
        &kind,
        payload,
    );
    conn.execute(
        "UPDATE records SET payload = ?1, hash = ?2 WHERE seq = ?3",
        rusqlite::params![payload, hash.to_vec(), seq],
    )
    .unwrap();
    conn.close().unwrap();
}

#[tokio::test]
async fn a_rewritten_record_with_a_recomputed_hash_breaks_the_chain_at_the_next() {
    let dir = ledger_of(10).await;
    rewrite(
        dir.path(),
        5,
        r#"{"tool":"fs.read_text_file","args":{"path":"/ws/ok"}}"#,
    )
    .await;
    let report = verify(dir.path()).await;
    let p = problem(&report);
    assert_eq!(p, Problem::ChainBroken { seq: 6 });
    assert!(p.to_string().contains("record 5 was rewritten"), "{p}");
    assert_eq!(report.records, 5);
}

#[tokio::test]
async fn a_rewritten_last_record_or_a_cut_tail_needs_an_outside_anchor() {
    // The chain alone cannot tell: the last record rewritten with its hash recomputed, or the
    // last records deleted, still verify. The head reported by `verify` changes, which is
    // what an anchor kept elsewhere (a signed checkpoint) is compared with.
    let dir = ledger_of(5).await;
    let before = verify(dir.path()).await.head.unwrap();
    exec(dir.path(), "DELETE FROM records WHERE seq = 5").await;
    let after = verify(dir.path()).await;
    assert!(after.is_intact());
    assert_ne!(after.head.unwrap(), before);
}

#[tokio::test]
async fn a_malformed_row_is_reported_not_an_error() {
    let dir = ledger_of(4).await;
    exec(dir.path(), "UPDATE records SET seq = -1 WHERE seq = 1").await;
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let p = problem(&reader.verify().await.unwrap());
    assert!(matches!(p, Problem::Malformed { seq: -1, .. }), "{p:?}");
    let err = reader.tail(10).await.unwrap_err();
    assert!(
        err.to_string().starts_with("record -1 cannot be read"),
        "{err}"
    );
}

#[tokio::test]
async fn a_column_of_the_wrong_type_is_named_alike_by_verify_and_the_queries() {
    // The table is STRICT, so this takes replacing it with a loose copy first.
    let dir = ledger_of(4).await;
    exec(
        dir.path(),
        "CREATE TABLE loose (seq INTEGER PRIMARY KEY, time, session, kind, payload, prev_hash, \
         hash); INSERT INTO loose SELECT * FROM records; DROP TABLE records; \
         ALTER TABLE loose RENAME TO records; UPDATE records SET time = 42 WHERE seq = 2",
    )
    .await;
    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let report = reader.verify().await.unwrap();
    assert_eq!(
        problem(&report),
        Problem::Malformed {
            seq: 2,
            detail: "its time is not text".to_owned()
        }
    );
    assert_eq!(report.records, 1);
    for err in [
        reader.tail(10).await.unwrap_err(),
        reader.get(2).await.unwrap_err(),
        reader.range(1, 10).await.unwrap_err(),
    ] {
        assert_eq!(
            err.to_string(),
            "record 2 cannot be read: its time is not text; run `warden audit verify`"
        );
    }
    assert_eq!(reader.get(3).await.unwrap().unwrap().seq, 3);
    reader.close().await;
}
