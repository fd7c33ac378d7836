//! The reload's re-decision through the workflow, against a real store: recorded before it
//! takes effect, nothing changed when it cannot be recorded, waiters woken, and races with
//! an approver or a use settled by the request's lock (exactly one wins).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use time::OffsetDateTime;
use warden_core::record::RecordFuture;
use warden_core::{ManualClock, NewRecord, RecordError, RecordKind, Recorder};

use crate::workflow::{Choice, Decider, NewDecision, RedecideError};
use crate::{
    ActionHash, ApprovalRequest, ApprovalStore, Approvals, Entry, NewApproval, Redecide,
    RedecideRefusal, Signer, Status, UseRefusal,
};

const CHARTER: &str = r#"version: 1
identity: { id: agent-1, name: Agent, purpose: tests, serves: the test suite }
inventory:
  servers:
    - { id: echo, url: "http://127.0.0.1:9/mcp", tools: [echo] }
actions:
  rules:
    - { id: echo-ask, tool: echo.echo, tier: approval }
authority:
  roles:
    - { id: approver, approve: [default, "echo-*"] }
  principals:
    - { id: alice, roles: [approver] }
    - { id: bob, roles: [approver] }
"#;

const OLD: &str = "blake3:the-replaced-charter";

#[derive(Debug, Default)]
struct Memory {
    records: Mutex<Vec<NewRecord>>,
    failing: AtomicBool,
}

impl Recorder for Memory {
    fn append_batch(&self, records: Vec<NewRecord>) -> RecordFuture<'_> {
        Box::pin(async move {
            if self.failing.load(Ordering::SeqCst) {
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

impl Memory {
    fn kinds(&self) -> Vec<RecordKind> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.kind)
            .collect()
    }
}

struct Fixture {
    approvals: Arc<Approvals>,
    ledger: Arc<Memory>,
    new: String,
    _dir: tempfile::TempDir,
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteConnectOptions::new()
        .filename(dir.path().join("state.db"))
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .unwrap();
    let compiled = warden_charter::compile(&[warden_charter::Source::new("c.yaml", CHARTER)])
        .unwrap()
        .charter;
    let new = compiled.hash.to_string();
    let cell = Arc::new(warden_charter::CharterCell::from(compiled));
    let ledger = Arc::new(Memory::default());
    let approvals = Arc::new(Approvals::new(
        ApprovalStore::open(pool, t0()).await.unwrap(),
        Signer::new(b"an approval signing secret of 32+ bytes").unwrap(),
        cell,
        ledger.clone(),
        Arc::new(ManualClock::new(t0())),
        None,
        Duration::from_secs(10),
    ));
    Fixture {
        approvals,
        ledger,
        new,
        _dir: dir,
    }
}

fn args() -> serde_json::Value {
    json!({ "text": "hi" })
}

fn hash() -> ActionHash {
    ActionHash::of("s-1", "echo.echo", &args())
}

async fn pending(f: &Fixture) -> Arc<Entry> {
    pending_as(f, "a-1").await
}

async fn pending_as(f: &Fixture, id: &str) -> Arc<Entry> {
    let req = ApprovalRequest::new(NewApproval {
        id: id.into(),
        action: "act-1".into(),
        session: "s-1".into(),
        agent: "agent-1".into(),
        principal: "alice".into(),
        task: "testing".into(),
        tool: "echo.echo".into(),
        arguments: args(),
        reason: "rule".into(),
        why: "approval by rule `echo-ask`".into(),
        rules: Vec::new(),
        authority_for: vec!["echo-ask".into()],
        approvers: vec!["bob".into()],
        quorum: 1,
        charter: OLD.to_owned(),
        requested_at: t0(),
        deadline: t0() + time::Duration::minutes(15),
        model_turns: Vec::new(),
    });
    f.approvals.create(req).await.unwrap()
}

fn decision(f: &Fixture, redecide: Redecide) -> NewDecision {
    let verdict = match redecide {
        Redecide::Void => "deny",
        Redecide::Release => "allow",
        Redecide::Keep { .. } => "ask",
    };
    NewDecision {
        from: OLD.to_owned(),
        charter: f.new.clone(),
        verdict,
        tier: "prohibited",
        why: format!("{verdict}: by the new charter"),
        redecide,
    }
}

fn bob() -> Decider<'static> {
    Decider {
        credential: "bob-token",
        principal: Some("bob"),
        channel: "api",
        target: None,
        credential_id: None,
    }
}

#[tokio::test]
async fn a_void_is_recorded_then_stored_then_seen_by_the_waiter() {
    let f = fixture().await;
    let entry = pending(&f).await;
    let mut waiter = entry.subscribe();
    let outcome = f
        .approvals
        .redecide(&entry, decision(&f, Redecide::Void))
        .await
        .unwrap();
    assert_eq!(outcome, "voided");
    waiter.changed().await.unwrap();
    assert_eq!(*waiter.borrow(), Status::Voided);
    let records = f.ledger.records.lock().unwrap().clone();
    let redecided = records
        .iter()
        .find(|r| r.kind == RecordKind::ApprovalRedecided)
        .unwrap();
    assert_eq!(redecided.payload["outcome"], "voided");
    assert_eq!(redecided.payload["charter"], f.new.as_str());
    assert_eq!(redecided.payload["previous"], OLD);
    assert_eq!(redecided.payload["was"], "ask");
    assert_eq!(redecided.payload["now"], "deny");
    assert_eq!(redecided.payload["status"], "pending");
    // Out of memory (a retry decides anew), in the store as voided.
    assert!(f.approvals.by_hash(&hash()).is_none());
    let stored = f.approvals.store().get("a-1").await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Voided);
    // adversarial: an approver's vote after the void is refused
    let late = f
        .approvals
        .decide("a-1", &bob(), Choice::Approve, None)
        .await
        .unwrap_err();
    assert_eq!(late.code, "already_decided");
}

#[tokio::test]
async fn a_void_the_ledger_cannot_record_changes_nothing() {
    let f = fixture().await;
    let entry = pending(&f).await;
    f.ledger.failing.store(true, Ordering::SeqCst);
    let err = f
        .approvals
        .redecide(&entry, decision(&f, Redecide::Void))
        .await
        .unwrap_err();
    assert!(matches!(err, RedecideError::Ledger(_)));
    assert_eq!(entry.status(), Status::Pending);
    let req = entry.lock().await.clone();
    assert_eq!(req.charter.as_deref(), Some(OLD));
    assert!(req.redecisions.is_empty());
    // Still bound to the replaced charter: a grant of it can never be used.
    f.ledger.failing.store(false, Ordering::SeqCst);
    f.approvals
        .decide("a-1", &bob(), Choice::Approve, None)
        .await
        .unwrap();
    let (refusal, message) = f
        .approvals
        .use_grant(&entry, &hash(), "act-2", "echo.echo")
        .await
        .unwrap_err();
    assert_eq!(refusal, UseRefusal::OtherCharter);
    assert!(message.contains("ask again"), "{message}");
}

#[tokio::test]
async fn a_release_is_used_once_without_a_vote_and_recorded_before_the_forwarding() {
    let f = fixture().await;
    let entry = pending(&f).await;
    let outcome = f
        .approvals
        .redecide(&entry, decision(&f, Redecide::Release))
        .await
        .unwrap();
    assert_eq!(outcome, "released");
    assert_eq!(entry.status(), Status::Granted);
    f.approvals
        .use_grant(&entry, &hash(), "act-2", "echo.echo")
        .await
        .unwrap();
    assert_eq!(
        f.ledger.kinds(),
        vec![
            RecordKind::ApprovalRedecided,
            RecordKind::ApprovalUsed,
            RecordKind::ActionForwarded
        ]
    );
    // adversarial: the exact retry is not released a second time
    let (refusal, _) = f
        .approvals
        .use_grant(&entry, &hash(), "act-3", "echo.echo")
        .await
        .unwrap_err();
    assert_eq!(refusal, UseRefusal::NotGranted(Status::Used));
}

#[tokio::test]
async fn a_kept_request_is_granted_later_under_the_new_charter() {
    let f = fixture().await;
    let entry = pending(&f).await;
    let keep = Redecide::Keep {
        authority_for: vec!["echo-ask".into()],
        approvers: vec!["bob".into()],
        quorum: 1,
    };
    let outcome = f
        .approvals
        .redecide(&entry, decision(&f, keep))
        .await
        .unwrap();
    assert_eq!(outcome, "kept");
    assert_eq!(entry.status(), Status::Pending);
    f.approvals
        .decide("a-1", &bob(), Choice::Approve, None)
        .await
        .unwrap();
    // Rebound: the grant is not refused as given under another charter.
    f.approvals
        .use_grant(&entry, &hash(), "act-2", "echo.echo")
        .await
        .unwrap();
    // A second reload from the replaced charter finds it bound to the new one.
    let again = pending_as(&f, "a-2").await;
    rebind(&f, &again).await;
    let err = f
        .approvals
        .redecide(&again, decision(&f, Redecide::Void))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        RedecideError::NotApplicable(RedecideRefusal::OtherCharter)
    ));
}

/// A request already bound to the charter in force.
async fn pending_again(f: &Fixture) -> Arc<Entry> {
    let entry = pending(f).await;
    rebind(f, &entry).await;
    entry
}

async fn rebind(f: &Fixture, entry: &Entry) {
    let store = f.approvals.store();
    let mut current = store.begin(entry).await.unwrap();
    let mut next = current.clone();
    next.charter = Some(f.new.clone());
    current.save(next).await.unwrap();
}

/// Race: an approver grants while a reload voids. Whatever the order, the request ends
/// voided and nothing can use it; an approval that came second is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_a_grant_and_a_void_never_both_release() {
    for _ in 0..20 {
        let f = fixture().await;
        let entry = pending(&f).await;
        let approver = bob();
        let (granted, voided) = tokio::join!(
            f.approvals.decide("a-1", &approver, Choice::Approve, None),
            f.approvals.redecide(&entry, decision(&f, Redecide::Void)),
        );
        assert_eq!(voided.unwrap(), "voided");
        assert_eq!(entry.status(), Status::Voided);
        let req = entry.lock().await.clone();
        match granted {
            // The grant came first: the void voided the grant.
            Ok(_) => assert_eq!(req.approvals.len(), 1),
            // The void came first: the vote was refused.
            Err(e) => {
                assert_eq!(e.code, "already_decided");
                assert!(req.approvals.is_empty());
            }
        }
        assert!(
            f.approvals
                .use_grant(&entry, &hash(), "act-2", "echo.echo")
                .await
                .is_err()
        );
    }
}

/// Race: a granted request's waiter uses the grant while a reload voids it: exactly one
/// wins — the call is released and the void refused, or the void is recorded and the call
/// refused — never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_a_use_and_a_void_exactly_one_wins() {
    let (mut used_won, mut void_won) = (0, 0);
    for _ in 0..20 {
        let f = fixture().await;
        let entry = pending_again(&f).await;
        f.approvals
            .decide("a-1", &bob(), Choice::Approve, None)
            .await
            .unwrap();
        let mut void = decision(&f, Redecide::Void);
        void.from.clone_from(&f.new);
        let h = hash();
        let (used, voided) = tokio::join!(
            f.approvals.use_grant(&entry, &h, "act-2", "echo.echo"),
            f.approvals.redecide(&entry, void),
        );
        match (used, voided) {
            (Ok(()), Err(RedecideError::NotApplicable(RedecideRefusal::NotOpen(Status::Used)))) => {
                used_won += 1;
                assert!(!f.ledger.kinds().contains(&RecordKind::ApprovalRedecided));
            }
            (Err((UseRefusal::NotGranted(Status::Voided), message)), Ok("voided")) => {
                void_won += 1;
                assert!(message.contains("voided"), "{message}");
                assert!(!f.ledger.kinds().contains(&RecordKind::ActionForwarded));
            }
            other => panic!("both or neither won: {other:?}"),
        }
    }
    assert_eq!(used_won + void_won, 20);
}
