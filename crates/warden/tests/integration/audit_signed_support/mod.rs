//! Shared by the `audit_signed*` tests: a ledger written through the library with real
//! signed checkpoints, the real binary, and the tamperings an attacker would try.

use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::json;
use warden_audit::chain::{Record, canonical_json, format_time};
use warden_audit::checkpoint::{Checkpoint, SigningKey, default_origin};
use warden_audit::{Ledger, LedgerConfig, LedgerReader, NewRecord, RecordKind};
use warden_core::SystemClock;

pub(crate) fn warden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .env_remove("WARDEN_DATA")
        .output()
        .expect("run warden")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A closed ledger as warden writes it (record 1 `charter_loaded`), grown by rounds of 100
/// records and a signed checkpoint record, with the key and the note of its whole tree (the
/// anchor an auditor keeps elsewhere).
pub(crate) struct Signed {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) key: SigningKey,
    pub(crate) anchor: String,
}

impl Signed {
    pub(crate) fn new(rounds: u64) -> Signed {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate("warden-test").unwrap();
        let mut s = Signed {
            dir,
            key,
            anchor: String::new(),
        };
        s.grow(rounds);
        s
    }

    pub(crate) fn grow(&mut self, rounds: u64) {
        block_on(async {
            let ledger = Ledger::open(
                self.dir.path(),
                Arc::new(SystemClock),
                LedgerConfig::default(),
            )
            .await
            .unwrap();
            if *ledger.watch_head().borrow() == 0 {
                ledger
                    .append(NewRecord {
                        session: None,
                        kind: RecordKind::CharterLoaded,
                        payload: json!({"charter": "blake3:test"}),
                    })
                    .await
                    .unwrap();
            }
            for _ in 0..rounds {
                for _ in 0..100 {
                    let n = *ledger.watch_head().borrow() + 1;
                    ledger
                        .append(NewRecord {
                            session: Some("s-1".to_owned()),
                            kind: RecordKind::ActionAttempted,
                            payload: json!({"tool": "fs.read_text_file", "args": {"path": format!("/ws/{n}")}}),
                        })
                        .await
                        .unwrap();
                }
                let note = self.sign(&ledger);
                let cp = Checkpoint::open(&note, &self.key.verifier()).unwrap();
                ledger
                    .append(NewRecord {
                        session: None,
                        kind: RecordKind::CheckpointSigned,
                        payload: cp.record_payload(&note),
                    })
                    .await
                    .unwrap();
            }
            self.anchor = self.sign(&ledger);
            ledger.shutdown().await.unwrap();
        });
    }

    pub(crate) fn sign(&self, ledger: &Ledger) -> String {
        let head = *ledger.watch_tree().borrow();
        self.key.sign(&Checkpoint {
            origin: default_origin(ledger.id()),
            size: head.size,
            root: head.root,
            time: None,
        })
    }

    pub(crate) fn data(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    pub(crate) fn vkey(&self) -> String {
        self.key.verifier().to_string()
    }

    /// The anchor note in a file.
    pub(crate) fn anchor_file(&self) -> String {
        let path = self
            .dir
            .path()
            .join(format!("anchor-{}.note", self.anchor.len()));
        std::fs::write(&path, &self.anchor).unwrap();
        path.to_str().unwrap().to_owned()
    }

    pub(crate) fn sql(&self, sql: &str) {
        rusqlite::Connection::open(self.dir.path().join("ledger.db"))
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    pub(crate) fn records(&self) -> Vec<Record> {
        block_on(async {
            let reader = LedgerReader::open(self.dir.path()).await.unwrap();
            let all = reader.range(1, 100_000).await.unwrap();
            reader.close().await;
            all
        })
    }

    /// Changes record `seq` and recomputes the chain from it on, as a forger would.
    pub(crate) fn rewrite(&self, seq: usize) {
        let mut all = self.records();
        all[seq - 1].payload = json!({"tool": "fs.read_text_file", "args": {"path": "/innocent"}});
        for i in seq - 1..all.len() {
            all[i].prev_hash = all[i - 1].hash;
            all[i].hash = all[i].compute_hash().unwrap();
        }
        let conn = rusqlite::Connection::open(self.dir.path().join("ledger.db")).unwrap();
        for r in &all[seq - 1..] {
            conn.execute(
                "UPDATE records SET payload = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
                rusqlite::params![
                    r.seq as i64,
                    canonical_json(&r.payload),
                    r.prev_hash.to_vec(),
                    r.hash.to_vec()
                ],
            )
            .unwrap();
        }
    }

    /// Appends a forged record with a correct chain hash.
    pub(crate) fn forge_append(&self) {
        self.forge(
            RecordKind::ActionAttempted,
            json!({"tool": "fs.read_text_file", "args": {"path": "/alibi"}}),
        );
    }

    /// Appends a record of `kind` with `payload` and a correct chain hash, as a forger with
    /// write access to the file (but not the signing key) would.
    pub(crate) fn forge(&self, kind: RecordKind, payload: serde_json::Value) {
        let all = self.records();
        let last = all.last().unwrap();
        let mut forged = Record {
            seq: last.seq + 1,
            time: last.time,
            session: None,
            kind,
            payload,
            prev_hash: last.hash,
            hash: [0; 32],
        };
        forged.hash = forged.compute_hash().unwrap();
        rusqlite::Connection::open(self.dir.path().join("ledger.db"))
            .unwrap()
            .execute(
                "INSERT INTO records (seq, time, session, kind, payload, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    forged.seq as i64,
                    format_time(forged.time).unwrap(),
                    forged.session,
                    forged.kind.as_str(),
                    canonical_json(&forged.payload),
                    forged.prev_hash.to_vec(),
                    forged.hash.to_vec()
                ],
            )
            .unwrap();
    }

    /// Every record as an export line.
    pub(crate) fn export_lines(&self) -> Vec<String> {
        self.records()
            .iter()
            .map(|r| r.to_json_line() + "\n")
            .collect()
    }
}
