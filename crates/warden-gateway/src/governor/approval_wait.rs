//! The governor's approval half: what to do about an action that needs approval (use a grant,
//! join an open request, repeat a denial, ask anew, or refuse because nobody could approve),
//! and the wait until the request is decided, the deadline passes, the caller goes away or
//! the gateway stops. A grant is marked used (and recorded) before the call it releases
//! returns; what would deny any action (a revoked or expired session, a frozen tool or
//! posture) also stops an approved one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;
use warden_approval::workflow::{authority_for, voided_why};
use warden_approval::{ActionHash, ApprovalRequest, Entry, NewApproval, Status};
use warden_audit::{NewRecord, RecordKind};
use warden_charter::CompiledCharter;
use warden_core::gate::{Allowed, PendingApproval, RefusalReason, Refused};
use warden_core::text::rfc3339;
use warden_core::{Decision, Recorder, TrustedSource};
use warden_session::{Session, SessionStore};

use super::{Governor, Waiting};

/// The most approval requests one session may have open (pending, or granted and not yet
/// used) at once; an action that would raise another is refused (`approval_unavailable`)
/// until some are decided, so one agent cannot flood the approvers or the store.
pub(crate) const MAX_OPEN_APPROVALS_PER_SESSION: usize = 16;

/// The open approval requests each session raised in this run of the gateway (requests loaded
/// at start-up are not counted against the cap).
#[derive(Debug, Default)]
pub(super) struct OpenApprovals {
    by_session: std::sync::Mutex<std::collections::HashMap<String, Vec<Arc<Entry>>>>,
}

impl OpenApprovals {
    /// How many of `session`'s requests are still open (forgetting the others).
    fn open(&self, session: &str) -> usize {
        let Ok(mut map) = self.by_session.lock() else {
            // Fail closed: without the count, the session is at its cap.
            return MAX_OPEN_APPROVALS_PER_SESSION;
        };
        let n = map.get_mut(session).map_or(0, |entries| {
            entries.retain(|e| matches!(e.status(), Status::Pending | Status::Granted));
            entries.len()
        });
        if n == 0 {
            map.remove(session);
        }
        n
    }

    /// Counts `entry` as one of `session`'s open requests.
    pub(super) fn add(&self, session: &str, entry: &Arc<Entry>) {
        if let Ok(mut map) = self.by_session.lock() {
            let entries = map.entry(session.to_owned()).or_default();
            entries.retain(|e| matches!(e.status(), Status::Pending | Status::Granted));
            entries.push(entry.clone());
        }
    }
}

/// How long past its deadline a wait ends by itself, as timed out, if the sweeper has not
/// marked the request timed out by then (a few sweeps: the sweeper normally does it first).
const DEADLINE_SLACK: Duration = Duration::from_secs(2);

/// ` by `approver`: reason` for a denied request (empty if the denial is missing).
fn denied_by(req: &ApprovalRequest) -> String {
    req.denial.as_ref().map_or_else(String::new, |d| {
        let reason = d
            .reason
            .as_deref()
            .map_or_else(String::new, |r| format!(": {r}"));
        format!(" by `{}`{reason}", d.approver)
    })
}

/// What the governor does about an action that needs approval.
pub(super) enum Plan {
    /// A grant for this exact action exists: use it.
    Use(Arc<Entry>),
    /// A request for this exact action is open: wait on it.
    Join(Arc<Entry>),
    /// An approver denied this exact action (before the request's deadline).
    Denied(String, PendingApproval),
    /// Nobody could approve it.
    Unavailable(String),
    /// Ask: a new request.
    Create(Box<ApprovalRequest>),
}

impl Governor {
    /// What to do about an action that needs approval: use a grant for this exact action,
    /// join its open request, repeat its denial, or ask anew — unless nobody could approve it.
    #[expect(
        clippy::too_many_arguments,
        reason = "the action, as the governor sees it"
    )]
    pub(super) async fn plan_approval(
        &self,
        charter: &CompiledCharter,
        session: &Session,
        tool: &str,
        args: &Value,
        decision: &Decision,
        action_id: &str,
        hash: &ActionHash,
        now: OffsetDateTime,
    ) -> Plan {
        if let Some(entry) = self.approvals.by_hash(hash) {
            match entry.status() {
                Status::Granted => return Plan::Use(entry),
                Status::Pending => return Plan::Join(entry),
                Status::Denied => {
                    let req = entry.lock().await;
                    let by = denied_by(&req);
                    let message = format!(
                        "this exact action was denied{by} (approval {}); it is refused until {}",
                        req.id,
                        rfc3339(req.deadline)
                    );
                    let pending = PendingApproval {
                        id: req.id.clone(),
                        deadline: rfc3339(req.deadline),
                        status: Status::Denied,
                        approvers: req.approvers.clone(),
                        quorum: req.quorum,
                    };
                    return Plan::Denied(message, pending);
                }
                Status::TimedOut | Status::Used | Status::Voided => {}
            }
        }
        let spec = decision
            .approval
            .clone()
            .unwrap_or(warden_core::ApprovalSpec {
                timeout_seconds: charter.default_approval.timeout.as_secs(),
                quorum: charter.default_approval.quorum,
            });
        let rules = authority_for(decision);
        let approvers = self
            .approvals
            .eligible(&charter.identity.id, &rules, &session.principal);
        if approvers.len() < usize::try_from(spec.quorum).unwrap_or(usize::MAX) {
            let sod = if charter.authority.separation_of_duties {
                format!(" other than `{}`", session.principal)
            } else {
                String::new()
            };
            return Plan::Unavailable(format!(
                "{} approver(s) needed and the charter gives the authority for {} to {} principal(s){sod}",
                spec.quorum,
                rules
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                approvers.len()
            ));
        }
        let open = self.open_approvals.open(&session.id);
        if open >= MAX_OPEN_APPROVALS_PER_SESSION {
            return Plan::Unavailable(format!(
                "the session has {open} open approval requests, the most it may have; wait until some are decided"
            ));
        }
        // Checked: a deadline that cannot be computed denies (nobody could approve in time).
        let deadline = i64::try_from(spec.timeout_seconds)
            .ok()
            .and_then(|secs| now.checked_add(time::Duration::seconds(secs)));
        let Some(deadline) = deadline else {
            return Plan::Unavailable(format!(
                "the approval deadline ({}s from now) cannot be computed",
                spec.timeout_seconds
            ));
        };
        // What teaches the approver: the arguments the determining rules let them remember,
        // the earlier refusals of this action (none, if the store cannot say: the request is
        // still raised), and where the judged values were found.
        let remember: Vec<String> = decision
            .rules
            .iter()
            .filter_map(|r| charter.rule(&r.id))
            .flat_map(|r| r.remember.iter().map(|a| a.argument.clone()))
            .collect();
        let earlier = match self.approvals.store().earlier(hash).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "The earlier refusals of an action could not be read.");
                Vec::new()
            }
        };
        let request = self.approvals.new_request(NewApproval {
            id: Uuid::now_v7().to_string(),
            action: action_id.to_owned(),
            session: session.id.clone(),
            agent: session.agent.clone(),
            principal: session.principal.clone(),
            task: session.task.clone(),
            tool: tool.to_owned(),
            arguments: args.clone(),
            reason: decision.reason.as_str().to_owned(),
            why: decision.summary(),
            rules: decision.rules.clone(),
            authority_for: rules,
            approvers,
            quorum: spec.quorum,
            charter: charter.hash.to_string(),
            requested_at: now,
            deadline,
            model_turns: self.model_turns.recent(&session.id),
        });
        let request = request.with_context(remember, earlier, decision.provenance.clone());
        // A delegated session's request names its chain and the agent whose charter asked
        // (whose approvers decide it).
        let request = if session.chain.is_empty() {
            request
        } else {
            let chain = session
                .chain
                .iter()
                .map(|l| warden_approval::ChainLink {
                    session: l.session.clone(),
                    agent: l.agent.clone(),
                })
                .collect();
            request.delegated(&charter.identity.id, chain)
        };
        Plan::Create(Box::new(request))
    }

    /// Waits on `entry` until it is decided, then releases the action (marking the grant used)
    /// or refuses it.
    #[expect(
        clippy::too_many_arguments,
        reason = "the action, as the governor sees it"
    )]
    pub(super) async fn wait(
        &self,
        session: &Session,
        entry: Arc<Entry>,
        hash: &ActionHash,
        tool: &str,
        action_id: String,
        decision: Decision,
        args: Value,
        waiting: Waiting<'_>,
    ) -> Result<Allowed, Refused> {
        let _waited = crate::telemetry::ApprovalWait::start(&self.telemetry);
        let started = Instant::now();
        let deadline = entry.deadline();
        let total = (deadline - self.clock.now()).as_seconds_f64().max(0.0);
        // Who may approve, for the waiting caller (the decide API shows them).
        let (approvers, quorum) = {
            let req = entry.lock().await;
            (req.approvers.clone(), req.quorum)
        };
        let pending = |status: Status| PendingApproval {
            id: entry.id().to_owned(),
            deadline: rfc3339(deadline),
            status,
            approvers: approvers.clone(),
            quorum,
        };
        let refused = |reason: RefusalReason, message: String, status: Status| Refused {
            action_id: Some(action_id.clone()),
            reason,
            decision: Some(decision.clone()),
            message,
            approval: Some(pending(status)),
        };
        let mut rx = entry.subscribe();
        // The first progress report is one interval in (awaiting an interval's immediate
        // first tick cost up to a millisecond of timer resolution before the status check).
        let every = self.approvals.progress_interval;
        // Checked: an interval too long to add to now starts at once (a progress report is
        // harmless; a panic is not).
        let start = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval_at(
            start.checked_add(every).unwrap_or(start),
            every.max(Duration::from_millis(1)),
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let max_wait = tokio::time::sleep(waiting.max_wait.unwrap_or(Duration::MAX / 4));
        tokio::pin!(max_wait);
        // The wait's own deadline arm: it ends at the request's deadline (plus a little slack
        // for the sweeper) even if the request is never marked timed out (fail closed).
        let left = std::time::Duration::try_from(deadline - self.clock.now()).unwrap_or_default();
        let past_deadline = tokio::time::sleep(left.saturating_add(DEADLINE_SLACK));
        tokio::pin!(past_deadline);
        let cancel = waiting.cancel.clone().unwrap_or_default();
        loop {
            let status = *rx.borrow_and_update();
            match status {
                Status::Pending => {}
                Status::Granted => {
                    if cancel.is_cancelled() {
                        // Nobody would receive the result: leave the grant for the retry.
                        return Err(refused(
                            RefusalReason::ApprovalPending,
                            "the caller went away; the approval stays for the same call, retried"
                                .to_owned(),
                            status,
                        ));
                    }
                    // What would deny any action also stops an approved one: the session
                    // revoked or expired, the tool or the gateway frozen while it waited.
                    if let Some(why) = self.stopped(session, tool) {
                        let payload =
                            json!({ "action": action_id, "approval": entry.id(), "why": why });
                        let _ = self
                            .ledger
                            .append(NewRecord {
                                session: Some(session.id.clone()),
                                kind: RecordKind::ApprovalUnavailable,
                                payload,
                            })
                            .await;
                        return Err(refused(
                            RefusalReason::Denied,
                            format!("warden refused `{tool}`: it was approved, but {why}"),
                            status,
                        ));
                    }
                    return match self
                        .approvals
                        .use_grant(&entry, hash, &action_id, tool)
                        .await
                    {
                        Ok(()) => {
                            let req = entry.lock().await.clone();
                            trust_remembered(&self.ledger, &self.sessions, session, &req).await;
                            Ok(Allowed {
                                action_id,
                                decision,
                                args,
                                started: Instant::now(),
                            })
                        }
                        Err((_, message)) => Err(refused(
                            RefusalReason::ApprovalDenied,
                            format!("warden refused `{tool}`: {message}"),
                            entry.status(),
                        )),
                    };
                }
                Status::Denied => {
                    let req = entry.lock().await;
                    let by = denied_by(&req);
                    return Err(refused(
                        RefusalReason::ApprovalDenied,
                        format!(
                            "warden refused `{tool}`: the approval request {} was denied{by}",
                            req.id
                        ),
                        status,
                    ));
                }
                Status::TimedOut => {
                    return Err(refused(
                        RefusalReason::ApprovalTimedOut,
                        format!(
                            "warden refused `{tool}`: it needs approval ({}) and none was given before the deadline ({}s, request {})",
                            decision.summary(),
                            decision.approval.as_ref().map_or(0, |a| a.timeout_seconds),
                            entry.id()
                        ),
                        status,
                    ));
                }
                Status::Voided => {
                    let req = entry.lock().await;
                    return Err(refused(
                        RefusalReason::ApprovalDenied,
                        format!(
                            "warden refused `{tool}`: the approval request {} was voided: {}",
                            req.id,
                            voided_why(&req)
                        ),
                        status,
                    ));
                }
                Status::Used => {
                    return Err(refused(
                        RefusalReason::ApprovalDenied,
                        format!(
                            "warden refused `{tool}`: the approval {} was used by another call of the same action; an approval releases one call",
                            entry.id()
                        ),
                        status,
                    ));
                }
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err(refused(RefusalReason::ApprovalUnavailable, "the approval request was lost".to_owned(), status));
                    }
                }
                _ = ticker.tick() => {
                    if let Some(progress) = waiting.progress {
                        let waited = started.elapsed().as_secs_f64();
                        let message = format!(
                            "waiting for approval {} (deadline {})",
                            entry.id(),
                            rfc3339(deadline)
                        );
                        progress(waited, total, message).await;
                    }
                }
                () = &mut past_deadline => {
                    return Err(refused(
                        RefusalReason::ApprovalTimedOut,
                        format!(
                            "warden refused `{tool}`: it needs approval ({}) and none was given before the deadline ({}, request {})",
                            decision.summary(),
                            rfc3339(deadline),
                            entry.id()
                        ),
                        Status::TimedOut,
                    ));
                }
                () = &mut max_wait => {
                    return Err(refused(
                        RefusalReason::ApprovalPending,
                        format!("`{tool}` is waiting for approval {}; send the same call again to pick up the decision", entry.id()),
                        Status::Pending,
                    ));
                }
                () = cancel.cancelled() => {
                    return Err(refused(
                        RefusalReason::ApprovalPending,
                        "the caller went away; the request stays open for the same call, retried".to_owned(),
                        Status::Pending,
                    ));
                }
                () = self.shutdown.cancelled() => {
                    return Err(refused(
                        RefusalReason::ApprovalPending,
                        format!(
                            "warden refused `{tool}` for now: the gateway is shutting down; approval request {} stays open, and the same call retried after the restart picks up its decision",
                            entry.id()
                        ),
                        Status::Pending,
                    ));
                }
            }
        }
    }

    /// Why no action of `session` on `tool` may run now, if so.
    fn stopped(&self, session: &Session, tool: &str) -> Option<String> {
        let now = self.clock.now();
        if session.is_revoked() {
            return Some("the session was revoked".to_owned());
        }
        if session.is_expired(now) {
            return Some("the session has expired".to_owned());
        }
        let applied = self.controls.applying(session, Some(tool), now);
        if let Some(why) = applied.stopped() {
            return Some(why);
        }
        applied
            .tool_frozen
            .map(|c| format!("the tool is frozen by control `{}`: {}", c.id, c.reason))
    }
}

/// Makes the values a used grant of `req` remembers ([`ApprovalRequest::remembered`]) trusted
/// text of `session` (the request's own session: the caller passes the session the grant was
/// used in, whose id the action hash binds): for each, records `trust_added` first, then adds
/// it to the session's provenance and persists it. Called after the grant was used and the
/// forwarding recorded, before the call runs. A value whose `trust_added` cannot be recorded,
/// or that the session's trusted text cannot take (over its bound), is logged and NOT trusted
/// (fail closed: a later call with it needs approval again); the approved call itself still
/// runs. A value that cannot be persisted is trusted until the gateway restarts (it was
/// recorded). Returns how many values were trusted.
pub(crate) async fn trust_remembered(
    ledger: &dyn Recorder,
    sessions: &SessionStore,
    session: &Session,
    req: &ApprovalRequest,
) -> usize {
    if req.session != session.id {
        // Never: the action hash binds the session. Fail closed all the same.
        tracing::error!(approval = %req.id, "A grant of another session was not remembered.");
        return 0;
    }
    let mut trusted = 0;
    for (argument, text) in req.remembered() {
        let source = TrustedSource::Approval {
            approval: req.id.clone(),
            argument: argument.clone(),
        };
        let source_json = serde_json::to_value(&source).unwrap_or(Value::Null);
        let recorded = ledger
            .append(NewRecord {
                session: Some(session.id.clone()),
                kind: RecordKind::TrustAdded,
                payload: json!({ "session": session.id, "source": source_json, "text": text }),
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, approval = %req.id, argument = %argument, "The ledger cannot record a remembered value; it is not trusted.");
            continue;
        }
        if let Err(e) = session.add_trusted(&text, source.clone()) {
            tracing::warn!(error = %e, approval = %req.id, argument = %argument, "A remembered value was not trusted.");
            continue;
        }
        trusted += 1;
        if let Err(e) = sessions.persist_trust(&session.id, &text, &source).await {
            tracing::error!(error = %e, approval = %req.id, argument = %argument, "A remembered value could not be persisted; it is trusted until the gateway restarts.");
        }
    }
    trusted
}

#[cfg(test)]
mod tests;
