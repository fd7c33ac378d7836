//! `warden audit verify --pubkey` end to end: a ledger written through the library with real
//! signed checkpoints, the real binary run on it before and after the database file (or an
//! exported copy) is tampered with.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use super::audit_signed_support;

use std::path::Path;

use audit_signed_support::{Signed, stderr, stdout, warden};
use serde_json::Value;

fn verify_json(s: &Signed, extra: &[&str]) -> (Option<i32>, Value) {
    let vkey = s.vkey();
    let mut args = vec![
        "audit",
        "verify",
        "--data",
        s.data(),
        "--pubkey",
        &vkey,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = warden(&args);
    let v: Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("{e}: {} / {}", stdout(&out), stderr(&out)));
    (out.status.code(), v)
}

fn finding(v: &Value) -> (&str, u64) {
    (
        v["finding"]["finding"].as_str().unwrap_or("none"),
        v["finding"]["first_record"].as_u64().unwrap_or(0),
    )
}

#[test]
fn an_intact_signed_ledger_verifies_and_says_so() {
    let s = Signed::new(3);
    let anchor = s.anchor_file();
    let out = warden(&[
        "audit",
        "verify",
        "--data",
        s.data(),
        "--pubkey",
        &s.vkey(),
        "--checkpoint",
        &anchor,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ledger intact and signed: 304 records verified"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("the anchor checkpoint matches"));
    // The key may be a file too.
    let key_file = s.dir.path().join("key.pub");
    std::fs::write(&key_file, s.vkey()).unwrap();
    let out = warden(&[
        "audit",
        "verify",
        "--data",
        s.data(),
        "--pubkey",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn every_tampering_is_named_with_exit_3() {
    // (SQL, finding, first record), on a ledger of record 1 `charter_loaded`, 300 records and
    // checkpoint records 102, 203, 304 (of 101, 202 and 303 records).
    let cases: &[(&str, &str, u64)] = &[
        (
            r#"UPDATE records SET payload = '{"x":1}' WHERE seq = 150"#,
            "changed",
            150,
        ),
        ("DELETE FROM records WHERE seq = 150", "removed", 150),
        (
            "UPDATE records SET seq = -150 WHERE seq = 150; UPDATE records SET seq = 150 WHERE seq = 151; UPDATE records SET seq = 151 WHERE seq = -150",
            "chain_broken",
            150,
        ),
        ("DELETE FROM records WHERE seq > 250", "truncated", 251),
        ("DELETE FROM records", "emptied", 1),
        ("DELETE FROM records WHERE seq > 203", "rolled_back", 204),
    ];
    for (sql, name, first) in cases {
        let s = Signed::new(3);
        s.sql(sql);
        let anchor = s.anchor_file();
        let (code, v) = verify_json(&s, &["--checkpoint", &anchor]);
        assert_eq!(code, Some(3), "{sql}: {v}");
        assert_eq!(finding(&v), (*name, *first), "{sql}: {v}");
        assert_eq!(v["intact"], false);
        assert!(v["finding"]["message"].as_str().unwrap().len() > 10);
    }
}

#[test]
fn a_recomputed_chain_and_a_forged_append_are_named() {
    let s = Signed::new(3);
    s.rewrite(150);
    let anchor = s.anchor_file();
    let (code, v) = verify_json(&s, &["--checkpoint", &anchor]);
    assert_eq!((code, finding(&v)), (Some(3), ("rewritten", 102)), "{v}");
    // The plain chain check does not see it.
    let out = warden(&["audit", "verify", "--data", s.data()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let s = Signed::new(3);
    s.forge_append();
    let (code, v) = verify_json(&s, &[]);
    assert_eq!(
        (code, finding(&v)),
        (Some(3), ("unsigned_tail", 305)),
        "{v}"
    );
    // Allowed, it is a warning and exit 0.
    let (code, v) = verify_json(&s, &["--allow-unsigned-tail"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["warning"]["finding"], "unsigned_tail");
    assert_eq!(v["intact"], true);
}

#[test]
fn an_older_copy_put_back_is_a_rollback() {
    let mut s = Signed::new(1);
    let old = tempfile::tempdir().unwrap();
    std::fs::copy(s.dir.path().join("ledger.db"), old.path().join("ledger.db")).unwrap();
    s.grow(1);
    let anchor = s.anchor_file();
    std::fs::copy(old.path().join("ledger.db"), s.dir.path().join("ledger.db")).unwrap();
    let (code, v) = verify_json(&s, &["--checkpoint", &anchor]);
    assert_eq!((code, finding(&v)), (Some(3), ("rolled_back", 103)), "{v}");
}

#[test]
fn a_wrong_public_key_fails_and_bad_usage_is_64() {
    let s = Signed::new(1);
    let other = Signed::new(1);
    let out = warden(&[
        "audit",
        "verify",
        "--data",
        s.data(),
        "--pubkey",
        &other.vkey(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains("is a bad checkpoint"),
        "{}",
        stdout(&out)
    );
    for args in [
        &["--pubkey", "not-a-key"][..],
        &["--checkpoint", "x"][..],
        &["--file", "x"][..],
    ] {
        let mut all = vec!["audit", "verify", "--data", s.data()];
        all.extend_from_slice(args);
        let out = warden(&all);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    }
    // A checkpoint file that is not one: a bad anchor, exit 3.
    let junk = s.dir.path().join("junk.note");
    std::fs::write(&junk, "hello\n").unwrap();
    let (code, v) = verify_json(&s, &["--checkpoint", junk.to_str().unwrap()]);
    assert_eq!(
        (code, v["finding"]["finding"].as_str()),
        (Some(3), Some("bad_checkpoint"))
    );
}

#[test]
fn an_export_copy_verifies_and_fails_when_a_line_is_edited_dropped_or_reordered() {
    let s = Signed::new(3);
    let export = tempfile::tempdir().unwrap();
    let lines = s.export_lines();
    let write = |lines: &[String]| {
        // Two files, as a rotating sink writes them.
        let (a, b) = lines.split_at(150);
        std::fs::write(
            export.path().join("ledger-00000000000000000001.jsonl"),
            a.concat(),
        )
        .unwrap();
        std::fs::write(
            export.path().join("ledger-00000000000000000151.jsonl"),
            b.concat(),
        )
        .unwrap();
    };
    let anchor = s.anchor_file();
    let run = |dir: &Path| {
        verify_json(
            &s,
            &["--file", dir.to_str().unwrap(), "--checkpoint", &anchor],
        )
    };
    write(&lines);
    let (code, v) = run(export.path());
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["records"], 304);
    // One file on its own: the first 150 records, unsigned after the checkpoint record 102.
    let (code, v) = verify_json(
        &s,
        &[
            "--file",
            export
                .path()
                .join("ledger-00000000000000000001.jsonl")
                .to_str()
                .unwrap(),
        ],
    );
    assert_eq!(
        (code, finding(&v)),
        (Some(3), ("unsigned_tail", 103)),
        "{v}"
    );
    // At-least-once: a resent stretch is skipped.
    let mut resent = lines.clone();
    let again: Vec<String> = lines[140..150].to_vec();
    resent.splice(150..150, again);
    write(&resent);
    assert_eq!(run(export.path()).0, Some(0));

    let mut edited = lines.clone();
    edited[99] = edited[99].replace("\"/ws/", "\"/etc/");
    write(&edited);
    assert_eq!(finding(&run(export.path()).1), ("changed", 100));
    let mut dropped = lines.clone();
    dropped.remove(99);
    write(&dropped);
    assert_eq!(finding(&run(export.path()).1), ("removed", 100));
    let mut reordered = lines.clone();
    reordered.swap(99, 100);
    write(&reordered);
    assert_eq!(finding(&run(export.path()).1), ("removed", 100));
    // Not an export at all: bad usage.
    let empty = tempfile::tempdir().unwrap();
    let vkey = s.vkey();
    let out = warden(&[
        "audit",
        "verify",
        "--pubkey",
        &vkey,
        "--file",
        empty.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not an export"),
        "{}",
        stderr(&out)
    );
}
