//! An approver's decision on a request: who decides ([`Decider`]), approve or deny
//! ([`Choice`]), and [`Approvals::decide`], which checks the vote against the request's state
//! machine and the charter's authority, records it, stores it, and only then lets it take
//! effect; a refused vote is recorded too.

use serde_json::json;
use warden_core::RecordKind;

use super::{Approvals, MAX_REASON_BYTES};
use crate::{ApprovalRequest, Approver, Status, VoteRefusal, Voted};

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
    /// `granted`, `counted` (a vote; the quorum is not met yet), `denied` or `reversed`.
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
/// Refuses a reason longer than [`MAX_REASON_BYTES`].
pub(super) fn check_reason(reason: Option<&str>) -> Result<(), DecideError> {
    match reason {
        Some(r) if r.len() > MAX_REASON_BYTES => Err(DecideError {
            status: 400,
            code: "invalid_reason",
            message: format!("`reason` is longer than {MAX_REASON_BYTES} bytes"),
        }),
        _ => Ok(()),
    }
}

impl Approvals {
    /// The request `id` held in memory (on PostgreSQL, loaded from the store when another
    /// instance raised it), to decide on. When it cannot be decided — decided long ago, or
    /// unknown — the refusal, recorded with `payload(code, message)`: `unknown_approval`
    /// (404) for an unknown id, what `gone` says for a stored request.
    pub(super) async fn live_entry(
        &self,
        id: &str,
        payload: &(dyn Fn(&str, &str) -> serde_json::Value + Sync),
        gone: fn(&ApprovalRequest) -> VoteRefusal,
    ) -> Result<std::sync::Arc<crate::store::Entry>, DecideError> {
        let loaded = self
            .store
            .load(id, self.clock.now())
            .await
            .map_err(|e| DecideError {
                status: 503,
                code: "store_unavailable",
                message: e.to_string(),
            })?;
        let req = match loaded {
            Some(crate::store::Loaded::Live(entry)) => return Ok(entry),
            Some(crate::store::Loaded::Gone(req)) => req,
            None => {
                let message = format!("no approval request `{id}`");
                self.record_refused(None, payload("unknown_approval", &message))
                    .await;
                return Err(DecideError {
                    status: 404,
                    code: "unknown_approval",
                    message,
                });
            }
        };
        let refusal = gone(&req);
        let message = refusal.message(&req);
        self.record_refused(Some(&req.session), payload(refusal.code(), &message))
            .await;
        Err(refused(refusal, message))
    }

    /// `decider` as the state machine sees it, for `request`.
    pub(super) fn approver<'a>(
        &self,
        decider: &Decider<'a>,
        request: &ApprovalRequest,
    ) -> Approver<'a> {
        Approver {
            principal: decider.principal,
            has_authority: decider.principal.is_some_and(|p| {
                self.has_authority(request.deciding_agent(), p, &request.authority_for)
            }),
            channel: decider.channel,
            target: decider.target,
            credential: decider.credential_id,
        }
    }
}

/// The API error of a request that could not be taken for a decision: nothing changed.
pub(super) fn store_unavailable(e: crate::StoreError) -> DecideError {
    DecideError {
        status: 503,
        code: "store_unavailable",
        message: format!(
            "the approval store cannot be reached, so the decision did not take effect: {e}"
        ),
    }
}

pub(super) fn refused(r: VoteRefusal, message: String) -> DecideError {
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
        VoteRefusal::RememberNotAllowed => 400,
        VoteRefusal::NotDenied(_) => 409,
        VoteRefusal::LinkCannotReverse => 403,
    }
}

impl Approvals {
    /// Approves or denies request `id` as `decider`.
    pub async fn decide(
        &self,
        id: &str,
        decider: &Decider<'_>,
        choice: Choice,
        reason: Option<String>,
    ) -> Result<Decided, DecideError> {
        self.decide_remembering(id, decider, choice, reason, false)
            .await
    }

    /// [`decide`](Self::decide), with `remember` on an approval: the approver asks that the
    /// values the request's rules name in `approval.remember` become trusted for the session
    /// when the grant is used (refused, `400 remember_not_allowed` and recorded, when the
    /// request names none). `remember` on a denial is refused the same way.
    pub async fn decide_remembering(
        &self,
        id: &str,
        decider: &Decider<'_>,
        choice: Choice,
        reason: Option<String>,
        remember: bool,
    ) -> Result<Decided, DecideError> {
        let refused_payload = |code: &str, message: &str| {
            json!({
                "approval": id,
                "attempted": choice.as_str(),
                "remember": remember,
                "credential": decider.credential,
                "principal": decider.principal,
                "channel": decider.channel,
                "refusal": code,
                "message": message,
            })
        };
        check_reason(reason.as_deref())?;
        let entry = self
            .live_entry(id, &refused_payload, |req| {
                if req.status == Status::Used {
                    VoteRefusal::Replay
                } else {
                    VoteRefusal::AlreadyDecided(req.status)
                }
            })
            .await?;
        // The request as stored (on PostgreSQL its row locked until the decision is saved,
        // so a vote counted or a grant used on another instance is seen here).
        let mut current = self.store.begin(&entry).await.map_err(store_unavailable)?;
        let now = self.clock.now();
        let approver = self.approver(decider, &current);
        let sod = self.separation_of_duties(current.deciding_agent());
        let mut next = current.clone();
        let applied = match choice {
            Choice::Approve => {
                next.approve_remembering(&approver, sod, reason.clone(), remember, now)
            }
            Choice::Deny if remember => Err(VoteRefusal::RememberNotAllowed),
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
                    "remember": remember,
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
        current.save(next).await.map_err(|e| DecideError {
            status: 503,
            code: "store_unavailable",
            message: format!("the decision could not be stored, so it did not take effect: {e}"),
        })?;
        Ok(Decided {
            outcome,
            request: current.clone(),
        })
    }
}
