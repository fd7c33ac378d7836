//! Tampering with a real ledger file, directly in SQL, and what `verify` names.

use std::path::Path;

use sqlx::{Connection, Row};
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
    let mut conn = raw(dir).await;
    let row = sqlx::query("SELECT time, session, kind, prev_hash FROM records WHERE seq = ?")
        .bind(seq)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let prev: Vec<u8> = row.get(3);
    let hash = record_hash(
        &prev.try_into().unwrap(),
        seq as u64,
        row.get(0),
        row.get(1),
        row.get(2),
        payload,
    );
    sqlx::query("UPDATE records SET payload = ?, hash = ? WHERE seq = ?")
        .bind(payload)
        .bind(hash.to_vec())
        .bind(seq)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
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
