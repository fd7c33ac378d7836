//! `warden audit prove` and `warden audit consistency` end to end: proofs of a real ledger's
//! records against its real signed checkpoints, checked here again with the RFC 9162
//! verification algorithms from nothing but what the command printed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use super::audit_signed_support;

use audit_signed_support::{Signed, stderr, stdout, warden};
use serde_json::Value;
use warden_audit::chain::hex;
use warden_audit::checkpoint::Checkpoint;
use warden_audit::merkle;
use warden_audit::signed::hash_from_base64;

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_str(stdout(out).trim())
        .unwrap_or_else(|e| panic!("{e}: {} / {}", stdout(out), stderr(out)))
}

fn hashes(v: &Value) -> Vec<merkle::Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| hash_from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

fn hex32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// Checks a printed inclusion proof from its own fields only, as an outside verifier would.
fn check_inclusion(v: &Value) {
    let leaf = merkle::leaf_hash(&hex32(v["leaf_input"].as_str().unwrap()));
    assert_eq!(
        hash_from_base64(v["leaf_hash"].as_str().unwrap()),
        Some(leaf)
    );
    merkle::verify_inclusion(
        v["leaf_index"].as_u64().unwrap(),
        v["tree_size"].as_u64().unwrap(),
        &leaf,
        &hashes(&v["proof"]),
        &hash_from_base64(v["root"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
}

#[test]
fn every_record_is_proven_against_the_newest_checkpoint_and_an_anchor_file() {
    let s = Signed::new(3);
    let vkey = s.vkey();
    let records = s.records();
    for seq in [1u64, 2, 101, 150, 256, 303] {
        let out = warden(&[
            "audit",
            "prove",
            &seq.to_string(),
            "--data",
            s.data(),
            "--pubkey",
            &vkey,
            "--format",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{seq}: {}", stderr(&out));
        let v = json_of(&out);
        assert_eq!(
            v["tree_size"], 303,
            "the newest checkpoint record signs 303"
        );
        assert_eq!(v["leaf_index"], seq - 1);
        assert_eq!(v["leaf_input"], hex(&records[seq as usize - 1].hash));
        assert_eq!(v["signature_checked"], true);
        check_inclusion(&v);
    }
    // Record 304 (the last checkpoint record) is covered only by the anchor.
    let out = warden(&["audit", "prove", "304", "--data", s.data()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no signed checkpoint"),
        "{}",
        stderr(&out)
    );
    let anchor = s.anchor_file();
    let out = warden(&[
        "audit",
        "prove",
        "304",
        "--data",
        s.data(),
        "--checkpoint",
        &anchor,
        "--pubkey",
        &vkey,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("record 304 is leaf 303 of the tree of 304 records"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_proof_of_a_changed_record_or_with_a_wrong_key_fails() {
    let s = Signed::new(2);
    let anchor = s.anchor_file();
    s.rewrite(50);
    // The stored tree still holds the old leaves, the record its new hash: no proof holds.
    let out = warden(&[
        "audit",
        "prove",
        "50",
        "--data",
        s.data(),
        "--checkpoint",
        &anchor,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stderr(&out).contains("is not proven"), "{}", stderr(&out));
    let other = Signed::new(1);
    let out = warden(&[
        "audit",
        "prove",
        "5",
        "--data",
        s.data(),
        "--checkpoint",
        &anchor,
        "--pubkey",
        &other.vkey(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
}

#[test]
fn consistency_between_checkpoints_holds_and_a_fork_fails() {
    let mut s = Signed::new(3);
    let old_anchor = s.anchor_file();
    s.grow(1);
    let new_anchor = s.anchor_file();
    let vkey = s.vkey();
    // Sizes signed by checkpoint records, and files.
    for (old, new) in [
        ("101", "303"),
        ("202", "404"),
        (old_anchor.as_str(), new_anchor.as_str()),
        ("101", new_anchor.as_str()),
    ] {
        let out = warden(&[
            "audit",
            "consistency",
            old,
            new,
            "--data",
            s.data(),
            "--pubkey",
            &vkey,
            "--format",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{old} {new}: {}", stderr(&out));
        let v = json_of(&out);
        merkle::verify_consistency(
            v["old_size"].as_u64().unwrap(),
            v["new_size"].as_u64().unwrap(),
            &hash_from_base64(v["old_root"].as_str().unwrap()).unwrap(),
            &hash_from_base64(v["new_root"].as_str().unwrap()).unwrap(),
            &hashes(&v["proof"]),
        )
        .unwrap();
    }
    // A checkpoint of another history of the same log, signed by the same key (a fork): the
    // proof from this ledger cannot reach its root.
    let records = s.records();
    let origin = records[101].payload["origin"].as_str().unwrap().to_owned();
    let fork = s.key.sign(&Checkpoint {
        origin,
        size: 101,
        root: [9; 32],
        time: None,
    });
    let fork_file = s.dir.path().join("fork.note");
    std::fs::write(&fork_file, fork).unwrap();
    let out = warden(&[
        "audit",
        "consistency",
        fork_file.to_str().unwrap(),
        "303",
        "--data",
        s.data(),
        "--pubkey",
        &vkey,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stderr(&out).contains("does not extend"), "{}", stderr(&out));
    let out = warden(&["audit", "consistency", "7", "303", "--data", s.data()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let out = warden(&[
        "audit",
        "consistency",
        "nonsense",
        "303",
        "--data",
        s.data(),
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
}
