//! The transitions of an approval request. Pure: no IO, no clock.
//!
//! ```text
//!            approve (quorum met)          use (same action, before the deadline)
//!  pending ───────────────────────▶ granted ──────────────────────────────────▶ used
//!     │  ╲ approve (quorum not met: a vote)   │
//!     │   ╲── deny ──▶ denied                 │ deadline
//!     │ deadline                              ▼
//!     └──────────────────────────────────▶ timed_out
//!
//!  denied ── reverse (an approver with authority, through the API, before the deadline) ──▶ pending
//! ```
//!
//! A reversal clears the votes (the request is asked again) and keeps the reversed denial in
//! `reversals`; the deadline does not move.
//!
//! Every refusal names its reason, so the gateway can record it and answer the caller.

use time::OffsetDateTime;

use crate::request::{ActionHash, ApprovalRequest, Reversal, Status, Vote};

mod redecide;
pub use redecide::{Redecide, RedecideRefusal};

/// Who is trying to decide a request.
#[derive(Clone, Copy, Debug)]
pub struct Approver<'a> {
    /// The charter principal the credential belongs to; `None` for a credential that is not
    /// an approver's (an admin's, for instance).
    pub principal: Option<&'a str>,
    /// Whether the principal's roles may approve every rule the request needs authority for
    /// (checked against the charter by the caller).
    pub has_authority: bool,
    /// How they decide: `api` or `link`.
    pub channel: &'a str,
    /// For a link, the delivery target it was sent to.
    pub target: Option<&'a str>,
    /// For the API, the id of the operator credential.
    pub credential: Option<&'a str>,
}

/// Why an attempt to decide a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteRefusal {
    /// The credential is not tied to a charter principal.
    NotAnApprover,
    /// The principal's roles may not approve this request's rules.
    NoAuthority,
    /// Separation of duties: the on-behalf-of principal may not approve their own agent's
    /// request.
    SelfApproval,
    /// This approver already approved; a quorum needs distinct approvers.
    DuplicateApprover,
    /// A link delivered to the same target as a link that already approved: whoever reads
    /// one webhook message casts at most one approving vote.
    SharedTarget,
    /// The grant was already used: approving it again would be a replay.
    Replay,
    /// The request was already decided (granted, denied or timed out).
    AlreadyDecided(Status),
    /// The deadline has passed.
    Expired,
    /// `remember` was asked for, and no determining rule of the request has
    /// `approval.remember`.
    RememberNotAllowed,
    /// A reversal of a request that is not denied (the status says what it is).
    NotDenied(Status),
    /// A reversal through a signed link: links approve or deny, and never reverse.
    LinkCannotReverse,
}

impl VoteRefusal {
    /// A stable label, for the ledger and the API's error code.
    pub fn code(self) -> &'static str {
        match self {
            VoteRefusal::NotAnApprover => "not_an_approver",
            VoteRefusal::NoAuthority => "no_authority",
            VoteRefusal::SelfApproval => "self_approval",
            VoteRefusal::DuplicateApprover => "duplicate_approver",
            VoteRefusal::SharedTarget => "shared_target",
            VoteRefusal::Replay => "replay",
            VoteRefusal::AlreadyDecided(_) => "already_decided",
            VoteRefusal::Expired => "expired",
            VoteRefusal::RememberNotAllowed => "remember_not_allowed",
            VoteRefusal::NotDenied(_) => "not_denied",
            VoteRefusal::LinkCannotReverse => "link_cannot_reverse",
        }
    }

    /// A sentence for the person who tried.
    pub fn message(self, req: &ApprovalRequest) -> String {
        match self {
            VoteRefusal::NotAnApprover => {
                "this operator credential is not an approver's: it is tied to no principal of the charter".to_owned()
            }
            VoteRefusal::NoAuthority => format!(
                "no role of yours may approve {}; approvers: {}",
                rule_list(&req.authority_for),
                if req.approvers.is_empty() {
                    "none".to_owned()
                } else {
                    req.approvers.join(", ")
                }
            ),
            VoteRefusal::SelfApproval => format!(
                "separation of duties: `{}` is the principal this agent acts for and may not approve its requests",
                req.principal
            ),
            VoteRefusal::DuplicateApprover => format!(
                "you already approved; this request needs {} distinct approvers",
                req.quorum
            ),
            VoteRefusal::SharedTarget => "a link delivered to the same place already approved this request; links that went to one webhook target count as one vote: approve through the API, or from links delivered to you alone".to_owned(),
            VoteRefusal::Replay => "this approval was already used; it cannot be used again".to_owned(),
            VoteRefusal::AlreadyDecided(s) => format!("this request is already {s}"),
            VoteRefusal::Expired => "this request's deadline has passed".to_owned(),
            VoteRefusal::RememberNotAllowed => format!(
                "`remember` is not allowed: no rule that decided this request ({}) has `approval.remember`",
                rule_list(&req.authority_for)
            ),
            VoteRefusal::NotDenied(s) => {
                format!("only a denied request can be reversed; this one is {s}")
            }
            VoteRefusal::LinkCannotReverse => "a denial is reversed through the API (`warden approvals reverse`), never through a link".to_owned(),
        }
    }
}

fn rule_list(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|r| format!("`{r}`")).collect();
    quoted.join(", ")
}

/// The effect of an approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Voted {
    /// The vote was counted; more approvers are needed.
    Counted {
        /// Approvals so far.
        approvals: u32,
        /// Approvals needed.
        quorum: u32,
    },
    /// The quorum is met: the request is granted.
    Granted,
}

/// Why a granted request could not release an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseRefusal {
    /// The request is not granted (the status says what it is).
    NotGranted(Status),
    /// The action differs from the one approved.
    DifferentAction,
    /// The deadline has passed.
    Expired,
    /// The request was raised under another charter than the one in force (or before requests
    /// were bound to their charter): the authority and quorum that granted it may no longer
    /// hold. Checked by the workflow, which knows the charter in force.
    OtherCharter,
    /// A vote that granted it no longer holds: its approver lost the authority under the
    /// charter in force, or its operator credential was revoked since. Checked by the workflow.
    AuthorityWithdrawn,
}

impl ApprovalRequest {
    /// Checks that `approver` may decide this request now, in this order: the request is still
    /// open, before its deadline, the credential is an approver's, not the requester's under
    /// separation of duties, with authority for the request's rules.
    fn check(
        &self,
        approver: &Approver<'_>,
        separation_of_duties: bool,
        now: OffsetDateTime,
    ) -> Result<String, VoteRefusal> {
        match self.status {
            Status::Pending => {}
            Status::Used => return Err(VoteRefusal::Replay),
            s => return Err(VoteRefusal::AlreadyDecided(s)),
        }
        if now >= self.deadline {
            return Err(VoteRefusal::Expired);
        }
        let Some(principal) = approver.principal else {
            return Err(VoteRefusal::NotAnApprover);
        };
        if separation_of_duties && principal == self.principal {
            return Err(VoteRefusal::SelfApproval);
        }
        if !approver.has_authority {
            return Err(VoteRefusal::NoAuthority);
        }
        Ok(principal.to_owned())
    }

    /// Records `approver`'s approval; grants the request once `quorum` distinct approvers
    /// approved.
    pub fn approve(
        &mut self,
        approver: &Approver<'_>,
        separation_of_duties: bool,
        reason: Option<String>,
        now: OffsetDateTime,
    ) -> Result<Voted, VoteRefusal> {
        self.approve_remembering(approver, separation_of_duties, reason, false, now)
    }

    /// [`approve`](Self::approve), with the approver asking (`remember`) that the values the
    /// request's rules name in `approval.remember` become trusted for the session when the
    /// grant is used. Refused ([`VoteRefusal::RememberNotAllowed`]) when the request names no
    /// argument to remember; the other checks come first.
    pub fn approve_remembering(
        &mut self,
        approver: &Approver<'_>,
        separation_of_duties: bool,
        reason: Option<String>,
        remember: bool,
        now: OffsetDateTime,
    ) -> Result<Voted, VoteRefusal> {
        let principal = self.check(approver, separation_of_duties, now)?;
        if remember && self.remember.is_empty() {
            return Err(VoteRefusal::RememberNotAllowed);
        }
        if self.approvals.iter().any(|v| v.approver == principal) {
            return Err(VoteRefusal::DuplicateApprover);
        }
        if let Some(target) = approver.target
            && self
                .approvals
                .iter()
                .any(|v| v.target.as_deref() == Some(target))
        {
            return Err(VoteRefusal::SharedTarget);
        }
        self.approvals.push(Vote {
            approver: principal,
            reason,
            channel: approver.channel.to_owned(),
            target: approver.target.map(str::to_owned),
            credential: approver.credential.map(str::to_owned),
            remember,
            at: now,
        });
        let approvals = u32::try_from(self.approvals.len()).unwrap_or(u32::MAX);
        if approvals >= self.quorum {
            self.status = Status::Granted;
            self.decided_at = Some(now);
            Ok(Voted::Granted)
        } else {
            Ok(Voted::Counted {
                approvals,
                quorum: self.quorum,
            })
        }
    }

    /// Records `approver`'s denial: one authorised denial denies the request.
    pub fn deny(
        &mut self,
        approver: &Approver<'_>,
        separation_of_duties: bool,
        reason: Option<String>,
        now: OffsetDateTime,
    ) -> Result<(), VoteRefusal> {
        let principal = self.check(approver, separation_of_duties, now)?;
        self.denial = Some(Vote {
            approver: principal,
            reason,
            channel: approver.channel.to_owned(),
            target: approver.target.map(str::to_owned),
            credential: approver.credential.map(str::to_owned),
            remember: false,
            at: now,
        });
        self.status = Status::Denied;
        self.decided_at = Some(now);
        Ok(())
    }

    /// Reverses the denial: the request is pending again, its votes cleared, the denial kept
    /// in `reversals`. Only a denied request, before its deadline, by an approver who could
    /// have decided it (an approver's credential, not the requester under separation of
    /// duties, with authority), and never through a link. The deadline stays.
    pub fn reverse(
        &mut self,
        approver: &Approver<'_>,
        separation_of_duties: bool,
        reason: Option<String>,
        now: OffsetDateTime,
    ) -> Result<(), VoteRefusal> {
        match self.status {
            Status::Denied => {}
            s => return Err(VoteRefusal::NotDenied(s)),
        }
        if approver.channel == "link" || approver.target.is_some() {
            return Err(VoteRefusal::LinkCannotReverse);
        }
        if now >= self.deadline {
            return Err(VoteRefusal::Expired);
        }
        let Some(principal) = approver.principal else {
            return Err(VoteRefusal::NotAnApprover);
        };
        if separation_of_duties && principal == self.principal {
            return Err(VoteRefusal::SelfApproval);
        }
        if !approver.has_authority {
            return Err(VoteRefusal::NoAuthority);
        }
        let Some(denial) = self.denial.take() else {
            return Err(VoteRefusal::NotDenied(self.status));
        };
        self.reversals.push(Reversal {
            denial,
            by: Vote {
                approver: principal.to_owned(),
                reason,
                channel: approver.channel.to_owned(),
                target: None,
                credential: approver.credential.map(str::to_owned),
                remember: false,
                at: now,
            },
        });
        self.approvals.clear();
        self.status = Status::Pending;
        self.decided_at = None;
        Ok(())
    }

    /// Times the request out if it is open and its deadline has passed. Returns whether it
    /// changed.
    pub fn expire(&mut self, now: OffsetDateTime) -> bool {
        if self.status.is_open() && now >= self.deadline {
            self.status = Status::TimedOut;
            self.decided_at = Some(now);
            true
        } else {
            false
        }
    }

    /// Uses the grant for the attempt `action`, whose hash must be the approved one.
    pub fn use_grant(
        &mut self,
        hash: &ActionHash,
        action: &str,
        now: OffsetDateTime,
    ) -> Result<(), UseRefusal> {
        if self.status != Status::Granted {
            return Err(UseRefusal::NotGranted(self.status));
        }
        if *hash != self.action_hash {
            return Err(UseRefusal::DifferentAction);
        }
        if now >= self.deadline {
            return Err(UseRefusal::Expired);
        }
        self.status = Status::Used;
        self.used_at = Some(now);
        self.used_by = Some(action.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
