//! `warden audit archive` and `warden audit prune` end to end: a real signed ledger archived,
//! the archive verified on its own, the ledger pruned, and the pruned ledger still verifying
//! (and proving) against the signed checkpoints, while tampering with what is left, or with
//! the `pruned` row, is still caught.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use super::audit_signed_support;

use std::sync::Arc;

use audit_signed_support::{Signed, block_on, stderr, stdout, warden};
use warden_audit::{Ledger, LedgerConfig};
use warden_core::SystemClock;

/// A ledger of 6 rounds (record 1, then 100 records and a checkpoint record each: 607
/// records, the last checkpoint of 606), archived to `archive/`.
fn archived() -> (Signed, tempfile::TempDir) {
    let s = Signed::new(6);
    let archive = tempfile::tempdir().unwrap();
    let to = archive.path().join("archive");
    let out = warden(&[
        "audit",
        "archive",
        "--data",
        s.data(),
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("archived records 1 to 607"),
        "{}",
        stdout(&out)
    );
    (s, archive)
}

fn verify(s: &Signed, extra: &[&str]) -> std::process::Output {
    let vkey = s.vkey();
    let mut args = vec!["audit", "verify", "--data", s.data(), "--pubkey", &vkey];
    args.extend_from_slice(extra);
    warden(&args)
}

#[test]
fn an_archive_verifies_on_its_own_and_a_pruned_ledger_still_verifies_and_proves() {
    let (s, archive) = archived();
    let to = archive.path().join("archive");
    let to = to.to_str().unwrap();
    assert_eq!(verify(&s, &["--file", to]).status.code(), Some(0));
    // Archiving again has nothing new to copy.
    let out = warden(&["audit", "archive", "--data", s.data(), "--to", to]);
    assert!(
        stdout(&out).starts_with("nothing to archive"),
        "{}",
        stdout(&out)
    );

    let vkey = s.vkey();
    let out = warden(&[
        "audit",
        "prune",
        "--data",
        s.data(),
        "--archive",
        to,
        "--pubkey",
        &vkey,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The newest checkpoint covers 606 records: pruned through 512.
    assert!(
        stdout(&out).starts_with("pruned records 1 to 512"),
        "{}",
        stdout(&out)
    );
    let out = verify(&s, &["--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["records"], 608 - 512);
    // With the anchor of the whole ledger, too.
    let anchor = s.anchor_file();
    assert_eq!(
        verify(&s, &["--checkpoint", &anchor]).status.code(),
        Some(0)
    );
    // The plain chain check still passes, naming the pruned records.
    let out = warden(&["audit", "verify", "--data", s.data()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("records 1 to 512 were pruned"),
        "{}",
        stdout(&out)
    );
    // Proofs of the records after 512 still work; of a pruned one, they say where to look.
    let out = warden(&[
        "audit",
        "prove",
        "600",
        "--data",
        s.data(),
        "--pubkey",
        &vkey,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warden(&["audit", "prove", "3", "--data", s.data(), "--pubkey", &vkey]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));

    // The gateway reopens the pruned ledger, appends and signs: still verifies.
    let mut s = s;
    block_on(async {
        let ledger = Ledger::open(s.dir.path(), Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap();
        ledger.shutdown().await.unwrap();
    });
    s.grow(1);
    assert_eq!(verify(&s, &[]).status.code(), Some(0));
    assert_eq!(
        verify(&s, &["--checkpoint", &s.anchor_file()])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn tampering_after_pruning_is_still_caught() {
    let cases: &[(&str, &str)] = &[
        (
            r#"UPDATE records SET payload = '{"x":1}' WHERE seq = 550"#,
            "changed",
        ),
        ("DELETE FROM records WHERE seq = 513", "removed"),
        ("UPDATE pruned SET through = 256", "bad_checkpoint"),
        (
            "UPDATE pruned SET head_hash = zeroblob(32)",
            "bad_checkpoint",
        ),
        ("UPDATE pruned SET frontier = '[]'", "bad_checkpoint"),
        ("DELETE FROM pruned", "removed"),
    ];
    for (sql, want) in cases {
        let (s, archive) = archived();
        let to = archive.path().join("archive");
        let vkey = s.vkey();
        let out = warden(&[
            "audit",
            "prune",
            "--data",
            s.data(),
            "--archive",
            to.to_str().unwrap(),
            "--pubkey",
            &vkey,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        s.sql(sql);
        let out = verify(&s, &["--format", "json"]);
        assert_eq!(out.status.code(), Some(3), "{sql}: {}", stdout(&out));
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert_eq!(v["finding"]["finding"], *want, "{sql}: {v}");
    }
}

#[test]
fn prune_refuses_a_running_gateway_a_bad_archive_and_a_wrong_key() {
    let (s, archive) = archived();
    let to = archive.path().join("archive");
    let to = to.to_str().unwrap();
    let vkey = s.vkey();
    // The ledger open (as in a running gateway): the lock is held.
    block_on(async {
        let ledger = Ledger::open(s.dir.path(), Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap();
        let out = warden(&[
            "audit",
            "prune",
            "--data",
            s.data(),
            "--archive",
            to,
            "--pubkey",
            &vkey,
        ]);
        assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
        assert!(stderr(&out).contains("running gateway"), "{}", stderr(&out));
        ledger.shutdown().await.unwrap();
    });
    // An archive line edited: refused, nothing pruned.
    let file = std::path::Path::new(to).join("ledger-00000000000000000001.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("/ws/5\"", "/ws/6\"", 1)).unwrap();
    let out = warden(&[
        "audit",
        "prune",
        "--data",
        s.data(),
        "--archive",
        to,
        "--pubkey",
        &vkey,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was pruned"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&file, text).unwrap();
    let other = Signed::new(1);
    let out = warden(&[
        "audit",
        "prune",
        "--data",
        s.data(),
        "--archive",
        to,
        "--pubkey",
        &other.vkey(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Nothing was pruned by any of these.
    let out = warden(&["audit", "verify", "--data", s.data()]);
    assert!(
        stdout(&out).starts_with("ledger intact: 607 records"),
        "{}",
        stdout(&out)
    );
}
