//! Issue 13, point 1: the values a used grant remembers become trusted text of the request's
//! session — recorded first, then in force — and of no other session.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use std::sync::Mutex;

use serde_json::json;
use time::OffsetDateTime;
use warden_approval::{Approver, NewApproval};
use warden_core::record::RecordFuture;
use warden_core::{RecordError, TrustedSource};
use warden_session::StateDb;

use super::*;

/// A recorder that keeps what it is given, or fails when told to.
#[derive(Debug, Default)]
struct Memory {
    records: Mutex<Vec<NewRecord>>,
    failing: bool,
}

impl Recorder for Memory {
    fn append_batch(&self, records: Vec<NewRecord>) -> RecordFuture<'_> {
        Box::pin(async move {
            if self.failing {
                return Err(RecordError {
                    message: "the disk is full".to_owned(),
                    source: None,
                });
            }
            self.records.lock().unwrap().extend(records);
            Ok(())
        })
    }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// A request of `session` for a transfer to `iban`, granted by bob (`remember` as given) on a
/// rule that allows remembering `iban`.
fn granted(session: &str, iban: &str, remember: bool) -> ApprovalRequest {
    let mut req = ApprovalRequest::new(NewApproval {
        id: "ap-1".into(),
        action: "act-1".into(),
        session: session.into(),
        agent: "agent-1".into(),
        principal: "alice".into(),
        task: "pay my bills".into(),
        tool: "bank.transfer".into(),
        arguments: json!({ "iban": iban, "amount": 120 }),
        reason: "rule".into(),
        why: "approval by rule `payee-planted`".into(),
        rules: Vec::new(),
        authority_for: vec!["payee-planted".into()],
        approvers: vec!["bob".into()],
        quorum: 1,
        charter: "blake3:test".into(),
        requested_at: t0(),
        deadline: t0() + time::Duration::minutes(15),
        model_turns: Vec::new(),
    })
    .with_context(vec!["iban".into()], Vec::new(), Vec::new());
    let bob = Approver {
        principal: Some("bob"),
        has_authority: true,
        channel: "api",
        target: None,
        credential: None,
    };
    req.approve_remembering(&bob, true, None, remember, t0())
        .unwrap();
    req
}

async fn two_sessions(dir: &std::path::Path) -> (SessionStore, Arc<Session>, Arc<Session>) {
    let db = StateDb::open(dir).await.unwrap();
    let sessions = SessionStore::open(&db).await.unwrap();
    let hour = std::time::Duration::from_secs(3600);
    let (_, a) = sessions
        .open_session("agent-1", "alice", "pay my bills", hour, t0())
        .await
        .unwrap();
    let (_, b) = sessions
        .open_session("agent-1", "alice", "pay my bills", hour, t0())
        .await
        .unwrap();
    (sessions, a, b)
}

const IBAN: &str = "NL91ABNA0417164300";

fn trusts(session: &Session, text: &str) -> Option<TrustedSource> {
    session
        .provenance()
        .trusted()
        .find(|(t, _)| *t == text)
        .map(|(_, s)| s.clone())
}

#[tokio::test]
async fn a_remembered_value_is_recorded_then_trusted_in_its_own_session_only() {
    let dir = tempfile::tempdir().unwrap();
    let (sessions, a, b) = two_sessions(dir.path()).await;
    let ledger = Memory::default();
    let req = granted(&a.id, IBAN, true);
    assert_eq!(trust_remembered(&ledger, &sessions, &a, &req).await, 1);
    let records = ledger.records.lock().unwrap().clone();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kind, RecordKind::TrustAdded);
    assert_eq!(records[0].session.as_deref(), Some(a.id.as_str()));
    assert_eq!(
        records[0].payload,
        json!({
            "session": a.id,
            "source": { "kind": "approval", "approval": "ap-1", "argument": "iban" },
            "text": IBAN,
        })
    );
    assert_eq!(
        trusts(&a, IBAN),
        Some(TrustedSource::Approval {
            approval: "ap-1".into(),
            argument: "iban".into()
        })
    );
    // The value is now stated in the session's trusted text (what `in_task` judges) ...
    assert!(a.provenance().trace(IBAN).is_stated(), "stated in A");
    // ... and never in another session, even of the same agent and principal.
    assert!(!b.provenance().trace(IBAN).is_stated(), "not stated in B");
    assert_eq!(trusts(&b, IBAN), None);
    assert!(!b.provenance().trusted_text().contains(IBAN));
    // A grant of session A presented with session B trusts nothing anywhere.
    let ledger = Memory::default();
    assert_eq!(trust_remembered(&ledger, &sessions, &b, &req).await, 0);
    assert!(ledger.records.lock().unwrap().is_empty());
    assert_eq!(trusts(&b, IBAN), None);
}

#[tokio::test]
async fn nothing_is_trusted_without_remember_or_when_it_cannot_be_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (sessions, a, _) = two_sessions(dir.path()).await;
    let ledger = Memory::default();
    assert_eq!(
        trust_remembered(&ledger, &sessions, &a, &granted(&a.id, IBAN, false)).await,
        0
    );
    assert!(ledger.records.lock().unwrap().is_empty());
    // Recorded first: a ledger that cannot record it leaves it untrusted (fail closed).
    let failing = Memory {
        failing: true,
        ..Memory::default()
    };
    assert_eq!(
        trust_remembered(&failing, &sessions, &a, &granted(&a.id, IBAN, true)).await,
        0
    );
    assert_eq!(trusts(&a, IBAN), None);
}
