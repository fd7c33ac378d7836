//! The transition a live reload makes: a request raised under the charter it replaced,
//! decided again under the charter it put in force — voided, released or kept.

use time::OffsetDateTime;

use crate::request::{ApprovalRequest, Redecision, Status};

/// What the charter put in force makes of a request's action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redecide {
    /// Denied now: the request, or its unused grant, can no longer release anything.
    Void,
    /// Allowed now without approval (autonomous, or preapproved with its scope counted):
    /// the request becomes a grant bound to the new charter, which needs no approving vote
    /// and releases one call.
    Release,
    /// It still asks: the request stays as it is, bound to the new charter, with the
    /// approvers the new charter gives. An unused grant is kept only if its approving votes
    /// all come from those approvers and meet the new quorum; otherwise it is voided.
    Keep {
        /// The rule ids an approver needs authority for under the new charter.
        authority_for: Vec<String>,
        /// The principals who may approve under the new charter.
        approvers: Vec<String>,
        /// Distinct approvers needed under the new charter.
        quorum: u32,
    },
}

/// Why a reload's re-decision did not apply to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedecideRefusal {
    /// The request is no longer open (decided, used, timed out or voided meanwhile).
    NotOpen(Status),
    /// The request is not bound to the charter the reload replaced (raised under another, or
    /// re-decided already).
    OtherCharter,
    /// Its deadline has passed: the sweeper times it out.
    Expired,
}

impl ApprovalRequest {
    /// Applies `redecide`, the decision of charter `to` (put in force in place of `from`),
    /// to this request: only an open request, before its deadline, bound to `from`. Returns
    /// the outcome: `voided`, `released` or `kept`. The change is kept in `redecisions`.
    pub fn redecide(
        &mut self,
        from: &str,
        to: &str,
        redecide: &Redecide,
        why: String,
        now: OffsetDateTime,
    ) -> Result<&'static str, RedecideRefusal> {
        if !self.status.is_open() {
            return Err(RedecideRefusal::NotOpen(self.status));
        }
        if self.charter.as_deref() != Some(from) {
            return Err(RedecideRefusal::OtherCharter);
        }
        if now >= self.deadline {
            return Err(RedecideRefusal::Expired);
        }
        let outcome = match redecide {
            Redecide::Void => "voided",
            Redecide::Release => "released",
            Redecide::Keep {
                authority_for,
                approvers,
                quorum,
            } => {
                let quorum = (*quorum).max(1);
                let holds = |v: &crate::request::Vote| approvers.contains(&v.approver);
                let enough = u32::try_from(self.approvals.len()).unwrap_or(u32::MAX) >= quorum;
                if self.status == Status::Granted && !(enough && self.approvals.iter().all(holds)) {
                    // A grant the new charter's approvers would not have given: void.
                    "voided"
                } else {
                    // Votes of principals who may no longer approve stop counting.
                    self.approvals.retain(holds);
                    self.authority_for.clone_from(authority_for);
                    self.approvers.clone_from(approvers);
                    self.quorum = quorum;
                    "kept"
                }
            }
        };
        match outcome {
            "voided" => {
                self.status = Status::Voided;
                self.decided_at = Some(now);
            }
            "released" => {
                self.status = Status::Granted;
                self.decided_at = Some(now);
                self.charter = Some(to.to_owned());
            }
            _ => self.charter = Some(to.to_owned()),
        }
        self.redecisions.push(Redecision {
            from: from.to_owned(),
            charter: to.to_owned(),
            outcome: outcome.to_owned(),
            why,
            at: now,
        });
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
