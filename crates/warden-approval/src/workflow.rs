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
use warden_charter::{CompiledCharter, DEFAULT_RULE_ID};
use warden_core::text::rfc3339;
use warden_core::{Clock, Decision, NewRecord, RecordKind, Recorder};

use crate::throttle::Throttle;
use crate::{
    ActionHash, ApprovalRequest, ApprovalStore, Approver, Entry, NewApproval, Signer, Status,
    StoreError, UseRefusal, VoteRefusal, Voted,
};

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

/// Approve or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Approve.
    Approve,
    /// Deny.
    Deny,
}

impl Choice {
    fn as_str(self) -> &'static str {
        match self {
            Choice::Approve => "approve",
            Choice::Deny => "deny",
        }
    }
}

/// Who is deciding, and through which channel.
#[derive(Debug, Clone)]
pub struct Decider<'a> {
    /// The credential's name (an operator token's name, or `link` for a signed link).
    pub credential: &'a str,
    /// The charter principal, if the credential is an approver's.
    pub principal: Option<&'a str>,
    /// `api` or `link`.
    pub channel: &'a str,
    /// For a link, the delivery target it was sent to (signed into the link).
    pub target: Option<&'a str>,
    /// For the API, the operator credential's id.
    pub credential_id: Option<&'a str>,
}

/// An approver's decision that took effect.
#[derive(Debug, Clone)]
pub struct Decided {
    /// `granted`, `counted` (a vote; the quorum is not met yet) or `denied`.
    pub outcome: &'static str,
    /// The request after the decision.
    pub request: ApprovalRequest,
}

/// Why a decision did not take effect: an HTTP status, a stable code and a sentence.
#[derive(Debug, Clone)]
pub struct DecideError {
    /// HTTP status.
    pub status: u16,
    /// Stable code (the refusal's, `unknown_approval`, `ledger_unavailable`, ...).
    pub code: &'static str,
    /// For the person who tried.
    pub message: String,
}

/// The API error of a refused decision.
fn refused(r: VoteRefusal, message: String) -> DecideError {
    DecideError {
        status: refusal_status(r),
        code: r.code(),
        message,
    }
}

fn refusal_status(r: VoteRefusal) -> u16 {
    match r {
        VoteRefusal::NotAnApprover | VoteRefusal::NoAuthority | VoteRefusal::SelfApproval => 403,
        VoteRefusal::DuplicateApprover
        | VoteRefusal::SharedTarget
        | VoteRefusal::Replay
        | VoteRefusal::AlreadyDecided(_) => 409,
        VoteRefusal::Expired => 410,
    }
}

/// The approval workflow.
pub struct Approvals {
    store: ApprovalStore,
    signer: Signer,
    charter: Arc<CompiledCharter>,
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
        charter: Arc<CompiledCharter>,
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
        let sod = self.charter.authority.separation_of_duties;
        for v in &req.approvals {
            if !self.has_authority(&v.approver, &req.authority_for)
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

    /// Whether `principal` may approve every rule in `rules`.
    pub fn has_authority(&self, principal: &str, rules: &[String]) -> bool {
        self.charter.authority.principal(principal).is_some()
            && rules
                .iter()
                .all(|r| self.charter.authority.may_approve(principal, r))
    }

    /// The principals who could approve a request of `requester` needing authority for `rules`
    /// (separation of duties removes the requester).
    pub fn eligible(&self, rules: &[String], requester: &str) -> Vec<String> {
        let sod = self.charter.authority.separation_of_duties;
        let mut ids: Vec<&str> = self
            .charter
            .authority
            .principals
            .keys()
            .map(|k| &**k)
            .filter(|p| !(sod && *p == requester))
            .filter(|p| self.has_authority(p, rules))
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

    /// Approves or denies request `id` as `decider`.
    pub async fn decide(
        &self,
        id: &str,
        decider: &Decider<'_>,
        choice: Choice,
        reason: Option<String>,
    ) -> Result<Decided, DecideError> {
        let refused_payload = |code: &str, message: &str| {
            json!({
                "approval": id,
                "attempted": choice.as_str(),
                "credential": decider.credential,
                "principal": decider.principal,
                "channel": decider.channel,
                "refusal": code,
                "message": message,
            })
        };
        if reason.as_ref().is_some_and(|r| r.len() > MAX_REASON_BYTES) {
            return Err(DecideError {
                status: 400,
                code: "invalid_reason",
                message: format!("`reason` is longer than {MAX_REASON_BYTES} bytes"),
            });
        }
        let Some(entry) = self.store.entry(id) else {
            // Not in memory: decided long ago, or unknown.
            let stored = self.store.get(id).await.map_err(|e| DecideError {
                status: 503,
                code: "store_unavailable",
                message: e.to_string(),
            })?;
            let Some(req) = stored else {
                let message = format!("no approval request `{id}`");
                self.record_refused(None, refused_payload("unknown_approval", &message))
                    .await;
                return Err(DecideError {
                    status: 404,
                    code: "unknown_approval",
                    message,
                });
            };
            let refusal = if req.status == Status::Used {
                VoteRefusal::Replay
            } else {
                VoteRefusal::AlreadyDecided(req.status)
            };
            let message = refusal.message(&req);
            self.record_refused(
                Some(&req.session),
                refused_payload(refusal.code(), &message),
            )
            .await;
            return Err(refused(refusal, message));
        };
        let mut current = entry.lock().await;
        let now = self.clock.now();
        let approver = Approver {
            principal: decider.principal,
            has_authority: decider
                .principal
                .is_some_and(|p| self.has_authority(p, &current.authority_for)),
            channel: decider.channel,
            target: decider.target,
            credential: decider.credential_id,
        };
        let sod = self.charter.authority.separation_of_duties;
        let mut next = current.clone();
        let applied = match choice {
            Choice::Approve => next.approve(&approver, sod, reason.clone(), now),
            Choice::Deny => next
                .deny(&approver, sod, reason.clone(), now)
                .map(|()| Voted::Granted),
        };
        let voted = match applied {
            Ok(v) => v,
            Err(refusal) => {
                let message = refusal.message(&current);
                self.record_refused(
                    Some(&current.session),
                    refused_payload(refusal.code(), &message),
                )
                .await;
                return Err(refused(refusal, message));
            }
        };
        let outcome = match (choice, voted) {
            (Choice::Deny, _) => "denied",
            (Choice::Approve, Voted::Granted) => "granted",
            (Choice::Approve, Voted::Counted { .. }) => "counted",
        };
        let (kind, payload) = match choice {
            Choice::Approve => (
                RecordKind::ApprovalGranted,
                json!({
                    "approval": id,
                    "action": current.action,
                    "approver": decider.principal,
                    "credential": decider.credential,
                    "channel": decider.channel,
                    "target": decider.target,
                    "reason": reason,
                    "approvals": next.approvals.len(),
                    "quorum": next.quorum,
                    "granted": outcome == "granted",
                }),
            ),
            Choice::Deny => (
                RecordKind::ApprovalDenied,
                json!({
                    "approval": id,
                    "action": current.action,
                    "approver": decider.principal,
                    "credential": decider.credential,
                    "channel": decider.channel,
                    "reason": reason,
                }),
            ),
        };
        // Recorded first; then stored; only then does anyone waiting see it.
        self.record(&current.session, kind, payload)
            .await
            .map_err(|e| DecideError {
                status: 503,
                code: "ledger_unavailable",
                message: format!(
                    "the decision could not be recorded, so it did not take effect: {e}"
                ),
            })?;
        self.store
            .save(&entry, &mut current, next)
            .await
            .map_err(|e| DecideError {
                status: 503,
                code: "store_unavailable",
                message: format!(
                    "the decision could not be stored, so it did not take effect: {e}"
                ),
            })?;
        Ok(Decided {
            outcome,
            request: current.clone(),
        })
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
        let mut current = entry.lock().await;
        let now = self.clock.now();
        let mut next = current.clone();
        let in_force = self.charter.hash.to_string();
        let bound = if current.charter.as_deref() == Some(in_force.as_str()) {
            Ok(())
        } else {
            Err(UseRefusal::OtherCharter)
        };
        let bound = match bound {
            Ok(()) if current.status == Status::Granted && !self.votes_hold(&current).await => {
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
        self.store
            .save(entry, &mut current, next)
            .await
            .map_err(|e| {
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
            let mut current = entry.lock().await;
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
            match self.store.save(&entry, &mut current, next).await {
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
