//! The governor: the one path every action takes.
//!
//! authenticate (done by the caller) → refuse (and record) a tool the charter's inventory
//! does not name → resolve local path arguments → decide → record the
//! attempt and the decision durably (with `forwarded`, in the same commit, when allowed) →
//! for an action that needs approval: raise a request (or join the open one for the same
//! action), wait until an authorised human decides or the deadline passes, and on a grant mark
//! it used and record the forwarding → the caller forwards → [`Governor::record_result`]
//! records the outcome and the labels it carries → the caller answers.
//!
//! Fail closed: if the ledger cannot record the attempt, the action is refused; no code path
//! turns an error into an allow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_approval::{ActionHash, StoreError};

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warden_audit::{Ledger, NewRecord, RecordKind};
use warden_charter::{CharterSet, CompiledCharter};
use warden_core::{Clock, TraceContext, Verdict};
use warden_pdp::{Controls as PdpControls, action_labels};

use warden_approval::Approvals;
use warden_approval::workflow::request_json;
use warden_core::gate::{Allowed, PendingApproval, ProgressFn, RefusalReason, Refused, Via};
use warden_models::ModelTurns;
use warden_session::{CaptureQuota, Controls, ScopeCounters, Session, SessionStore};

use crate::capture::json_len;
use crate::outstanding::{OutstandingActions, ResultDeadlines};

mod approval_wait;
mod delegated;
mod governed;
mod recheck;
mod redecide;
pub(crate) mod results;
pub mod shadow;

/// Why a tool outside the inventory is refused (recorded, and the agent's message).
const NOT_INVENTORIED: &str =
    "it is not in the charter's inventory, and only the tools the inventory names can be called";

use approval_wait::Plan;
pub use governed::Governed;
use governed::GovernedCell;
pub use redecide::Redecided;

/// Longest error message of a result recorded, in bytes (longer ones are cut, with `…`).
pub(crate) const MAX_ERROR_BYTES: usize = 4096;

/// How a caller waits for an approval.
#[derive(Default)]
pub struct Waiting<'a> {
    /// Stop waiting after this long (the request stays open): the decide API's long-poll.
    pub max_wait: Option<Duration>,
    /// Cancelled when the client has gone away: stop waiting, and never use a grant for a
    /// call nobody will receive.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
    /// Called every progress interval while waiting.
    pub progress: Option<&'a ProgressFn>,
    /// The name the agent sent, when it is not the charter's (`fs__read` for `fs.read`):
    /// recorded as `called_as` with the attempt. (It travels with the call's options.)
    pub called_as: Option<&'a str>,
    /// The W3C trace context the agent sent with the call, when valid: recorded as `trace`
    /// with the attempt (the OpenTelemetry exporter continues that trace).
    pub trace: Option<&'a TraceContext>,
}

/// The governor.
pub struct Governor {
    /// The charter in force and what is derived from it (see [`Governed`]).
    governed: GovernedCell,
    ledger: Ledger,
    scope_counters: ScopeCounters,
    sessions: SessionStore,
    controls: Arc<Controls>,
    approvals: Arc<Approvals>,
    model_turns: Arc<ModelTurns>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    outstanding: OutstandingActions,
    open_approvals: approval_wait::OpenApprovals,
    capture: Arc<CaptureQuota>,
    /// The shadow charter, deciding beside the live one and enforcing nothing.
    shadow: Option<Arc<CompiledCharter>>,
    /// The metrics it counts decisions into (see `crate::telemetry`).
    pub(crate) telemetry: Arc<warden_telemetry::Telemetry>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("shadow", &self.shadow.as_ref().map(|c| c.hash))
            .finish_non_exhaustive()
    }
}

impl Governor {
    /// A governor over the given stores.
    #[expect(
        clippy::too_many_arguments,
        reason = "the composition root hands every store over once"
    )]
    pub fn new(
        set: &CharterSet,
        ledger: Ledger,
        scope_counters: ScopeCounters,
        sessions: SessionStore,
        controls: Arc<Controls>,
        approvals: Arc<Approvals>,
        model_turns: Arc<ModelTurns>,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
        result_deadlines: ResultDeadlines,
        capture: Arc<CaptureQuota>,
    ) -> Governor {
        Governor {
            telemetry: Arc::new(crate::telemetry::for_set(set)),
            governed: GovernedCell::new(set),
            ledger,
            scope_counters,
            sessions,
            controls,
            approvals,
            model_turns,
            clock,
            shutdown,
            outstanding: OutstandingActions::new(result_deadlines),
            open_approvals: approval_wait::OpenApprovals::default(),
            capture,
            shadow: None,
        }
    }

    /// Counts into `telemetry` (shared with the rest of the gateway) instead of its own.
    pub fn with_telemetry(mut self, telemetry: Arc<warden_telemetry::Telemetry>) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The approval workflow.
    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.approvals
    }

    /// Recent model turns by session.
    pub fn model_turns(&self) -> &Arc<ModelTurns> {
        &self.model_turns
    }

    /// The clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Decides an action, records it, and waits for approval where one is needed (until the
    /// deadline). A tool the charter's inventory does not name is refused
    /// ([`RefusalReason::NotInventoried`]) and recorded before any decision.
    pub async fn authorize(
        &self,
        session: &Arc<Session>,
        tool: &str,
        args: Value,
        via: Via,
    ) -> Result<Allowed, Refused> {
        self.authorize_waiting(session, tool, args, via, Waiting::default())
            .await
    }

    /// [`authorize`](Self::authorize), waiting for approval as `waiting` says.
    pub async fn authorize_waiting(
        &self,
        session: &Arc<Session>,
        tool: &str,
        args: Value,
        via: Via,
        waiting: Waiting<'_>,
    ) -> Result<Allowed, Refused> {
        // One charter for the whole action (its agent's): decided, waited for and rechecked
        // under it. An agent without a charter in force is refused, recorded.
        let Some(governed) = self.governed_for(&session.agent) else {
            let why = format!(
                "agent `{}` has no charter in force at this gateway",
                session.agent
            );
            return Err(self
                .record_refused_attempt(
                    session,
                    (tool, waiting.called_as),
                    &args,
                    via,
                    RefusalReason::Denied,
                    &why,
                )
                .await);
        };
        let allowed = self
            .decide_and_wait(&governed, session, tool, args.clone(), via, waiting)
            .await?;
        self.recheck_paths(&governed, session, tool, &args, &allowed)
            .await?;
        // An action allowed after approval gains its action labels here, before the caller
        // forwards it (one allowed at once gained them with its decision: none are new).
        let added = session.add_labels(&action_labels(&governed.charter, tool, &allowed.args));
        if !added.is_empty() {
            let record = NewRecord {
                session: Some(session.id.clone()),
                kind: RecordKind::LabelsAdded,
                payload: json!({ "action": allowed.action_id, "labels": added }),
            };
            if let Err(e) = self.ledger.append(record).await {
                tracing::error!(error = %e, "The ledger cannot record labels; they stay in force.");
            }
            self.persist_labels(session, &added).await;
        }
        // Tracked from here until its result is recorded: a result that never comes is
        // recorded as `unknown` (see `record_unreported`).
        if let Some(evicted) = self
            .outstanding
            .insert(&allowed.action_id, &session.id, tool, via)
        {
            self.record_unknown(
                vec![evicted],
                "more forwarded actions awaited their result than warden tracks",
            )
            .await;
        }
        Ok(allowed)
    }

    /// Decides, records, and waits for approval where one is needed.
    async fn decide_and_wait(
        &self,
        governed: &Governed,
        session: &Arc<Session>,
        tool: &str,
        args: Value,
        via: Via,
        waiting: Waiting<'_>,
    ) -> Result<Allowed, Refused> {
        let called_as = waiting.called_as;
        // Record before forward needs arguments the ledger can take.
        self.check_capture(session, tool, called_as, &args, via)
            .await?;
        // Before anything else looks at the call: a tool the inventory does not name is
        // refused whatever the rules say (a glob such as `fs.*` would match it), on every path.
        let charter = &governed.charter;
        if !charter.is_inventoried(tool) {
            self.telemetry.decision(
                "deny",
                "prohibited",
                "not_inventoried",
                tool,
                &charter.identity.id,
            );
            return Err(self
                .record_refused_attempt(
                    session,
                    (tool, called_as),
                    &args,
                    via,
                    RefusalReason::NotInventoried,
                    NOT_INVENTORIED,
                )
                .await);
        }
        // A delegated session is decided under every charter of its chain too: an ancestor
        // without a charter in force refuses, and so does a tool its inventory does not name.
        let ancestors = match self.ancestry_for(session, tool) {
            Ok(a) => a,
            Err((reason, why)) => {
                return Err(self
                    .record_refused_attempt(session, (tool, called_as), &args, via, reason, &why)
                    .await);
            }
        };
        // Ahead of the charter: path arguments in the form that is decided and forwarded,
        // refused when they cannot be resolved as the server would or reach the data directory.
        let prepared = governed
            .paths
            .prepare(tool, &args, governed.is_local(tool))
            .await;
        let decided_args = match prepared {
            Ok(decided) => decided,
            Err(why) => {
                return Err(self
                    .record_refused_attempt(
                        session,
                        (tool, called_as),
                        &args,
                        via,
                        RefusalReason::Denied,
                        &why,
                    )
                    .await);
            }
        };
        let action_id = Uuid::now_v7().to_string();
        let now = self.clock.now();
        let mut attempted =
            json!({ "action": action_id, "via": via.as_str(), "tool": tool, "arguments": args });
        if let (Some(sent), Some(obj)) = (called_as, attempted.as_object_mut()) {
            obj.insert("called_as".to_owned(), Value::String(sent.to_owned()));
        }
        if let Some(trace) = waiting.trace {
            trace.record_in(&mut attempted);
        }
        if decided_args != args
            && let Some(obj) = attempted.as_object_mut()
        {
            // Recorded too: charged (resolution adds a few bytes at most to each path).
            self.capture.charge(&session.id, json_len(&decided_args));
            obj.insert("resolved_arguments".to_owned(), decided_args.clone());
        }
        let sid = Some(session.id.clone());
        let record = |kind: RecordKind, payload: Value| NewRecord {
            session: sid.clone(),
            kind,
            payload,
        };

        if !session.is_revoked() && session.is_expired(now) {
            let batch = vec![
                record(RecordKind::ActionAttempted, attempted),
                record(
                    RecordKind::SessionExpired,
                    json!({ "action": action_id, "expired_at": session.expires_at.to_string() }),
                ),
            ];
            let _ = self.ledger.append_batch(batch).await;
            return Err(Refused {
                action_id: Some(action_id),
                reason: RefusalReason::SessionExpired,
                decision: None,
                message: "the session has expired; ask the operator for a new one".to_owned(),
                approval: None,
            });
        }

        // Its own labels and every live ancestor's: what a parent read later flows on.
        let labels = self.sessions.labels_with_ancestors(session);
        // The controls that apply to this session (or an ancestor) and tool, from the
        // in-memory snapshot.
        let applied = self.controls.applying(session, Some(tool), now);
        // A revoked (or expired, or forgotten) ancestor revokes the session for this decision,
        // before the revocation's cascade reaches it.
        let revoked = session.is_revoked() || self.sessions.ancestor_inactive(session, now);
        let controls: PdpControls = applied.pdp(revoked);
        // The shadow charter decides beside the live one of its own agent only.
        let shadow = shadow::ShadowRun::new(
            self.shadow
                .as_deref()
                .filter(|s| s.identity.id == session.agent),
        );
        let asked = delegated::Asked {
            tool,
            args: &decided_args,
            labels: &labels,
            controls,
            now,
        };
        let delegated::Intersection {
            mut decision,
            binding,
            under,
            increments,
        } = match self
            .decide_under(governed, &ancestors, session, &asked, &shadow)
            .await
        {
            Ok(i) => i,
            // Fail closed: a use that cannot be counted is not allowed unmetered.
            Err(e) => {
                tracing::error!(error = %e, "The scope counters cannot be read or counted; the action is refused.");
                return Err(self
                    .record_refused_attempt(
                        session,
                        (tool, called_as),
                        &args,
                        via,
                        RefusalReason::StoreUnavailable,
                        "the state store is unavailable, so the decision cannot be counted",
                    )
                    .await);
            }
        };
        // A decision a control changed names it, and its reason reaches the agent (and
        // the approvers, when it asks).
        let control = applied.changed(decision.reason).map(|c| {
            let by = format!("control `{}`: {}", c.id, c.reason);
            decision.detail = Some(match decision.detail.take() {
                Some(d) => format!("{d}; {by}"),
                None => by,
            });
            c.id.clone()
        });
        // Labels that depend only on the action (its tool and paths) are in force from the
        // moment it is allowed, before it runs: a concurrent call of the session decided after
        // this one sees them. Added even if the commit below fails (they only restrict).
        let labelled = if decision.verdict == Verdict::Allow {
            let mut gained = action_labels(charter, tool, &decided_args);
            for a in &ancestors {
                gained.extend(action_labels(&a.governed.charter, tool, &decided_args));
            }
            session.add_labels(&gained)
        } else {
            Vec::new()
        };
        let hash = ActionHash::of(&session.id, tool, &decided_args);
        let plan = match decision.verdict {
            // Raised under the binding charter: its approvers decide.
            Verdict::Ask => Some(
                self.plan_approval(
                    &binding,
                    session,
                    tool,
                    &decided_args,
                    &decision,
                    &action_id,
                    &hash,
                    now,
                )
                .await,
            ),
            _ => None,
        };
        let mut decided = json!({ "action": action_id, "decision": decision });
        if !session.chain.is_empty()
            && let Some(obj) = decided.as_object_mut()
        {
            obj.insert("chain".to_owned(), json!(session.chain));
            obj.insert("under".to_owned(), Value::Array(under));
        }
        if let (Some(id), Some(obj)) = (control, decided.as_object_mut()) {
            obj.insert("control".to_owned(), Value::String(id));
        }
        let linked = match &plan {
            Some(Plan::Use(e) | Plan::Join(e)) => Some(e.id().to_owned()),
            Some(Plan::Denied(_, p)) => Some(p.id.clone()),
            Some(Plan::Create(r)) => Some(r.id.clone()),
            Some(Plan::Unavailable(_)) | None => None,
        };
        if let (Some(id), Some(obj)) = (linked, decided.as_object_mut()) {
            obj.insert("approval".to_owned(), Value::String(id));
        }
        let mut batch = vec![
            record(RecordKind::ActionAttempted, attempted),
            record(RecordKind::ActionDecided, decided),
        ];
        // In the same commit as the decision: no extra durable write.
        let shadowed =
            shadow
                .record(&session.id, &action_id, &decision)
                .map(|(r, verdict, diverged)| {
                    batch.push(r);
                    (verdict, diverged)
                });
        match (&decision.verdict, &plan) {
            (Verdict::Allow, _) => {
                if !labelled.is_empty() {
                    batch.push(record(
                        RecordKind::LabelsAdded,
                        json!({ "action": action_id, "labels": labelled }),
                    ));
                }
                batch.push(record(
                    RecordKind::ActionForwarded,
                    json!({ "action": action_id, "tool": tool }),
                ));
            }
            (_, Some(Plan::Join(e))) => batch.push(record(
                RecordKind::ApprovalAwaited,
                json!({ "action": action_id, "approval": e.id() }),
            )),
            (_, Some(Plan::Unavailable(why))) => batch.push(record(
                RecordKind::ApprovalUnavailable,
                json!({ "action": action_id, "why": why }),
            )),
            (_, Some(Plan::Create(req))) => {
                batch.push(record(RecordKind::ApprovalRequested, request_json(req)));
            }
            _ => {}
        }
        // INVARIANT: nothing is forwarded unless this commit succeeded.
        if let Err(e) = self.ledger.append_batch(batch).await {
            tracing::error!(error = %e, "The ledger cannot record an action; it is refused.");
            return Err(Refused {
                action_id: None,
                reason: RefusalReason::LedgerUnavailable,
                decision: Some(decision),
                message: "the action is refused: the ledger cannot record it".to_owned(),
                approval: None,
            });
        }
        if let Some((verdict, diverged)) = shadowed {
            self.count_shadow(verdict, diverged);
        }
        let (verdict, tier, why) = (decision.verdict, decision.tier, decision.reason);
        self.telemetry.decision(
            verdict.as_str(),
            tier.as_str(),
            why.as_str(),
            tool,
            &charter.identity.id,
        );
        self.persist_labels(session, &labelled).await;
        for inc in increments {
            if let Err(e) = self.scope_counters.persist(inc).await {
                tracing::warn!(error = %e, "Scope counters could not be written through; they stay counted in memory.");
            }
        }
        let refused =
            |reason: RefusalReason, message: String, approval: Option<PendingApproval>| Refused {
                action_id: Some(action_id.clone()),
                reason,
                decision: Some(decision.clone()),
                message,
                approval,
            };
        let entry = match (decision.verdict, plan) {
            (Verdict::Allow, _) => {
                return Ok(Allowed {
                    action_id,
                    decision,
                    args: decided_args,
                    started: Instant::now(),
                });
            }
            (Verdict::Deny, _) | (Verdict::Ask, None) => {
                return Err(Refused {
                    message: format!("warden refused `{tool}`: {}", decision.summary()),
                    action_id: Some(action_id),
                    reason: RefusalReason::Denied,
                    decision: Some(decision),
                    approval: None,
                });
            }
            (Verdict::Ask, Some(Plan::Unavailable(why))) => {
                return Err(refused(
                    RefusalReason::ApprovalUnavailable,
                    format!(
                        "warden refused `{tool}`: it needs approval ({}), but {why}",
                        decision.summary()
                    ),
                    None,
                ));
            }
            (Verdict::Ask, Some(Plan::Denied(message, pending))) => {
                return Err(refused(
                    RefusalReason::ApprovalDenied,
                    format!("warden refused `{tool}`: {message}"),
                    Some(pending),
                ));
            }
            (Verdict::Ask, Some(Plan::Use(entry) | Plan::Join(entry))) => entry,
            (Verdict::Ask, Some(Plan::Create(req))) => {
                match self.approvals.create(*req).await {
                    Ok(e) => {
                        self.open_approvals.add(&session.id, &e);
                        e
                    }
                    Err(StoreError::Duplicate) => match self.approvals.by_hash(&hash) {
                        // An identical call raised the same request a moment ago: join it.
                        Some(e) => {
                            let _ = self
                                .ledger
                                .append(record(
                                    RecordKind::ApprovalAwaited,
                                    json!({ "action": action_id, "approval": e.id() }),
                                ))
                                .await;
                            e
                        }
                        None => {
                            return Err(refused(
                                RefusalReason::ApprovalUnavailable,
                                format!(
                                    "warden refused `{tool}`: the approval request could not be stored"
                                ),
                                None,
                            ));
                        }
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "An approval request could not be stored; the action is refused.");
                        let _ = self
                            .ledger
                            .append(record(
                                RecordKind::ApprovalUnavailable,
                                json!({ "action": action_id, "why": "the approval request could not be stored" }),
                            ))
                            .await;
                        return Err(refused(
                            RefusalReason::ApprovalUnavailable,
                            format!(
                                "warden refused `{tool}`: the approval request could not be stored"
                            ),
                            None,
                        ));
                    }
                }
            }
        };
        self.wait(
            session,
            entry,
            &hash,
            tool,
            action_id,
            decision,
            decided_args,
            waiting,
        )
        .await
    }
}
