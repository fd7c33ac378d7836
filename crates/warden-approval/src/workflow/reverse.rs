//! Reversing a denial: [`Approvals::reverse`] makes a denied request pending again, for an
//! approver who could have decided it, through the API, before the deadline. The reversal is
//! recorded (`approval_reversed`) before it is stored, and stored before anyone sees it: the
//! calls of the same action that arrive afterwards join the pending request. Every refused
//! attempt is recorded as `approval_refused`.

use serde_json::json;
use warden_core::RecordKind;

use super::Approvals;
use super::decide::{DecideError, Decided, Decider};
use crate::{Status, VoteRefusal};

impl Approvals {
    /// Reverses the denial of request `id` as `decider`. Refused (and recorded): an unknown
    /// request (`404`), one that is not denied (`409 not_denied`), past its deadline (`410
    /// expired`), through a link (`403 link_cannot_reverse`), by a credential that is not an
    /// approver's, by the requester under separation of duties, or without authority (`403`).
    pub async fn reverse(
        &self,
        id: &str,
        decider: &Decider<'_>,
        reason: Option<String>,
    ) -> Result<Decided, DecideError> {
        let refused_payload = |code: &str, message: &str| {
            json!({
                "approval": id,
                "attempted": "reverse",
                "credential": decider.credential,
                "principal": decider.principal,
                "channel": decider.channel,
                "refusal": code,
                "message": message,
            })
        };
        super::decide::check_reason(reason.as_deref())?;
        // Not in memory: a denial past its deadline (forgotten by the sweeper), another status
        // decided long ago, or unknown.
        let entry = self
            .live_entry(id, &refused_payload, |req| {
                if req.status == Status::Denied {
                    VoteRefusal::Expired
                } else {
                    VoteRefusal::NotDenied(req.status)
                }
            })
            .await?;
        let mut current = self
            .store
            .begin(&entry)
            .await
            .map_err(super::decide::store_unavailable)?;
        let now = self.clock.now();
        let approver = self.approver(decider, &current);
        let sod = self.separation_of_duties(current.deciding_agent());
        let mut next = current.clone();
        if let Err(refusal) = next.reverse(&approver, sod, reason.clone(), now) {
            let message = refusal.message(&current);
            self.record_refused(
                Some(&current.session),
                refused_payload(refusal.code(), &message),
            )
            .await;
            return Err(super::decide::refused(refusal, message));
        }
        let denial = current.denial.as_ref();
        let payload = json!({
            "approval": id,
            "action": current.action,
            "approver": decider.principal,
            "credential": decider.credential,
            "channel": decider.channel,
            "reason": reason,
            "denied_by": denial.map(|d| d.approver.as_str()),
            "denial_reason": denial.and_then(|d| d.reason.as_deref()),
            "deadline": warden_core::text::rfc3339(current.deadline),
        });
        // Recorded first; then stored; only then does a call of the same action join it.
        self.record(&current.session, RecordKind::ApprovalReversed, payload)
            .await
            .map_err(|e| DecideError {
                status: 503,
                code: "ledger_unavailable",
                message: format!(
                    "the reversal could not be recorded, so it did not take effect: {e}"
                ),
            })?;
        current.save(next).await.map_err(|e| DecideError {
            status: 503,
            code: "store_unavailable",
            message: format!("the reversal could not be stored, so it did not take effect: {e}"),
        })?;
        Ok(Decided {
            outcome: "reversed",
            request: current.clone(),
        })
    }
}
