//! Instances of the approval workflow on one PostgreSQL database, as the gateway starts them
//! (`ApprovalStore` over the shared pool, the notices listener, the fleet follower).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_approval::workflow::{Choice, DecideError, Decided, Decider};
use warden_approval::{
    ActionHash, ApprovalRequest, ApprovalStore, Approvals, Entry, NewApproval, Signer, Status,
    StorePool,
};
use warden_core::record::RecordFuture;
use warden_core::{
    Clock, ManualClock, NewRecord, RecordError, RecordKind, Recorder, StoreLocation,
};
use warden_session::{PoolBounds, StateDb};

pub(crate) const CHARTER: &str = r#"version: 1
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
    - { id: carol, roles: [approver] }
"#;

/// The most a test waits for another instance's change to arrive (it normally takes well
/// under a second): past it the test fails rather than hangs.
pub(crate) const ARRIVES_WITHIN: Duration = Duration::from_secs(10);

/// A ledger in memory, which can be made to fail.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    pub(crate) records: Mutex<Vec<NewRecord>>,
    pub(crate) failing: AtomicBool,
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
    pub(crate) fn count(&self, kind: RecordKind) -> usize {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.kind == kind)
            .count()
    }
}

pub(crate) fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// One gateway instance's approval workflow.
pub(crate) struct Instance {
    pub(crate) approvals: Arc<Approvals>,
    pub(crate) ledger: Arc<Memory>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) db: StateDb,
    pub(crate) charter: String,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop.cancel();
        self.tasks.close();
    }
}

pub(crate) fn bounds() -> PoolBounds {
    PoolBounds {
        max_connections: 8,
        acquire_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(5),
    }
}

impl Instance {
    /// An instance on the database at `url` (migrated), following the others.
    pub(crate) async fn start(url: &str) -> Instance {
        Instance::start_with(url, bounds()).await
    }

    pub(crate) async fn start_with(url: &str, bounds: PoolBounds) -> Instance {
        let location = StoreLocation::parse(url).unwrap();
        let dir = std::env::temp_dir();
        let db = StateDb::connect(&location, &dir, bounds).await.unwrap();
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let notices = db.listen(&tasks, stop.clone()).clone();
        let pool = db.postgres().unwrap().clone();
        let clock = Arc::new(ManualClock::new(t0()));
        let compiled = warden_charter::compile(&[warden_charter::Source::new("c.yaml", CHARTER)])
            .unwrap()
            .charter;
        let charter = compiled.hash.to_string();
        let ledger = Arc::new(Memory::default());
        let approvals = Arc::new(Approvals::new(
            ApprovalStore::open(StorePool::Postgres(pool), clock.now())
                .await
                .unwrap(),
            Signer::new(b"an approval signing secret of 32+ bytes").unwrap(),
            Arc::new(warden_charter::CharterCell::from(compiled)),
            ledger.clone(),
            clock.clone(),
            None,
            Duration::from_secs(10),
        ));
        assert!(warden_gateway::fleet::approvals::follow(
            approvals.clone(),
            &notices,
            &tasks,
            stop.clone(),
        ));
        Instance {
            approvals,
            ledger,
            clock,
            db,
            charter,
            tasks,
            stop,
        }
    }

    /// A new request for `echo.echo` with `args` in session `s-1`, `quorum` approvers needed,
    /// raised on this instance.
    pub(crate) fn request(
        &self,
        id: &str,
        args: &serde_json::Value,
        quorum: u32,
    ) -> ApprovalRequest {
        self.approvals.new_request(NewApproval {
            id: id.into(),
            action: format!("act-{id}"),
            session: "s-1".into(),
            agent: "agent-1".into(),
            principal: "dave".into(),
            task: "testing".into(),
            tool: "echo.echo".into(),
            arguments: args.clone(),
            reason: "rule".into(),
            why: "approval by rule `echo-ask`".into(),
            rules: Vec::new(),
            authority_for: vec!["echo-ask".into()],
            approvers: vec!["alice".into(), "bob".into(), "carol".into()],
            quorum,
            charter: self.charter.clone(),
            requested_at: self.clock.now(),
            deadline: self.clock.now() + time::Duration::minutes(15),
            model_turns: Vec::new(),
        })
    }

    /// Raises a request (as the governor does) and returns its entry.
    pub(crate) async fn raise(
        &self,
        id: &str,
        args: &serde_json::Value,
        quorum: u32,
    ) -> Arc<Entry> {
        self.approvals
            .create(self.request(id, args, quorum))
            .await
            .unwrap()
    }

    /// `principal` decides request `id` through this instance's API.
    pub(crate) async fn decide(
        &self,
        id: &str,
        principal: &str,
        choice: Choice,
    ) -> Result<Decided, DecideError> {
        let credential = format!("{principal}-token");
        self.approvals
            .decide(
                id,
                &Decider {
                    credential: &credential,
                    principal: Some(principal),
                    channel: "api",
                    target: None,
                    credential_id: None,
                },
                choice,
                None,
            )
            .await
    }

    /// Uses the grant of `entry` for the call `action` of `echo.echo` with `args`.
    pub(crate) async fn use_grant(
        &self,
        entry: &Entry,
        args: &serde_json::Value,
        action: &str,
    ) -> Result<(), (warden_approval::UseRefusal, String)> {
        self.approvals
            .use_grant(entry, &hash(args), action, "echo.echo")
            .await
    }

    /// The entry this instance holds for request `id`, loading it from the store.
    pub(crate) async fn entry(&self, id: &str) -> Arc<Entry> {
        match self
            .approvals
            .store()
            .load(id, self.clock.now())
            .await
            .unwrap()
        {
            Some(warden_approval::Loaded::Live(e)) => e,
            other => panic!("request {id} is not live: {other:?}"),
        }
    }
}

pub(crate) fn hash(args: &serde_json::Value) -> ActionHash {
    ActionHash::of("s-1", "echo.echo", args)
}

pub(crate) fn args(n: u32) -> serde_json::Value {
    json!({ "text": format!("pay {n}") })
}

/// Waits (bounded) until `rx` shows something other than `from`; returns it.
pub(crate) async fn next_status(rx: &mut watch::Receiver<Status>, from: Status) -> Status {
    tokio::time::timeout(ARRIVES_WITHIN, async {
        loop {
            let now = *rx.borrow_and_update();
            if now != from {
                return now;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no status change from {from} arrived"))
}

/// Waits (bounded) until instance `i` holds request `id` (loaded by its follower).
pub(crate) async fn held(i: &Instance, id: &str) -> Arc<Entry> {
    tokio::time::timeout(ARRIVES_WITHIN, async {
        loop {
            if let Some(e) = i.approvals.store().entry(id) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("request {id} never reached the instance"))
}

/// A database of its own for one test.
pub(crate) async fn database() -> warden_testkit::postgres::TestDb {
    warden_testkit::postgres::TestDb::new().await.unwrap()
}
