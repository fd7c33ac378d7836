//! Helpers shared by the integration tests.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use warden_audit::{Ledger, LedgerConfig, LedgerReader, NewRecord, RecordKind, VerifyReport};
use warden_core::SystemClock;

pub(crate) async fn open(dir: &Path) -> Ledger {
    open_with(dir, LedgerConfig::default()).await
}

pub(crate) async fn open_with(dir: &Path, config: LedgerConfig) -> Ledger {
    Ledger::open(dir, Arc::new(SystemClock), config)
        .await
        .unwrap()
}

pub(crate) fn record(n: u64) -> NewRecord {
    NewRecord {
        session: Some(format!("s-{}", n % 3)),
        kind: RecordKind::ActionAttempted,
        payload: json!({"tool": "fs.read_text_file", "args": {"path": format!("/ws/{n}")}}),
    }
}

/// Appends `n` records, one after the other.
pub(crate) async fn fill(ledger: &Ledger, n: u64) {
    for i in 1..=n {
        ledger.append(record(i)).await.unwrap();
    }
}

pub(crate) async fn verify(dir: &Path) -> VerifyReport {
    let reader = LedgerReader::open(dir).await.unwrap();
    let report = reader.verify().await.unwrap();
    reader.close().await;
    report
}

/// A separate read-write connection to the ledger's database (created if missing), for
/// tampering and for making the writer fail.
pub(crate) fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("ledger.db")).unwrap()
}

pub(crate) async fn exec(dir: &Path, sql: &'static str) {
    let conn = raw(dir);
    conn.execute_batch(sql).unwrap();
    conn.close().unwrap();
}
