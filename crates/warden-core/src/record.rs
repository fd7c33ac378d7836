//! The ledger's vocabulary, for every crate that records: what a record is about
//! ([`RecordKind`]), a record to append ([`NewRecord`]), and the [`Recorder`] the components
//! append through. The ledger (`warden-audit`) implements [`Recorder`]; components that record
//! (approvals, the model proxy, the operator plane) hold an `Arc<dyn Recorder>` and never see
//! the store behind it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Defines [`RecordKind`] from one list of `Variant = "name"` lines, so a new kind is one line
/// (its name is what is stored and hashed: never rename one).
macro_rules! record_kinds {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $name:literal, )+) => {
        /// What a record is about. The name (snake_case) is stored in the ledger and hashed.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum RecordKind {
            $(
                $(#[doc = $doc])+
                #[serde(rename = $name)]
                $variant,
            )+
        }

        impl RecordKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [RecordKind] = &[$(RecordKind::$variant),+];

            /// The kind's stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RecordKind::$variant => $name,)+
                }
            }
        }

        impl FromStr for RecordKind {
            type Err = ParseRecordKindError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(RecordKind::$variant),)+
                    _ => Err(ParseRecordKindError(s.to_owned())),
                }
            }
        }
    };
}

record_kinds! {
    /// A charter was compiled and put in force (`charter`: its hash, `agent`, `files`,
    /// `rules`; at start-up with a shadow charter also `shadow`: the shadow's hash; on a live
    /// reload also `previous`: the hash it replaced, `via`: `api`, `cli` or `sighup`, `by`:
    /// the operator credential, `changes`: a summary of what changed).
    /// Decisions taken after it name this hash; decisions already under way finish under the
    /// previous one.
    CharterLoaded = "charter_loaded",
    /// A live reload was refused and the charter in force stays (`via`, `by`, `path`,
    /// `errors`: the compiler's diagnostics as file:line:col lines, or `reason`).
    CharterRefused = "charter_refused",
    /// A pending approval request or an unused grant raised under an earlier charter was
    /// decided again under the charter just loaded (`approval`, `action`, `charter`, `was`,
    /// `now`: the verdicts, `outcome`: `kept`, `voided` or `released`; also `previous`: the
    /// replaced charter's hash, `status`: `pending` or `granted` before, `tier`: the new
    /// tier, `why`: the new decision in a sentence). Recorded before the outcome takes effect.
    ApprovalRedecided = "approval_redecided",
    /// The shadow charter's decision for an action the live charter decided (`action`,
    /// `charter`: the shadow's hash, `decision`: its decision, `live`: the live verdict and
    /// tier, `diverged`: whether the verdict or tier differs); it never changes enforcement.
    ShadowDecided = "shadow_decided",
    /// An orchestrator opened a session.
    SessionOpened = "session_opened",
    /// A session was revoked.
    SessionRevoked = "session_revoked",
    /// An agent holding a session opened a child session for another agent (the record's
    /// session is the child; `parent`: the parent session, `agent`: the child's agent, `by`:
    /// the parent's agent, `principal`: the principal both act for, `chain`: the child's
    /// ancestors from the root as `[{session, agent}]`, `depth`: the chain's length, `via`:
    /// `api` or `mcp`, `expires_at`, `task`). Written before the child's token is returned:
    /// a child the ledger could not record does not exist.
    SessionDelegated = "session_delegated",
    /// A delegation was refused (the record's session is the would-be parent; `agent`: the
    /// agent asked for, `by`: the parent's agent, `chain`, `via`, `refusal`: a stable code —
    /// `not_permitted`, `not_accepted`, `cycle`, `depth`, `fan_out`, `unknown_agent`,
    /// `parent_inactive`, `invalid` — and `reason`: the sentence the caller was given).
    DelegationRefused = "delegation_refused",
    /// A session reached its time to live.
    SessionExpired = "session_expired",
    /// An agent attempted an action (committed before the action is decided on or forwarded).
    ActionAttempted = "action_attempted",
    /// The decision on an attempted action.
    ActionDecided = "action_decided",
    /// An allowed action was forwarded upstream.
    ActionForwarded = "action_forwarded",
    /// The result of a forwarded action: its size, its labels, or the error.
    ActionResult = "action_result",
    /// An action is waiting for a human's approval.
    ApprovalRequested = "approval_requested",
    /// Nobody approved in time (or a grant was not used before its deadline): the action was
    /// denied.
    ApprovalTimedOut = "approval_timed_out",
    /// An attempt repeated an action that already waits for approval: it joins that request.
    ApprovalAwaited = "approval_awaited",
    /// An authorised approver approved (one vote; the request is granted once the quorum is met).
    ApprovalGranted = "approval_granted",
    /// An authorised approver denied the request.
    ApprovalDenied = "approval_denied",
    /// A granted approval released its action (once).
    ApprovalUsed = "approval_used",
    /// An attempt to decide an approval was refused (no authority, self-approval, an agent
    /// credential, a bad or expired signature, a replay, ...).
    ApprovalRefused = "approval_refused",
    /// No approver could ever approve the action (or the request could not be stored): denied.
    ApprovalUnavailable = "approval_unavailable",
    /// An operator credential was issued: through the operator plane, or offline (recorded
    /// before its first use).
    OperatorTokenIssued = "operator_token_issued",
    /// An operator credential was revoked through the operator plane.
    OperatorTokenRevoked = "operator_token_revoked",
    /// The outbound webhook for a new request was delivered, failed, or was dropped (queue
    /// full, or the gateway stopping).
    ApprovalNotified = "approval_notified",
    /// A session accumulated data labels.
    LabelsAdded = "labels_added",
    /// The gateway started.
    GatewayStarted = "gateway_started",
    /// The gateway stopped.
    GatewayStopped = "gateway_stopped",
    /// A request the model proxy received and forwarded (the prompt).
    ModelRequested = "model_requested",
    /// A completion (assembled from its stream when streamed), with usage.
    ModelCompleted = "model_completed",
    /// A tool call the model proposed: an intent the agent may then attempt.
    ModelIntent = "model_intent",
    /// A model call that failed on every route.
    ModelFailed = "model_failed",
    /// A model call refused because a token budget is spent.
    BudgetExceeded = "budget_exceeded",
    /// A request of a revoked session refused by the agent plane's authentication (recorded
    /// for the first refusal and then at most once a minute per session).
    SessionRefused = "session_refused",
    /// A model call refused before it was forwarded: the gateway posture is frozen, or the
    /// session carries a data label the charter keeps from the model alias.
    ModelRefused = "model_refused",
    /// A control was put in force (by an operator, the observer, or the gateway's dead man's
    /// switch): the payload is the control; written before the control takes effect.
    ControlSet = "control_set",
    /// An admin (or the dead man's switch, for its own control) lifted a control.
    ControlLifted = "control_lifted",
    /// A control's expiry passed (written when the gateway first noticed it).
    ControlExpired = "control_expired",
    /// The observer sent an alert: the payload is control-shaped; nothing is put in force.
    ObserverAlert = "observer_alert",
    /// The charter requires an observer and none was heard within the heartbeat deadline: the
    /// dead man's switch put the gateway in the conservative posture.
    ObserverHeartbeatMissed = "observer_heartbeat_missed",
    /// The observer was heard again: the dead man's switch lifted its control.
    ObserverHeartbeatRestored = "observer_heartbeat_restored",
    /// A session gained trusted text: an instruction an operator added for the principal, or a
    /// value an approver confirmed for the session (`source`, `text`); written before it is
    /// in force.
    TrustAdded = "trust_added",
    /// An approver reversed a denial before the request's deadline: the request is pending
    /// again (`approval`, `by`, `reason`).
    ApprovalReversed = "approval_reversed",
    /// An operator signed in to the console (`credential`, `name`, `role`); written before the
    /// console session is usable.
    ConsoleSignedIn = "console_signed_in",
    /// An operator signed out of the console, or its console session was ended (`credential`,
    /// `reason`: `signed_out`, `expired`, `credential_revoked`).
    ConsoleSignedOut = "console_signed_out",
    /// The gateway signed a checkpoint of the ledger's Merkle tree (`note`: the C2SP signed
    /// note, `origin`, `size`, `root`): the records `1..=size` are the ones it signed.
    CheckpointSigned = "checkpoint_signed",
    /// An export sink fell behind the ledger by more than its limit (`sink`, `acked`, `head`,
    /// `lag`, `error`): the ledger keeps everything and the sink catches up when it can.
    ExportLagging = "export_lagging",
    /// An export sink caught up again after `export_lagging` (`sink`, `acked`, `head`).
    ExportRecovered = "export_recovered",
    /// Records `1..=through` were archived and removed from the local ledger (`through`,
    /// `archive`, `checkpoint`); the signed checkpoint stands for them.
    LedgerPruned = "ledger_pruned",
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record kind name this version of warden does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown record kind `{0}`")]
pub struct ParseRecordKindError(pub String);

/// A record to append: the ledger adds the sequence number, the time and the hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    /// The session the record belongs to, if any.
    pub session: Option<String>,
    /// What the record is about.
    pub kind: RecordKind,
    /// The content; stored as canonical JSON.
    pub payload: serde_json::Value,
}

impl NewRecord {
    /// A record of `kind` about `session`.
    pub fn new(session: Option<&str>, kind: RecordKind, payload: serde_json::Value) -> NewRecord {
        NewRecord {
            session: session.map(str::to_owned),
            kind,
            payload,
        }
    }
}

/// Why records could not be appended. Nothing of the batch was committed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    /// What the store said.
    pub message: String,
    /// The store's own error, when it has one.
    #[source]
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl RecordError {
    /// An error from the store behind a [`Recorder`].
    pub fn from_store<E: std::error::Error + Send + Sync + 'static>(error: E) -> RecordError {
        RecordError {
            message: error.to_string(),
            source: Some(Arc::new(error)),
        }
    }
}

/// The future a [`Recorder`] returns.
pub type RecordFuture<'a> = Pin<Box<dyn Future<Output = Result<(), RecordError>> + Send + 'a>>;

/// Appends records to the ledger.
///
/// Guarantee every implementation gives: when the future resolves `Ok`, every record of the
/// batch is durable, in order, with consecutive sequence numbers; on `Err`, none is. A caller
/// on the action path treats `Err` as "refuse": nothing unrecorded runs.
pub trait Recorder: Send + Sync + fmt::Debug {
    /// Appends `records` atomically and resolves once they are durable.
    fn append_batch(&self, records: Vec<NewRecord>) -> RecordFuture<'_>;

    /// Appends one record and resolves once it is durable.
    fn append(&self, record: NewRecord) -> RecordFuture<'_> {
        self.append_batch(vec![record])
    }

    /// Appends one record and resolves, once it is durable, with its sequence number when
    /// the store knows it (`None` from a recorder that does not tell).
    fn append_seq(&self, record: NewRecord) -> SeqFuture<'_> {
        Box::pin(async move { self.append(record).await.map(|()| None) })
    }
}

/// The future [`Recorder::append_seq`] returns.
pub type SeqFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<u64>, RecordError>> + Send + 'a>>;
