//! Adversarial inputs to `warden audit verify --pubkey` and the proofs: what a forger with
//! write access to the ledger (but not the signing key) or to the files handed to the
//! commands would try — replayed checkpoints, forged `ledger_pruned` records, forged or
//! oversized notes, torn and oversized export lines, a private key passed as the public one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use super::audit_signed_support;

use audit_signed_support::{Signed, stderr, stdout, warden};
use serde_json::{Value, json};
use warden_audit::RecordKind;

fn verify(s: &Signed, extra: &[&str]) -> (Option<i32>, Value, String) {
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
    let v = serde_json::from_str(stdout(&out).trim()).unwrap_or(Value::Null);
    (out.status.code(), v, stderr(&out))
}

#[test]
fn a_replayed_checkpoint_record_covers_nothing_new() {
    let s = Signed::new(2);
    // Record 102 carries the checkpoint of 101 records: copied to the end, re-chained.
    let old = s.records()[101].payload.clone();
    s.forge(RecordKind::CheckpointSigned, old.clone());
    let (code, v, _) = verify(&s, &[]);
    assert_eq!(
        code,
        Some(0),
        "a valid signed note adds no unsigned content: {v}"
    );
    assert_eq!(v["signed"], 202);
    // Behind it, a forged record is still unsigned.
    s.forge_append();
    let (code, v, _) = verify(&s, &[]);
    assert_eq!(code, Some(3));
    assert_eq!(v["finding"]["finding"], "unsigned_tail");
    assert_eq!(v["finding"]["first_record"], 205);
}

#[test]
fn a_forged_ledger_pruned_record_or_a_forged_note_is_caught() {
    let s = Signed::new(1);
    s.forge(
        RecordKind::LedgerPruned,
        json!({"through": 0, "checkpoint_size": 0}),
    );
    let (code, v, _) = verify(&s, &[]);
    assert_eq!(
        (code, v["finding"]["finding"].as_str()),
        (Some(3), Some("unsigned_tail"))
    );

    // A note whose signature line has the key's name and id but other bytes.
    let s = Signed::new(1);
    let mut payload = s.records()[101].payload.clone();
    let note = payload["note"].as_str().unwrap().to_owned();
    let (body, sig) = note.rsplit_once(' ').unwrap();
    let mut forged_sig = sig.trim_end().to_owned();
    forged_sig.replace_range(
        10..14,
        if &forged_sig[10..14] == "AAAA" {
            "BBBB"
        } else {
            "AAAA"
        },
    );
    payload["note"] = json!(format!("{body} {forged_sig}\n"));
    s.forge(RecordKind::CheckpointSigned, payload);
    let (code, v, _) = verify(&s, &[]);
    assert_eq!(code, Some(3));
    assert_eq!(v["finding"]["finding"], "bad_checkpoint", "{v}");
    assert_eq!(v["finding"]["seq"], 103);

    // Not a checkpoint payload at all, however large.
    let s = Signed::new(1);
    s.forge(
        RecordKind::CheckpointSigned,
        json!({"note": "x".repeat(100_000)}),
    );
    let (code, v, _) = verify(&s, &[]);
    assert_eq!(
        (code, v["finding"]["finding"].as_str()),
        (Some(3), Some("bad_checkpoint"))
    );
}

#[test]
fn oversized_and_malformed_files_are_refused_without_panicking() {
    let s = Signed::new(1);
    let big = s.dir.path().join("big.note");
    std::fs::write(&big, "a".repeat(64 * 1024)).unwrap();
    let (code, _, err) = verify(&s, &["--checkpoint", big.to_str().unwrap()]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("larger than"), "{err}");

    let export = tempfile::tempdir().unwrap();
    let lines = s.export_lines();
    let file = export.path().join("ledger-00000000000000000001.jsonl");
    // A torn last line.
    let mut text = lines.concat();
    text.pop();
    std::fs::write(&file, &text).unwrap();
    let (code, v, _) = verify(&s, &["--file", file.to_str().unwrap()]);
    assert_eq!(code, Some(3));
    assert_eq!(v["finding"]["finding"], "malformed");
    assert!(
        v["finding"]["detail"].as_str().unwrap().contains("torn"),
        "{v}"
    );
    // A line longer than the reader takes (16 MiB), with no newline in sight.
    let mut text = lines[..5].concat();
    text.push_str(&"x".repeat(17 * 1024 * 1024));
    std::fs::write(&file, &text).unwrap();
    let (code, v, _) = verify(&s, &["--file", file.to_str().unwrap()]);
    assert_eq!(code, Some(3));
    assert!(
        v["finding"]["detail"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{v}"
    );
    // Binary junk.
    std::fs::write(&file, [0xffu8, 0xfe, b'\n']).unwrap();
    let (code, v, _) = verify(&s, &["--file", file.to_str().unwrap()]);
    assert_eq!(
        (code, v["finding"]["finding"].as_str()),
        (Some(3), Some("malformed"))
    );
}

#[test]
fn a_private_key_given_as_the_public_key_is_refused_and_never_echoed() {
    let s = Signed::new(1);
    let private = s.dir.path().join("signing.key");
    s.key.write_new(&private).unwrap();
    let text = std::fs::read_to_string(&private).unwrap();
    for arg in [text.trim(), private.to_str().unwrap()] {
        let out = warden(&["audit", "verify", "--data", s.data(), "--pubkey", arg]);
        assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
        let seed = text.trim().splitn(5, '+').nth(4).unwrap();
        assert!(seed.len() > 40);
        assert!(
            !stderr(&out).contains(seed),
            "the key must not be echoed: {}",
            stderr(&out)
        );
        assert!(!stdout(&out).contains(seed));
    }
}
