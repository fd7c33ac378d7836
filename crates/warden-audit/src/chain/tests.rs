use serde_json::json;

use super::*;

#[test]
fn canonical_json_sorts_keys_and_drops_whitespace() {
    let v = json!({"b": 1, "a": [true, null, 1.5, -2], "c": {"z": "x", "é": "", "Z": {}}});
    assert_eq!(
        canonical_json(&v),
        r#"{"a":[true,null,1.5,-2],"b":1,"c":{"Z":{},"z":"x","é":""}}"#
    );
}

#[test]
fn canonical_json_escapes_minimally() {
    let v = json!("q\" b\\ \u{8}\u{c}\n\r\t \u{1} \u{1f} / \u{7f} é 😀");
    assert_eq!(
        canonical_json(&v),
        "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001 \\u001f / \u{7f} é 😀\""
    );
}

#[test]
fn canonical_json_matches_serde_json_for_sorted_maps() {
    let v = json!({"k": ["a\u{0}b", 1e300, 0.1, u64::MAX, i64::MIN, {"y": 1, "x": 2}]});
    // Without `preserve_order`, serde_json's maps are sorted by key.
    assert_eq!(canonical_json(&v), serde_json::to_string(&v).unwrap());
}

#[test]
fn canonical_json_is_stable_through_a_round_trip() {
    let v = json!({"f": [1.0, 2.5e-8, 123456789.125], "s": "\u{2028}"});
    let once = canonical_json(&v);
    let again = canonical_json(&serde_json::from_str(&once).unwrap());
    assert_eq!(once, again);
}

#[test]
fn record_kinds_round_trip_through_their_names() {
    for kind in RecordKind::ALL {
        assert_eq!(kind.as_str().parse::<RecordKind>(), Ok(*kind));
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            json!(kind.as_str()),
            "serde name of {kind:?}"
        );
    }
    assert!("model_request".parse::<RecordKind>().is_err());
}

#[test]
fn time_format_is_fixed_width_utc() {
    let t = time::macros::datetime!(2026-11-21 07:01:30.5 +01:00);
    let text = format_time(t).unwrap();
    assert_eq!(text, "2026-11-21T06:01:30.500000000Z");
    assert_eq!(parse_time(&text).unwrap(), t);
    assert!(parse_time("2026-11-21T06:01:30Z").is_err());
}

/// The hash input built by hand, exactly as docs/ledger.md describes it.
fn documented_encoding(
    prev: &[u8; 32],
    seq: u64,
    time: &str,
    session: Option<&str>,
    kind: &str,
    payload: &str,
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"warden-ledger-v1");
    b.extend_from_slice(prev);
    b.extend_from_slice(&seq.to_be_bytes());
    let field = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_be_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    field(&mut b, time);
    match session {
        None => b.push(0),
        Some(s) => {
            b.push(1);
            field(&mut b, s);
        }
    }
    field(&mut b, kind);
    field(&mut b, payload);
    b
}

#[derive(serde::Deserialize)]
struct Vector {
    seq: u64,
    time: String,
    session: Option<String>,
    kind: String,
    payload: serde_json::Value,
    payload_canonical: String,
    prev_hash: String,
    hash: String,
}

/// Golden vectors: a fixed chain of records and their hashes. If this test fails, the hash
/// encoding changed, and every existing ledger would fail to verify: do not update the
/// vectors, fix the code (or introduce a new format version).
#[test]
fn golden_vectors() {
    let vectors: Vec<Vector> =
        serde_json::from_str(include_str!("../../tests/fixtures/chain/vectors.json")).unwrap();
    assert!(vectors.len() >= 3);
    let mut verifier = Verifier::new();
    let mut prev = GENESIS_HASH;
    for v in &vectors {
        assert_eq!(
            canonical_json(&v.payload),
            v.payload_canonical,
            "seq {}",
            v.seq
        );
        assert_eq!(hex(&prev), v.prev_hash, "seq {}", v.seq);
        let hash = record_hash(
            &prev,
            v.seq,
            &v.time,
            v.session.as_deref(),
            &v.kind,
            &v.payload_canonical,
        );
        let by_hand = blake3::hash(&documented_encoding(
            &prev,
            v.seq,
            &v.time,
            v.session.as_deref(),
            &v.kind,
            &v.payload_canonical,
        ));
        assert_eq!(
            hash,
            *by_hand.as_bytes(),
            "seq {}: encoding differs from the docs",
            v.seq
        );
        assert_eq!(hex(&hash), v.hash, "seq {}: golden hash", v.seq);
        verifier
            .push(&RecordRef {
                seq: v.seq,
                time: &v.time,
                session: v.session.as_deref(),
                kind: &v.kind,
                payload: &v.payload_canonical,
                prev_hash: &prev,
                hash: &hash,
            })
            .unwrap();
        prev = hash;
    }
    assert_eq!(verifier.records(), vectors.len() as u64);
}

/// A stored record: seq, time, session, kind, payload, prev_hash, hash.
type Row = (
    u64,
    String,
    Option<String>,
    String,
    String,
    [u8; 32],
    [u8; 32],
);

/// A chain of `n` records built in memory.
fn chain(n: u64) -> Vec<Row> {
    let mut prev = GENESIS_HASH;
    (1..=n)
        .map(|seq| {
            let time = format!("2026-11-21T06:00:{:02}.000000000Z", seq % 60);
            let session = (seq % 2 == 0).then(|| format!("s{seq}"));
            let kind = "action_attempted".to_owned();
            let payload = canonical_json(&json!({"n": seq}));
            let hash = record_hash(&prev, seq, &time, session.as_deref(), &kind, &payload);
            let row = (seq, time, session, kind, payload, prev, hash);
            prev = hash;
            row
        })
        .collect()
}

fn verify(rows: &[Row]) -> Result<u64, Problem> {
    let mut v = Verifier::new();
    for (seq, time, session, kind, payload, prev, hash) in rows {
        v.push(&RecordRef {
            seq: *seq,
            time,
            session: session.as_deref(),
            kind,
            payload,
            prev_hash: prev,
            hash,
        })?;
    }
    Ok(v.records())
}

#[test]
fn an_intact_chain_verifies() {
    assert_eq!(verify(&chain(10)), Ok(10));
    assert_eq!(verify(&[]), Ok(0));
}

#[test]
fn a_changed_payload_is_named() {
    let mut rows = chain(10);
    rows[4].4 = canonical_json(&json!({"n": 500}));
    assert_eq!(verify(&rows), Err(Problem::Changed { seq: 5 }));
}

#[test]
fn a_changed_hash_is_named() {
    let mut rows = chain(10);
    rows[9].6[0] ^= 1;
    assert_eq!(verify(&rows), Err(Problem::Changed { seq: 10 }));
}

#[test]
fn a_removed_record_is_named() {
    let mut rows = chain(10);
    rows.remove(3);
    let p = verify(&rows).unwrap_err();
    assert_eq!(p, Problem::Removed { seq: 4, next: 5 });
    assert_eq!(
        p.to_string(),
        "record 4 was removed: record 5 follows record 3"
    );
    rows.remove(0);
    assert_eq!(
        verify(&rows).unwrap_err().to_string(),
        "record 1 was removed: the ledger starts at record 2"
    );
}

#[test]
fn a_repeated_or_backwards_seq_is_reordered() {
    let rows = chain(10);
    let mut repeated = rows.clone();
    repeated.insert(5, rows[4].clone());
    assert_eq!(
        verify(&repeated),
        Err(Problem::Reordered { seq: 5, after: 5 })
    );
    let mut swapped = rows.clone();
    swapped.swap(2, 3);
    assert_eq!(verify(&swapped), Err(Problem::Removed { seq: 3, next: 4 }));
}

#[test]
fn swapped_seq_numbers_break_the_chain_at_the_first() {
    let mut rows = chain(10);
    // Records 3 and 4 exchange their sequence numbers (rows stay in seq order).
    rows.swap(2, 3);
    rows[2].0 = 3;
    rows[3].0 = 4;
    assert_eq!(verify(&rows), Err(Problem::ChainBroken { seq: 3 }));
}

#[test]
fn a_rewritten_record_with_a_recomputed_hash_is_found_at_the_next() {
    let mut rows = chain(10);
    let r = &mut rows[4];
    r.4 = canonical_json(&json!({"n": "rewritten"}));
    r.6 = record_hash(&r.5, r.0, &r.1, r.2.as_deref(), &r.3, &r.4);
    let p = verify(&rows).unwrap_err();
    assert_eq!(p, Problem::ChainBroken { seq: 6 });
    assert!(
        p.to_string()
            .starts_with("chain broken at record 6: its prev_hash is not the hash of record 5")
    );
}

#[test]
fn the_first_record_must_start_from_genesis() {
    let mut rows = chain(3);
    let r = &mut rows[0];
    r.5 = [7; 32];
    r.6 = record_hash(&r.5, r.0, &r.1, r.2.as_deref(), &r.3, &r.4);
    assert_eq!(verify(&rows), Err(Problem::ChainBroken { seq: 1 }));
}

#[test]
fn the_verifier_keeps_its_first_problem() {
    let mut rows = chain(5);
    rows[1].4 = "{}".to_owned();
    let mut v = Verifier::new();
    let mut problems = Vec::new();
    for (seq, time, session, kind, payload, prev, hash) in &rows {
        let r = RecordRef {
            seq: *seq,
            time,
            session: session.as_deref(),
            kind,
            payload,
            prev_hash: prev,
            hash,
        };
        if let Err(p) = v.push(&r) {
            problems.push(p);
        }
    }
    assert_eq!(problems.len(), 4);
    assert!(problems.iter().all(|p| *p == Problem::Changed { seq: 2 }));
    assert_eq!(v.records(), 1);
    assert_eq!(v.head().map(|h| h.seq), Some(1));
}

#[test]
fn record_json_line_has_the_documented_shape() {
    let payload = json!({"tool": "fs.read", "args": {"path": "/ws/a"}});
    let mut r = Record {
        seq: 1,
        time: time::macros::datetime!(2026-11-21 06:00 UTC),
        session: Some("s-1".to_owned()),
        kind: RecordKind::ActionAttempted,
        payload,
        prev_hash: GENESIS_HASH,
        hash: [0; 32],
    };
    r.hash = r.compute_hash().unwrap();
    let line = r.to_json_line();
    assert!(line.starts_with(
        r#"{"seq":1,"time":"2026-11-21T06:00:00.000000000Z","session":"s-1","kind":"action_attempted","payload":{"args":{"path":"/ws/a"},"tool":"fs.read"},"prev_hash":"0000"#
    ), "{line}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["hash"], json!(hex(&r.hash)));
}

#[test]
fn a_json_line_reads_back_as_the_same_record() {
    let mut r = Record {
        seq: 7,
        time: time::macros::datetime!(2026-11-21 06:00:01.000000123 UTC),
        session: None,
        kind: RecordKind::ModelIntent,
        payload: json!({"tool": "fs.read", "n": [1, 2.5, -3], "s": "é\n\"", "z": null}),
        prev_hash: [0xab; 32],
        hash: [0; 32],
    };
    r.hash = r.compute_hash().unwrap();
    let back = Record::from_json_line(&r.to_json_line()).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.compute_hash().unwrap(), r.hash);

    let line = r.to_json_line();
    let bad = [
        ("{}", "not a ledger record"),
        ("[1]", "not a ledger record"),
        (
            &line.replace("\"seq\":7", "\"seq\":-7") as &str,
            "not a ledger record",
        ),
        (
            &line.replace("model_intent", "model_dreamt"),
            "unknown record kind `model_dreamt`",
        ),
        (
            &line.replace(".000000123Z", "Z"),
            "not a time in the ledger's format",
        ),
        (
            &line.replace(&hex(&[0xab; 32]), "abab"),
            "`prev_hash` is not 64 hex digits",
        ),
        (
            &line.replace(&hex(&[0xab; 32]), &"zz".repeat(32)),
            "`prev_hash` is not 64 hex digits",
        ),
        (&line.replacen("{", "{\"extra\":1,", 1), "unknown field"),
    ];
    for (text, want) in bad {
        let err = Record::from_json_line(text).unwrap_err().to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
}

proptest::proptest! {
    #[test]
    fn canonical_json_round_trips(s in "\\PC*", k in "[a-zA-Z0-9_é]{0,8}", n in proptest::num::i64::ANY, f in proptest::num::f64::NORMAL) {
        let v = json!({k.clone(): [s, n, f], "z": {k: null}});
        let once = canonical_json(&v);
        let back: serde_json::Value = serde_json::from_str(&once).unwrap();
        proptest::prop_assert_eq!(&back, &v);
        proptest::prop_assert_eq!(canonical_json(&back), once);
    }
}

#[test]
fn a_resumed_verifier_continues_after_a_head() {
    let rows = chain(10);
    let fifth = &rows[4];
    let mut v = Verifier::resume(Head {
        seq: fifth.0,
        hash: fifth.6,
    });
    assert_eq!(v.next_seq(), 6);
    for (seq, time, session, kind, payload, prev, hash) in &rows[5..] {
        v.push(&RecordRef {
            seq: *seq,
            time,
            session: session.as_deref(),
            kind,
            payload,
            prev_hash: prev,
            hash,
        })
        .unwrap();
    }
    assert_eq!(v.records(), 5);
    assert_eq!(v.head().map(|h| (h.seq, h.hash)), Some((10, rows[9].6)));
    let mut wrong = Verifier::resume(Head {
        seq: 5,
        hash: [1; 32],
    });
    let r = &rows[5];
    let p = wrong.push(&RecordRef {
        seq: r.0,
        time: &r.1,
        session: r.2.as_deref(),
        kind: &r.3,
        payload: &r.4,
        prev_hash: &r.5,
        hash: &r.6,
    });
    assert_eq!(p, Err(Problem::ChainBroken { seq: 6 }));
}
