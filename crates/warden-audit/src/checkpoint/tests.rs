use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};

use time::macros::datetime;

use super::*;

/// The `golang.org/x/mod/sumdb/note` test key (note_test.go, `TestSign`).
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                          then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

/// A real checkpoint of the Go checksum database with its published key
/// (transparency-dev/formats, log/note_test.go).
const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const SUMDB_NOTE: &str = "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n\u{2014} sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n";

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "warden/ledger/0192a3b4-test".to_owned(),
        size: 1234,
        root: merkle::leaf_hash(b"root"),
        time: Some(datetime!(2026-12-06 18:30:00 UTC)),
    }
}

#[test]
fn the_go_signer_key_signs_the_go_note_byte_for_byte() {
    let key = SigningKey::parse(PETER_SKEY).unwrap();
    assert_eq!(key.name(), "PeterNeumann");
    assert_eq!(key.verifier().to_string(), PETER_VKEY);
    let note = key.sign_text(PETER_TEXT).unwrap();
    assert_eq!(note, format!("{PETER_TEXT}\n{PETER_SIG}"));
}

#[test]
fn the_go_notes_open_with_their_keys() {
    let peter = VerifierKey::parse(PETER_VKEY).unwrap();
    let enoch = VerifierKey::parse(ENOCH_VKEY).unwrap();
    let both = format!("{PETER_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    // Each key finds its own signature and ignores the other's.
    assert_eq!(open_note(&both, &peter).unwrap(), PETER_TEXT);
    assert_eq!(open_note(&both, &enoch).unwrap(), PETER_TEXT);
    // A signature changed in the middle fails for its key.
    let bad = format!("{PETER_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert!(matches!(
        open_note(&bad, &peter),
        Err(CheckpointError::BadSignature { .. })
    ));
    // The malformed notes of the Go tests are malformed here too.
    for bad in [
        PETER_TEXT.to_owned(),
        format!("{PETER_TEXT}\n"),
        format!("{PETER_TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\x01{PETER_TEXT}\n{PETER_SIG}"),
        format!(
            "{PETER_TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        ),
        format!("{PETER_TEXT}\n{PETER_SIG}Unexpected line.\n"),
    ] {
        assert!(
            matches!(
                open_note(&bad, &peter),
                Err(CheckpointError::Malformed { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn the_go_key_manglings_are_refused() {
    for text in [PETER_VKEY, PETER_SKEY] {
        let private = text.starts_with("PRIVATE");
        let parse = |t: &str| {
            if private {
                SigningKey::parse(t).map(|_| ())
            } else {
                VerifierKey::parse(t).map(|_| ())
            }
        };
        assert!(parse(text).is_ok());
        let bytes = text.as_bytes();
        // Every proper substring (trimmed whitespace aside) and every byte bumped by one fails.
        for i in 0..=bytes.len() {
            for j in i + 1..=bytes.len() {
                if (i, j) != (0, bytes.len()) {
                    let sub = std::str::from_utf8(&bytes[i..j]).unwrap();
                    assert!(parse(sub).is_err(), "{sub}");
                }
            }
        }
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] = changed[i].wrapping_add(1);
            if let Ok(changed) = std::str::from_utf8(&changed) {
                assert!(parse(changed).is_err(), "{changed}");
            }
        }
    }
    // A wrong-length key with an adjusted id, and an unknown algorithm with an adjusted id.
    assert!(
        VerifierKey::parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
        .is_err()
    );
    assert!(matches!(
        VerifierKey::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::Algorithm { .. })
    ));
}

#[test]
fn a_real_sumdb_checkpoint_opens() {
    let key = VerifierKey::parse(SUMDB_VKEY).unwrap();
    let checkpoint = Checkpoint::open(SUMDB_NOTE, &key).unwrap();
    assert_eq!(checkpoint.origin, "go.sum database tree");
    assert_eq!(checkpoint.size, 6_476_701);
    assert_eq!(checkpoint.time, None);
    assert_eq!(
        checkpoint.body(),
        SUMDB_NOTE.split_once("\n\n").unwrap().0.to_owned() + "\n"
    );
}

#[test]
fn a_checkpoint_round_trips() {
    let key = SigningKey::generate("warden.example/test").unwrap();
    let vkey = key.verifier();
    for checkpoint in [
        checkpoint(),
        Checkpoint {
            time: None,
            ..checkpoint()
        },
        Checkpoint {
            size: 0,
            root: merkle::empty_root(),
            time: Some(datetime!(2026-12-06 18:30:00.125 UTC)),
            ..checkpoint()
        },
        Checkpoint {
            size: u64::MAX,
            ..checkpoint()
        },
    ] {
        let note = key.sign(&checkpoint);
        assert!(note.starts_with(&checkpoint.body()));
        assert_eq!(Checkpoint::open(&note, &vkey).unwrap(), checkpoint);
        // Through the verifier key's text form too.
        let reparsed = VerifierKey::parse(&vkey.to_string()).unwrap();
        assert_eq!(Checkpoint::open(&note, &reparsed).unwrap(), checkpoint);
    }
    assert_eq!(
        checkpoint().body(),
        format!(
            "warden/ledger/0192a3b4-test\n1234\n{}\ntime 2026-12-06T18:30:00Z\n",
            STANDARD.encode(merkle::leaf_hash(b"root"))
        )
    );
}

#[test]
fn a_time_in_another_offset_is_written_in_utc() {
    let checkpoint = Checkpoint {
        time: Some(datetime!(2026-12-06 20:30:00 +02:00)),
        ..checkpoint()
    };
    assert!(checkpoint.body().ends_with("time 2026-12-06T18:30:00Z\n"));
}

#[test]
fn every_changed_byte_of_a_note_fails() {
    let key = SigningKey::generate("warden.example/test").unwrap();
    let vkey = key.verifier();
    let note = key.sign(&checkpoint());
    let bytes = note.as_bytes();
    for i in 0..bytes.len() {
        for delta in [1u8, 0x20, 0x80] {
            let mut changed = bytes.to_vec();
            changed[i] = changed[i].wrapping_add(delta);
            let Ok(changed) = String::from_utf8(changed) else {
                continue;
            };
            assert!(
                Checkpoint::open(&changed, &vkey).is_err(),
                "byte {i} + {delta} accepted: {changed:?}"
            );
        }
    }
    // Cut anywhere, the note fails too.
    for i in 0..bytes.len() {
        if let Some(cut) = note.get(..i) {
            assert!(Checkpoint::open(cut, &vkey).is_err(), "cut at {i}");
        }
    }
}

#[test]
fn another_key_fails_even_with_the_same_name() {
    let key = SigningKey::generate("warden.example/test").unwrap();
    let other = SigningKey::generate("warden.example/test").unwrap();
    let note = key.sign(&checkpoint());
    assert!(matches!(
        Checkpoint::open(&note, &other.verifier()),
        Err(CheckpointError::NoSignature { .. })
    ));
    let peter = VerifierKey::parse(PETER_VKEY).unwrap();
    assert!(matches!(
        Checkpoint::open(&note, &peter),
        Err(CheckpointError::NoSignature { .. })
    ));
}

#[test]
fn unknown_signatures_are_ignored_and_duplicates_refused() {
    let key = SigningKey::generate("warden.example/test").unwrap();
    let witness = SigningKey::generate("witness.example").unwrap();
    let body = checkpoint().body();
    let ours = key.sign(&checkpoint());
    let theirs = witness.sign_text(&body).unwrap();
    let their_line = theirs.rsplit_once("\n\n").unwrap().1;
    let cosigned = format!("{ours}{their_line}");
    assert_eq!(
        Checkpoint::open(&cosigned, &key.verifier()).unwrap(),
        checkpoint()
    );
    assert_eq!(
        Checkpoint::open(&cosigned, &witness.verifier()).unwrap(),
        checkpoint()
    );
    let our_line = ours.rsplit_once("\n\n").unwrap().1;
    let twice = format!("{ours}{our_line}");
    assert!(matches!(
        Checkpoint::open(&twice, &key.verifier()),
        Err(CheckpointError::DuplicateSignature { .. })
    ));
}

#[test]
fn bodies_that_are_not_canonical_checkpoints_are_refused_after_the_signature() {
    let key = SigningKey::generate("warden.example/test").unwrap();
    let root = STANDARD.encode(merkle::empty_root());
    for body in [
        format!("origin\n01\n{root}\n"),
        format!("origin\n+1\n{root}\n"),
        format!("origin\n18446744073709551616\n{root}\n"),
        format!("origin\n1\n{}\n", STANDARD.encode([0u8; 31])),
        format!("origin\n1\n{}\n", &root[..root.len() - 1]),
        format!("\n1\n{root}\n"),
        format!("or\u{e9}gin\n1\n{root}\n"),
        "origin\n1\n".to_owned(),
        format!("origin\n1\n{root}\nextension\n"),
        format!("origin\n1\n{root}\ntime 2026-12-06T18:30:00+01:00\n"),
        format!("origin\n1\n{root}\ntime 2026-12-06T18:30:00.100Z\n"),
        format!("origin\n1\n{root}\ntime 2026-12-06T18:30:00Z\ntime 2026-12-06T18:30:00Z\n"),
    ] {
        let note = key.sign_text(&body).unwrap();
        assert!(
            matches!(
                Checkpoint::open(&note, &key.verifier()),
                Err(CheckpointError::Body { .. })
            ),
            "{body:?}"
        );
    }
}

#[test]
fn oversized_notes_are_refused_before_checking() {
    let key = SigningKey::generate("warden.example/test").unwrap();
    let vkey = key.verifier();
    let note = key.sign(&checkpoint());
    let line = note.rsplit_once("\n\n").unwrap().1;
    let many = format!("{note}{}", line.repeat(MAX_NOTE_LINES));
    assert!(matches!(
        Checkpoint::open(&many, &vkey),
        Err(CheckpointError::TooManyLines { .. })
    ));
    let big = format!("{}{note}", "x".repeat(MAX_NOTE_BYTES));
    assert!(matches!(
        Checkpoint::open(&big, &vkey),
        Err(CheckpointError::TooLarge { .. })
    ));
    assert!(key.sign_text(&"x\n".repeat(MAX_NOTE_LINES)).is_err());
    assert!(key.sign_text("no newline").is_err());
}

#[test]
fn the_record_payload_must_match_its_note() {
    let key = SigningKey::generate("warden.example/test").unwrap();
    let vkey = key.verifier();
    let checkpoint = checkpoint();
    let note = key.sign(&checkpoint);
    let payload = checkpoint.record_payload(&note);
    assert_eq!(payload["root"].as_str().unwrap().len(), 64);
    assert_eq!(
        Checkpoint::from_record_payload(&payload, &vkey).unwrap(),
        checkpoint
    );
    for (field, value) in [
        ("size", serde_json::json!(1235)),
        ("origin", serde_json::json!("other")),
        ("root", serde_json::json!("00".repeat(32))),
    ] {
        let mut changed = payload.clone();
        changed[field] = value;
        assert!(matches!(
            Checkpoint::from_record_payload(&changed, &vkey),
            Err(CheckpointError::Payload { .. })
        ));
    }
}

#[test]
fn key_files_round_trip_and_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.key");
    let key = SigningKey::generate("warden.example/test").unwrap();
    key.write_new(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("PRIVATE+KEY+warden.example/test+"));
    let loaded = SigningKey::load(&path).unwrap();
    assert_eq!(loaded.verifier(), key.verifier());
    // Never overwritten.
    assert!(matches!(key.write_new(&path), Err(KeyError::Exists { .. })));
    // Debug shows the name and id, not the seed.
    let debug = format!("{loaded:?}");
    assert!(debug.contains("warden.example/test"));
    // `PRIVATE+KEY+<name>+<key id>+<base64 seed>`: the seed's base64 may itself hold a `+`.
    let seed_b64 = text.trim().splitn(5, '+').nth(4).unwrap();
    assert!(!debug.contains(seed_b64));
}

#[test]
fn loose_permissions_links_and_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.key");
    SigningKey::generate("k").unwrap().write_new(&path).unwrap();
    for mode in [0o640, 0o604, 0o660, 0o602, 0o620, 0o644] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = SigningKey::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { .. }), "{mode:o}");
        assert!(err.to_string().contains("chmod 600"));
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    SigningKey::load(&path).unwrap();
    let link = dir.path().join("link.key");
    symlink(&path, &link).unwrap();
    assert!(matches!(
        SigningKey::load(&link),
        Err(KeyError::Symlink { .. })
    ));
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(
        SigningKey::load(&sub),
        Err(KeyError::NotRegular { .. })
    ));
    assert!(matches!(
        SigningKey::load(&dir.path().join("missing")),
        Err(KeyError::Io { .. })
    ));
    // A malformed or oversized file names the file, not its content.
    let junk = dir.path().join("junk.key");
    fs::write(&junk, "PRIVATE+KEY+k+00000000+c2VjcmV0\n").unwrap();
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o600)).unwrap();
    let err = SigningKey::load(&junk).unwrap_err().to_string();
    assert!(!err.contains("c2VjcmV0"), "{err}");
    fs::write(&junk, "x".repeat(5000)).unwrap();
    assert!(matches!(
        SigningKey::load(&junk),
        Err(KeyError::File { .. })
    ));
}

#[test]
fn a_verifier_key_comes_from_text_or_a_file_never_a_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate("warden.example/test").unwrap();
    let pub_path = dir.path().join("checkpoint.key.pub");
    fs::write(&pub_path, format!("{}\n", key.verifier())).unwrap();
    assert_eq!(
        VerifierKey::from_arg(pub_path.to_str().unwrap()).unwrap(),
        key.verifier()
    );
    assert_eq!(
        VerifierKey::from_arg(&key.verifier().to_string()).unwrap(),
        key.verifier()
    );
    assert!(matches!(
        VerifierKey::from_arg(PETER_SKEY),
        Err(KeyError::PrivateNotPublic)
    ));
    let priv_path = dir.path().join("checkpoint.key");
    key.write_new(&priv_path).unwrap();
    assert!(matches!(
        VerifierKey::from_arg(priv_path.to_str().unwrap()),
        Err(KeyError::PrivateNotPublic)
    ));
    assert!(VerifierKey::from_arg("/nonexistent/key.pub").is_err());
}

#[test]
fn key_names_are_checked() {
    for name in ["", "a b", "a+b", "a\nb", "a\u{2003}b", &"x".repeat(257)] {
        assert!(
            matches!(SigningKey::generate(name), Err(KeyError::Name { .. })),
            "{name:?}"
        );
    }
    assert!(SigningKey::generate("Se\u{f1}or-1").is_ok());
}

#[test]
fn origins_are_printable_ascii() {
    assert!(valid_origin("warden/ledger/abc"));
    assert!(valid_origin("go.sum database tree"));
    assert!(!valid_origin(""));
    assert!(!valid_origin("a\nb"));
    assert!(!valid_origin("caf\u{e9}"));
    assert!(!valid_origin(&"x".repeat(MAX_ORIGIN_BYTES + 1)));
    assert_eq!(default_origin("id"), "warden/ledger/id");
}

/// The example of docs/checkpoints.md, signed outside warden (Python `cryptography`, i.e.
/// OpenSSL's Ed25519, with the key id and note assembled by hand from the spec).
const DOCS_VKEY: &str = "ops.example/warden+dc6988f2+AUnojEA/Jcim9viMKvmHo9uOWau8woEiZtFrA+Tm5WWf";
const DOCS_NOTE: &str = "warden/ledger/0193f3a2-5c1e-7d44-9a0b-2f6d1c8e4b71\n1024\nC65pPpLZgjm4owaKUAjFZ7NtZDlYe7M6zcOzB2eWOp8=\ntime 2026-12-06T18:30:00Z\n\n\u{2014} ops.example/warden 3GmI8lbTpsm6dfGeXWmmV4DN2RKrjVoQDmNjU+qN3EUlTe2TgVxwQUKQZSxmz+iTRCUgO96KAh+zvcmfHfkkblzavgw=\n";

#[test]
fn the_documented_example_signed_elsewhere_opens() {
    let key = VerifierKey::parse(DOCS_VKEY).unwrap();
    let checkpoint = Checkpoint::open(DOCS_NOTE, &key).unwrap();
    assert_eq!(
        checkpoint,
        Checkpoint {
            origin: "warden/ledger/0193f3a2-5c1e-7d44-9a0b-2f6d1c8e4b71".to_owned(),
            size: 1024,
            root: merkle::leaf_hash(b"example"),
            time: Some(datetime!(2026-12-06 18:30:00 UTC)),
        }
    );
    // And warden writes the same body for it.
    assert!(DOCS_NOTE.starts_with(&checkpoint.body()));
}
