//! `warden audit keygen` and `warden audit watch` as the real binary: the key pair a gateway
//! signs its checkpoints with, and the monitor that follows them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use warden_audit::checkpoint::{Checkpoint, SigningKey, VerifierKey};
use warden_audit::merkle;

fn warden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .output()
        .expect("run warden")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_writes_a_private_key_0600_and_its_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("checkpoint.key");
    let out = warden(&[
        "audit",
        "keygen",
        "--out",
        path_str(&key_path),
        "--name",
        "ops.example/warden",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let vkey = VerifierKey::parse(printed.trim()).unwrap();
    assert_eq!(vkey.name(), "ops.example/warden");
    // The private key never reaches stdout or stderr.
    let private = fs::read_to_string(&key_path).unwrap();
    let seed = private.trim().rsplit_once('+').unwrap().1;
    assert!(!printed.contains(seed) && !stderr(&out).contains(seed));
    assert_eq!(
        fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The .pub file holds the same verifier key, and the pair signs and verifies.
    let pub_text = fs::read_to_string(dir.path().join("checkpoint.key.pub")).unwrap();
    assert_eq!(pub_text.trim(), printed.trim());
    let key = SigningKey::load(&key_path).unwrap();
    let checkpoint = Checkpoint {
        origin: "warden/ledger/test".to_owned(),
        size: 1,
        root: merkle::leaf_hash(b"x"),
        time: None,
    };
    let from_file =
        VerifierKey::from_arg(path_str(&dir.path().join("checkpoint.key.pub"))).unwrap();
    assert_eq!(
        Checkpoint::open(&key.sign(&checkpoint), &from_file).unwrap(),
        checkpoint
    );
}

#[test]
fn keygen_never_overwrites_and_checks_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("checkpoint.key");
    let first = warden(&["audit", "keygen", "--out", path_str(&key_path)]);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = fs::read(&key_path).unwrap();
    let again = warden(&["audit", "keygen", "--out", path_str(&key_path)]);
    assert_eq!(again.status.code(), Some(64));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(fs::read(&key_path).unwrap(), before);

    // Only the .pub is there: still refused, and no private key is left behind.
    let lone = dir.path().join("lone.key");
    fs::write(dir.path().join("lone.key.pub"), "x").unwrap();
    let out = warden(&["audit", "keygen", "--out", path_str(&lone)]);
    assert_eq!(out.status.code(), Some(64));
    assert!(!lone.exists());

    let bad = warden(&[
        "audit",
        "keygen",
        "--out",
        path_str(&dir.path().join("bad.key")),
        "--name",
        "has space",
    ]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(
        stderr(&bad).contains("cannot name a key"),
        "{}",
        stderr(&bad)
    );
    assert!(!dir.path().join("bad.key").exists());
}
