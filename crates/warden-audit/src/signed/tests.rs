use proptest::prelude::*;
use serde_json::json;
use time::OffsetDateTime;

use super::export::ExportReader;
use super::*;
use crate::chain::{GENESIS_HASH, Record, RecordKind, RecordRef, canonical_json, format_time, hex};
use crate::merkle::{Frontier, leaf_hash};

/// A stand-in for an Ed25519 verifier key: the note's last line names the key that "signed"
/// it. The checker's logic does not depend on how a note is signed; the integration tests
/// use real keys.
struct TestKey(&'static str);

impl OpenNote for TestKey {
    fn open_note(&self, note: &str) -> Result<SignedHead, String> {
        let (body, signer) = note.split_once("\n\u{2014} ").ok_or("no signature line")?;
        if signer.trim_end() != self.0 {
            return Err("no signature by this key".to_owned());
        }
        let mut lines = body.lines();
        let origin = lines.next().ok_or("no origin")?.to_owned();
        let size = lines
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or("bad size")?;
        let root_hex = lines.next().ok_or("no root")?;
        let mut root = [0u8; 32];
        for (i, b) in root.iter_mut().enumerate() {
            *b = u8::from_str_radix(root_hex.get(2 * i..2 * i + 2).ok_or("short")?, 16)
                .map_err(|e| e.to_string())?;
        }
        Ok(SignedHead { origin, size, root })
    }
}

const ORIGIN: &str = "warden/ledger/test";

fn note(key: &str, origin: &str, size: u64, root: &[u8; 32]) -> String {
    format!("{origin}\n{size}\n{}\n\n\u{2014} {key}\n", hex(root))
}

/// A ledger built in memory with real record hashes and (test-)signed checkpoints.
#[derive(Clone, Default)]
struct Built {
    records: Vec<Record>,
    tree: Frontier,
}

impl Built {
    fn append(&mut self, kind: RecordKind, payload: serde_json::Value) {
        let seq = self.records.len() as u64 + 1;
        let mut r = Record {
            seq,
            time: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(seq as i64),
            session: seq.is_multiple_of(2).then(|| format!("s-{}", seq % 5)),
            kind,
            payload,
            prev_hash: self.records.last().map_or(GENESIS_HASH, |r| r.hash),
            hash: [0; 32],
        };
        r.hash = r.compute_hash().unwrap();
        self.tree.push(leaf_hash(&r.hash), |_, _, _| {});
        self.records.push(r);
    }

    fn plain(&mut self, n: u64) {
        for _ in 0..n {
            let seq = self.records.len() + 1;
            self.append(
                RecordKind::ActionAttempted,
                json!({"tool": "fs.read", "n": seq}),
            );
        }
    }

    /// A note over the tree as it is now.
    fn sign(&self, key: &str) -> String {
        note(key, ORIGIN, self.tree.size(), &self.tree.root())
    }

    /// Appends a checkpoint record of the tree as it is now.
    fn checkpoint(&mut self, key: &str) {
        let n = self.sign(key);
        let payload = json!({"note": n, "origin": ORIGIN, "size": self.tree.size(), "root": hex(&self.tree.root())});
        self.append(RecordKind::CheckpointSigned, payload);
    }

    /// Recomputes every hash from record `from` on (as a forger would).
    fn rechain(&mut self, from: u64) {
        for i in (from as usize - 1)..self.records.len() {
            let prev = if i == 0 {
                GENESIS_HASH
            } else {
                self.records[i - 1].hash
            };
            self.records[i].prev_hash = prev;
            self.records[i].hash = self.records[i].compute_hash().unwrap();
        }
    }
}

fn check(records: &[Record], anchor: Option<&str>) -> Report {
    let key = TestKey("k");
    let mut checker = Checker::new(&key, anchor);
    for r in records {
        let time = format_time(r.time).unwrap();
        let payload = canonical_json(&r.payload);
        let pushed = checker.push(&RecordRef {
            seq: r.seq,
            time: &time,
            session: r.session.as_deref(),
            kind: r.kind.as_str(),
            payload: &payload,
            prev_hash: &r.prev_hash,
            hash: &r.hash,
        });
        if pushed.is_err() {
            break;
        }
    }
    checker.finish()
}

/// 100 records with a checkpoint after every 20 (the checkpoint records are 21, 42, 63, 84
/// and 105), then 5 more records and a last checkpoint (record 111, size 110).
fn ledger() -> Built {
    let mut b = Built::default();
    for _ in 0..5 {
        b.plain(20);
        b.checkpoint("k");
    }
    b.plain(5);
    b.checkpoint("k");
    b
}

#[test]
fn an_intact_ledger_verifies_with_every_checkpoint() {
    let b = ledger();
    let report = check(&b.records, None);
    assert_eq!(report.finding, None);
    assert_eq!(report.records, 111);
    assert_eq!(report.checkpoints, 6);
    assert_eq!(report.signed, 110);
    assert_eq!(report.origin.as_deref(), Some(ORIGIN));
    // With an anchor of the whole ledger too.
    let anchor = b.sign("k");
    let report = check(&b.records, Some(&anchor));
    assert_eq!((report.finding, report.signed), (None, 111));
}

#[test]
fn chain_problems_are_named_as_before() {
    let mut b = ledger();
    b.records[4].payload = json!({"tool": "fs.delete"});
    assert_eq!(
        check(&b.records, None).finding,
        Some(Finding::Changed { seq: 5 })
    );
    let mut b = ledger();
    b.records.remove(6);
    assert_eq!(
        check(&b.records, None).finding,
        Some(Finding::Removed { seq: 7, next: 8 })
    );
}

#[test]
fn a_recomputed_chain_is_named_as_rewritten_from_the_last_matching_checkpoint() {
    let mut b = ledger();
    b.records[49].payload = json!({"forged": true});
    b.rechain(50);
    let report = check(&b.records, None);
    // Record 42 carries the checkpoint of 41 records; the next, record 63, signs 62.
    assert_eq!(
        report.finding,
        Some(Finding::Rewritten {
            from: 42,
            through: 62,
            checkpoint_seq: Some(63)
        })
    );
    assert_eq!(report.finding.as_ref().unwrap().first_record(), Some(42));
}

#[test]
fn a_forged_append_with_correct_hashes_is_an_unsigned_tail() {
    let mut b = ledger();
    b.plain(3);
    let report = check(&b.records, None);
    assert_eq!(
        report.finding,
        Some(Finding::UnsignedTail {
            from: 112,
            through: 114
        })
    );
    // A ledger ending on its checkpoint record has none.
    assert_eq!(check(&ledger().records, None).finding, None);
}

#[test]
fn a_ledger_without_checkpoints_is_all_unsigned() {
    let mut b = Built::default();
    b.plain(4);
    assert_eq!(
        check(&b.records, None).finding,
        Some(Finding::UnsignedTail {
            from: 1,
            through: 4
        })
    );
}

#[test]
fn below_the_anchor_a_ledger_is_truncated_rolled_back_or_emptied() {
    let full = ledger();
    let anchor = full.sign("k");
    let cut = &full.records[..100];
    assert_eq!(
        check(cut, Some(&anchor)).finding,
        Some(Finding::Truncated {
            records: 100,
            checkpoint: 111
        })
    );
    // Ends on record 84, the checkpoint of 83 records.
    assert_eq!(
        check(&full.records[..84], Some(&anchor)).finding,
        Some(Finding::RolledBack {
            records: 84,
            older: 83,
            checkpoint: 111
        })
    );
    assert_eq!(
        check(&[], Some(&anchor)).finding,
        Some(Finding::Emptied { checkpoint: 111 })
    );
}

#[test]
fn an_anchor_the_ledger_does_not_match_is_a_rewrite() {
    let mut b = ledger();
    b.plain(10);
    let anchor = b.sign("k");
    // The tail after the last checkpoint (records 112..=121) replaced by another.
    let mut other = ledger();
    other.append(RecordKind::ActionAttempted, json!({"other": 1}));
    other.plain(9);
    assert_eq!(
        check(&other.records, Some(&anchor)).finding,
        Some(Finding::Rewritten {
            from: 111,
            through: 121,
            checkpoint_seq: None
        })
    );
}

#[test]
fn bad_checkpoints_are_named() {
    // Signed by another key.
    let mut b = ledger();
    b.checkpoint("other");
    assert!(matches!(
        check(&b.records, None).finding,
        Some(Finding::BadCheckpoint { seq: Some(112), reason }) if reason.contains("does not verify")
    ));
    // Payload fields that disagree with the note.
    let mut b = ledger();
    let n = b.sign("k");
    b.append(
        RecordKind::CheckpointSigned,
        json!({"note": n, "origin": ORIGIN, "size": 3, "root": hex(&b.tree.root())}),
    );
    assert!(matches!(
        check(&b.records, None).finding,
        Some(Finding::BadCheckpoint { seq: Some(112), reason }) if reason.contains("size")
    ));
    // Another origin than the anchor's.
    let mut b = ledger();
    let size = b.tree.size();
    let n = note("k", "elsewhere", size, &b.tree.root());
    b.append(
        RecordKind::CheckpointSigned,
        json!({"note": n, "origin": "elsewhere", "size": size, "root": hex(&b.tree.root())}),
    );
    assert!(matches!(
        check(&b.records, None).finding,
        Some(Finding::BadCheckpoint { seq: Some(112), reason }) if reason.contains("origin")
    ));
    // Not a checkpoint payload at all.
    let mut b = ledger();
    b.append(RecordKind::CheckpointSigned, json!({"note": 1}));
    assert!(matches!(
        check(&b.records, None).finding,
        Some(Finding::BadCheckpoint { seq: Some(112), .. })
    ));
    // An anchor by another key.
    let b = ledger();
    let anchor = b.sign("other");
    assert!(matches!(
        check(&b.records, Some(&anchor)).finding,
        Some(Finding::BadCheckpoint { seq: None, .. })
    ));
}

#[test]
fn a_checkpoint_cannot_cover_itself() {
    let mut b = ledger();
    let size = b.tree.size() + 1;
    let n = note("k", ORIGIN, size, &[7; 32]);
    b.append(
        RecordKind::CheckpointSigned,
        json!({"note": n, "origin": ORIGIN, "size": size, "root": hex(&[7; 32])}),
    );
    assert!(matches!(
        check(&b.records, None).finding,
        Some(Finding::BadCheckpoint { seq: Some(112), reason }) if reason.contains("come before it")
    ));
}

#[test]
fn a_checkpoint_signed_long_before_its_record_is_checked_within_the_window() {
    let mut b = Built::default();
    b.plain(10);
    let n = b.sign("k");
    let (size, root) = (b.tree.size(), b.tree.root());
    b.plain(1000);
    b.append(
        RecordKind::CheckpointSigned,
        json!({"note": n, "origin": ORIGIN, "size": size, "root": hex(&root)}),
    );
    b.checkpoint("k");
    assert_eq!(check(&b.records, None).finding, None);
}

#[test]
fn the_history_gives_past_roots_within_its_window() {
    let mut history = history::History::new(Frontier::new());
    let mut roots = vec![crate::merkle::empty_root()];
    let mut tree = Frontier::new();
    for i in 0..3000u64 {
        let leaf = leaf_hash(&i.to_be_bytes());
        history.push(leaf);
        tree.push(leaf, |_, _, _| {});
        roots.push(tree.root());
    }
    for size in [0, 1, 255, 256, 257, 1000, 2999, 3000] {
        assert_eq!(history.root_at(size), Some(roots[size as usize]), "{size}");
    }
    assert_eq!(history.root_at(3001), None);
}

#[test]
fn an_export_skips_exact_repeats_and_names_anything_else() {
    let b = ledger();
    let key = TestKey("k");
    let feed = |records: &[&Record]| {
        let mut reader = ExportReader::new(Checker::new(&key, None));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(export::export_name(1));
        let text: String = records.iter().map(|r| r.to_json_line() + "\n").collect();
        std::fs::write(&file, text).unwrap();
        reader.read_file(&file).unwrap();
        reader.checker.finish().finding
    };
    let all: Vec<&Record> = b.records.iter().collect();
    assert_eq!(feed(&all), None);
    // A resend of records 50..=60 after 60, then the rest.
    let mut resent: Vec<&Record> = b.records[..60].iter().collect();
    resent.extend(&b.records[49..]);
    assert_eq!(feed(&resent), None);
    // A "repeat" that is not the record: named.
    let mut other = b.records[49].clone();
    other.payload = json!({"forged": 1});
    let mut forged: Vec<&Record> = b.records[..60].iter().collect();
    forged.push(&other);
    forged.extend(&b.records[60..]);
    assert_eq!(
        feed(&forged),
        Some(Finding::Reordered { seq: 50, after: 60 })
    );
}

#[test]
fn an_export_line_that_is_not_a_record_is_malformed() {
    let key = TestKey("k");
    let dir = tempfile::tempdir().unwrap();
    let b = ledger();
    for (text, want) in [
        (b.records[0].to_json_line() + "\nnot json\n", "line 2"),
        (b.records[0].to_json_line(), "no newline"),
    ] {
        let file = dir.path().join(export::export_name(1));
        std::fs::write(&file, text).unwrap();
        let mut reader = ExportReader::new(Checker::new(&key, None));
        reader.read_file(&file).unwrap();
        match reader.checker.finish().finding {
            Some(Finding::Malformed { seq: 2, detail }) if detail.contains(want) => {}
            Some(Finding::Malformed { seq: 1, detail }) if detail.contains(want) => {}
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[test]
fn export_names_are_twenty_digits() {
    assert_eq!(export::export_name(1), "ledger-00000000000000000001.jsonl");
    assert!(export::is_export_name("ledger-00000000000000000001.jsonl"));
    assert!(!export::is_export_name("ledger-1.jsonl"));
    assert!(!export::is_export_name("ledger-0000000000000000000a.jsonl"));
}

/// A random ledger: `n` plain records with a checkpoint after every `every`, ending on a
/// checkpoint record.
fn random_ledger(n: u64, every: u64) -> Built {
    let mut b = Built::default();
    let mut left = n;
    while left > 0 {
        let take = every.min(left);
        b.plain(take);
        b.checkpoint("k");
        left -= take;
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_tamperings_are_named_with_their_first_record(
        n in 1u64..300,
        every in 1u64..40,
        kind in 0u8..6,
        at in any::<proptest::sample::Index>(),
    ) {
        let full = random_ledger(n, every);
        let len = full.records.len();
        let anchor = full.sign("k");
        let i = at.index(len); // 0-based position of the tampered record
        let seq = i as u64 + 1;
        let mut b = full.clone();
        let got = match kind {
            0 => {
                b.records[i].payload = json!({"edited": true});
                let f = check(&b.records, Some(&anchor)).finding.unwrap();
                prop_assert_eq!(f.name(), "changed");
                f
            }
            1 => {
                b.records[i].payload = json!({"edited": true});
                b.rechain(seq);
                let f = check(&b.records, Some(&anchor)).finding.unwrap();
                prop_assert!(f.name() == "rewritten" || f.name() == "bad_checkpoint", "{f:?}");
                if let Finding::Rewritten { from, through, .. } = &f {
                    prop_assert!(*from <= seq && seq <= *through, "{f:?}");
                }
                f
            }
            2 => {
                b.records.truncate(i);
                let f = check(&b.records, Some(&anchor)).finding.unwrap();
                let want = if i == 0 { "emptied" } else if b.records[i - 1].kind == RecordKind::CheckpointSigned { "rolled_back" } else { "truncated" };
                prop_assert_eq!(f.name(), want);
                prop_assert_eq!(f.first_record(), Some(seq));
                f
            }
            3 => {
                b.plain(1 + (i as u64 % 3));
                let f = check(&b.records, Some(&anchor)).finding.unwrap();
                prop_assert_eq!(f.name(), "unsigned_tail");
                prop_assert_eq!(f.first_record(), Some(len as u64 + 1));
                f
            }
            4 => {
                b.records.remove(i);
                let f = check(&b.records, Some(&anchor)).finding.unwrap();
                if i + 1 == len {
                    prop_assert!(f.name() == "truncated", "{f:?}");
                } else {
                    prop_assert_eq!(f.name(), "removed");
                }
                prop_assert_eq!(f.first_record(), Some(seq));
                f
            }
            _ => {
                prop_assume!(i + 1 < len);
                b.records.swap(i, i + 1);
                let f = check(&b.records, Some(&anchor)).finding.unwrap();
                prop_assert_eq!(f.name(), "removed");
                prop_assert_eq!(f.first_record(), Some(seq));
                f
            }
        };
        prop_assert!(!got.to_string().is_empty());
    }
}
