//! The approval workflow: raising a request for an action that needs one, deciding it for an
//! authorised approver, using a grant once, and timing it out.
//!
//! The request's life is the pure state machine of [`crate::machine`]; this module
//! adds who may decide (the charter's authority section), the ledger and the store. Every
//! change is recorded in the ledger before it is saved, and saved before anyone acts on it: a
//! decision that cannot be recorded or stored changes nothing, and an action is released only
//! after its grant was marked used (so a grant can never release twice).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use warden_charter::{CharterCell, CompiledCharter, DEFAULT_RULE_ID};
use warden_core::text::rfc3339;
use warden_core::{Clock, Decision, NewRecord, RecordKind, Recorder};

use crate::throttle::Throttle;
use crate::{
    ActionHash, ApprovalRequest, ApprovalStore, Entry, NewApproval, Signer, Status, StoreError,
    UseRefusal,
};

mod decide;
mod redecide;
mod reverse;
pub use decide::{Choice, DecideError, Decided, Decider};
pub use redecide::{NewDecision, RedecideError};

/// How often the sweeper looks for requests past their deadline.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// Most requests a list returns.
pub const MAX_LIST: u32 = 1000;
/// Longest reason an approver may give, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;

/// Called with each new request (the webhook notifier).
pub type OnRequest = Arc<dyn Fn(&ApprovalRequest) + Send + Sync>;

/// Whether the operator credential with this id is still valid (not revoked); an `Err` (the
/// store cannot say) counts as not valid.
pub type CredentialCheck = Arc<
    dyn Fn(
            String,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send>>
        + Send
        + Sync,
>;

/// The approval workflow.
pub struct Approvals {
    store: ApprovalStore,
    signer: Signer,
    charter: Arc<CharterCell>,
    ledger: Arc<dyn Recorder>,
    clock: Arc<dyn Clock>,
    on_request: Option<OnRequest>,
    anonymous: std::sync::Mutex<Throttle>,
    credentials: Option<CredentialCheck>,
    /// How often a waiting call gets a progress report.
    pub progress_interval: Duration,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("open", &self.store.open_count())
            .finish()
    }
}

/// The JSON an approver sees for a request: the request itself, with the model turns that
/// led to the call.
pub fn request_json(req: &ApprovalRequest) -> Value {
    serde_json::to_value(req).unwrap_or(Value::Null)
}

/// The rule ids an approver needs authority for: the determining rules, or `default` when the
/// default posture decided.
pub fn authority_for(decision: &Decision) -> Vec<String> {
    if decision.rules.is_empty() {
        vec![DEFAULT_RULE_ID.to_owned()]
    } else {
        let mut ids: Vec<String> = decision.rules.iter().map(|r| r.id.to_string()).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

impl Approvals {
    /// The workflow over `store`.
    pub fn new(
        store: ApprovalStore,
        signer: Signer,
        charter: Arc<CharterCell>,
        ledger: Arc<dyn Recorder>,
        clock: Arc<dyn Clock>,
        on_request: Option<OnRequest>,
        progress_interval: Duration,
    ) -> Approvals {
        Approvals {
            store,
            signer,
            charter,
            ledger,
            anonymous: std::sync::Mutex::new(Throttle::new(clock.now())),
            credentials: None,
            clock,
            on_request,
            progress_interval,
        }
    }

    /// Checks every grant's votes' operator credentials with `check` before it is used: a
    /// vote cast with a credential revoked since no longer counts.
    #[must_use]
    pub fn with_credential_check(mut self, check: CredentialCheck) -> Approvals {
        self.credentials = Some(check);
        self
    }

    /// Whether every approving vote of `req` still holds: its approver has the authority
    /// under the charter in force (and is not the requester under separation of duties), and
    /// its operator credential, if it voted with one, is not revoked.
    async fn votes_hold(&self, req: &ApprovalRequest) -> bool {
        // A request whose agent has no charter any more has no vote that holds (fail closed).
        let Some(charter) = self.charter(req.deciding_agent()) else {
            return false;
        };
        let sod = charter.authority.separation_of_duties;
        for v in &req.approvals {
            if !has_authority(&charter, &v.approver, &req.authority_for)
                || (sod && v.approver == req.principal)
            {
                return false;
            }
            if let (Some(id), Some(check)) = (&v.credential, &self.credentials)
                && !matches!(check(id.clone()).await, Ok(true))
            {
                return false;
            }
        }
        u32::try_from(req.approvals.len()).unwrap_or(u32::MAX) >= req.quorum
    }

    /// The store.
    pub fn store(&self) -> &ApprovalStore {
        &self.store
    }

    /// The link signer.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Whether `principal` may approve every rule in `rules` of `agent`'s charter (never
    /// when the agent has no charter in force).
    pub fn has_authority(&self, agent: &str, principal: &str, rules: &[String]) -> bool {
        self.charter(agent)
            .is_some_and(|c| has_authority(&c, principal, rules))
    }

    /// The charter in force now for `agent` (the gateway's, swapped by a reload).
    pub(crate) fn charter(&self, agent: &str) -> Option<Arc<CompiledCharter>> {
        self.charter.agent(agent)
    }

    /// Whether separation of duties holds for `agent`'s requests (it does when the agent has
    /// no charter in force: the stricter answer).
    pub(crate) fn separation_of_duties(&self, agent: &str) -> bool {
        self.charter(agent)
            .is_none_or(|c| c.authority.separation_of_duties)
    }

    /// The principals of `agent`'s charter who could approve a request of `requester`
    /// needing authority for `rules` (separation of duties removes the requester); none when
    /// the agent has no charter in force.
    pub fn eligible(&self, agent: &str, rules: &[String], requester: &str) -> Vec<String> {
        let Some(charter) = self.charter(agent) else {
            return Vec::new();
        };
        let sod = charter.authority.separation_of_duties;
        let mut ids: Vec<&str> = charter
            .authority
            .principals
            .keys()
            .map(|k| &**k)
            .filter(|p| !(sod && *p == requester))
            .filter(|p| has_authority(&charter, p, rules))
            .collect();
        ids.sort_unstable();
        ids.into_iter().map(str::to_owned).collect()
    }

    /// A new request, not yet stored.
    pub fn new_request(&self, n: NewApproval) -> ApprovalRequest {
        ApprovalRequest::new(n)
    }

    /// Stores a new request (after the governor recorded it) and announces it.
    pub async fn create(&self, req: ApprovalRequest) -> Result<Arc<Entry>, StoreError> {
        let entry = self.store.create(req.clone()).await?;
        if let Some(f) = &self.on_request {
            f(&req);
        }
        Ok(entry)
    }

    /// The request in memory for this action.
    pub fn by_hash(&self, hash: &ActionHash) -> Option<Arc<Entry>> {
        self.store.by_hash(hash)
    }

    async fn record(&self, session: &str, kind: RecordKind, payload: Value) -> Result<(), String> {
        self.ledger
            .append(NewRecord {
                session: Some(session.to_owned()),
                kind,
                payload,
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Records a refused attempt to decide a request. A refusal that cannot be recorded is
    /// still a refusal.
    pub async fn record_refused(&self, session: Option<&str>, payload: Value) {
        let record = NewRecord {
            session: session.map(str::to_owned),
            kind: RecordKind::ApprovalRefused,
            payload,
        };
        if let Err(e) = self.ledger.append(record).await {
            tracing::error!(error = %e, "The ledger cannot record a refused approval attempt.");
        }
    }

    /// Records a refused attempt by a caller without a credential (a bad or expired link, an
    /// unknown agent token), from `source` (the client's address, or `unknown`): the first per
    /// source and window in full, the rest counted into one aggregate record per window
    /// ([`crate::throttle`]). Returns whether this one was recorded in full.
    pub async fn record_anonymous_refusal(
        &self,
        source: &str,
        session: Option<&str>,
        mut payload: Value,
    ) -> bool {
        let admitted = match self.anonymous.lock() {
            Ok(mut t) => t.admit(source, self.clock.now()),
            Err(poisoned) => poisoned.into_inner().admit(source, self.clock.now()),
        };
        if let Some(aggregate) = admitted.aggregate {
            self.record_refused(None, aggregate).await;
        }
        if admitted.record {
            if let Value::Object(m) = &mut payload {
                m.insert("source".to_owned(), Value::String(source.to_owned()));
            }
            self.record_refused(session, payload).await;
        }
        admitted.record
    }

    /// Records the aggregate of anonymous refusals once their window is over (the sweeper
    /// calls it).
    pub async fn flush_anonymous(&self) {
        let aggregate = match self.anonymous.lock() {
            Ok(mut t) => t.roll(self.clock.now()),
            Err(poisoned) => poisoned.into_inner().roll(self.clock.now()),
        };
        if let Some(aggregate) = aggregate {
            self.record_refused(None, aggregate).await;
        }
    }

    /// Marks the grant of `entry` used by the attempt `action` (whose hash must be the
    /// approved one) and records it with the forwarding. `Err` says why not, for the agent.
    pub async fn use_grant(
        &self,
        entry: &Entry,
        hash: &ActionHash,
        action: &str,
        tool: &str,
    ) -> Result<(), (UseRefusal, String)> {
        // The request as stored (on PostgreSQL its row locked until the use is saved: a grant
        // used on another instance is seen here as used, and a grant is used once fleet-wide).
        let mut current = self.store.begin(entry).await.map_err(|e| {
            (
                UseRefusal::NotGranted(Status::Granted),
                format!("the approval store cannot be reached, so the call is refused: {e}"),
            )
        })?;
        let now = self.clock.now();
        let mut next = current.clone();
        let in_force = self
            .charter(current.deciding_agent())
            .map(|c| c.hash.to_string())
            .unwrap_or_default();
        let bound = if current.charter.as_deref() == Some(in_force.as_str()) {
            Ok(())
        } else {
            Err(UseRefusal::OtherCharter)
        };
        // A grant a reload released (allowed without approval by the charter in force, which
        // it is bound to) has no vote to hold.
        let released = current.released_under() == Some(in_force.as_str());
        let bound = match bound {
            Ok(())
                if current.status == Status::Granted
                    && !released
                    && !self.votes_hold(&current).await =>
            {
                Err(UseRefusal::AuthorityWithdrawn)
            }
            other => other,
        };
        if let Err(r) = bound.and_then(|()| next.use_grant(hash, action, now)) {
            let message = match r {
                UseRefusal::NotGranted(Status::Used) => format!(
                    "the approval {} was already used (by attempt {}); an approval releases one call",
                    current.id,
                    current.used_by.as_deref().unwrap_or("?")
                ),
                UseRefusal::NotGranted(Status::Voided) => format!(
                    "the approval {} was voided: {}",
                    current.id,
                    voided_why(&current)
                ),
                UseRefusal::NotGranted(s) => format!("the approval {} is {s}", current.id),
                UseRefusal::DifferentAction => format!(
                    "the approval {} was given for different arguments; it does not release this call",
                    current.id
                ),
                UseRefusal::Expired => format!("the approval {} has expired", current.id),
                UseRefusal::AuthorityWithdrawn => format!(
                    "the approval {} was given by approvers who no longer all have the authority (a principal removed or their role changed, or a credential revoked since); ask again",
                    current.id
                ),
                UseRefusal::OtherCharter => format!(
                    "the approval {} was given under charter {}, and charter {in_force} is in force now; ask again",
                    current.id,
                    current.charter.as_deref().unwrap_or("(unrecorded)")
                ),
            };
            return Err((r, message));
        }
        let session = current.session.clone();
        let approval = current.id.clone();
        // Marked used before the forwarding is recorded: if recording fails the grant is spent
        // and nothing runs — never the other way round.
        current.save(next).await.map_err(|e| {
            (
                UseRefusal::NotGranted(Status::Granted),
                format!("the approval could not be marked used, so the call is refused: {e}"),
            )
        })?;
        drop(current);
        let batch = vec![
            NewRecord {
                session: Some(session.clone()),
                kind: RecordKind::ApprovalUsed,
                payload: json!({ "approval": approval, "action": action }),
            },
            NewRecord {
                session: Some(session),
                kind: RecordKind::ActionForwarded,
                payload: json!({ "action": action, "tool": tool, "approval": approval }),
            },
        ];
        self.ledger.append_batch(batch).await.map_err(|e| {
            (
                UseRefusal::NotGranted(Status::Used),
                format!("the ledger cannot record the approved call, so it is refused: {e}"),
            )
        })?;
        Ok(())
    }

    /// Times out every open request past its deadline (recorded), and forgets denials past
    /// theirs. Returns how many timed out.
    pub async fn sweep(&self) -> usize {
        self.flush_anonymous().await;
        let now = self.clock.now();
        let mut timed_out = 0;
        for entry in self.store.due(now) {
            // A denial past its deadline is forgotten (nothing can change it any more).
            if !entry.status().is_open() {
                self.store.forget(&entry);
                continue;
            }
            // On PostgreSQL the row is locked and re-read: a request another instance's
            // sweeper timed out (or an approver decided) meanwhile is not timed out again.
            let mut current = match self.store.begin(&entry).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "An approval past its deadline could not be read from the store; retried on the next sweep.");
                    continue;
                }
            };
            let mut next = current.clone();
            if !next.expire(now) {
                if !current.status.is_open() {
                    self.store.forget(&entry);
                }
                continue;
            }
            let payload = json!({
                "approval": current.id,
                "action": current.action,
                "was": current.status,
                "approvals": current.approvals.len(),
                "quorum": current.quorum,
                "deadline": rfc3339(current.deadline),
            });
            if let Err(e) = self
                .record(&current.session, RecordKind::ApprovalTimedOut, payload)
                .await
            {
                // Not recorded: try again on the next sweep. The request cannot be used past
                // its deadline anyway (`use_grant` checks it).
                tracing::error!(error = %e, "The ledger cannot record an approval timeout.");
                continue;
            }
            match current.save(next).await {
                Ok(()) => timed_out += 1,
                Err(e) => tracing::error!(error = %e, "An approval timeout could not be stored."),
            }
        }
        timed_out
    }

    /// The clock's time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

/// Why a voided request was voided, naming the charter that voided it (for the agent).
pub fn voided_why(req: &ApprovalRequest) -> String {
    match req.last_redecision() {
        Some(r) if r.outcome == "voided" => format!(
            "charter {}, put in force since it was asked, decides it again: {}",
            r.charter, r.why
        ),
        _ => "a charter put in force since it was asked no longer lets it be approved".to_owned(),
    }
}

/// Whether `principal` is a principal of `charter` who may approve every rule in `rules`.
fn has_authority(charter: &CompiledCharter, principal: &str, rules: &[String]) -> bool {
    charter.authority.principal(principal).is_some()
        && rules
            .iter()
            .all(|r| charter.authority.may_approve(principal, r))
}
