//! A live reload's re-decision of a request: [`Approvals::redecide`] applies what the charter
//! put in force decides about a request raised under the charter it replaced — void, release
//! or keep — recorded (`approval_redecided`) before it is stored, and stored before anyone
//! waiting sees it.

use serde_json::json;
use warden_core::RecordKind;

use super::Approvals;
use crate::machine::{Redecide, RedecideRefusal};
use crate::store::{Entry, StoreError};

/// What the charter put in force decided about a request's action, as the gateway hands it
/// over.
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// The content hash of the charter the reload replaced (the request must be bound to it).
    pub from: String,
    /// The content hash of the charter put in force.
    pub charter: String,
    /// Its verdict on the action (`allow`, `ask` or `deny`).
    pub verdict: &'static str,
    /// Its tier.
    pub tier: &'static str,
    /// The decision, in a sentence.
    pub why: String,
    /// What it does to the request.
    pub redecide: Redecide,
}

/// Why a re-decision did not take effect (the request is as it was).
#[derive(Debug, thiserror::Error)]
pub enum RedecideError {
    /// The re-decision does not apply to the request in its state now.
    #[error("the request cannot be re-decided: {0:?}")]
    NotApplicable(RedecideRefusal),
    /// The ledger could not record it.
    #[error("the re-decision could not be recorded: {0}")]
    Ledger(String),
    /// The store could not write it.
    #[error("the re-decision could not be stored: {0}")]
    Store(#[from] StoreError),
}

impl Approvals {
    /// Applies `decision` to the request of `entry`, under its lock (so an approver's vote,
    /// the use of its grant or the sweeper's timeout happens wholly before or wholly after
    /// it, never both): records `approval_redecided` (`approval`, `action`, `charter`,
    /// `previous`, `status`, `was`, `now`, `tier`, `outcome`, `why`), then stores the
    /// change, then wakes the calls waiting on it. Returns the outcome (`voided`,
    /// `released` or `kept`).
    ///
    /// Fails closed: a re-decision that cannot be recorded or stored changes nothing, and
    /// the request stays bound to the replaced charter, so its grant can never be used (the
    /// charter in force is another) and its waiting calls end at its deadline.
    pub async fn redecide(
        &self,
        entry: &Entry,
        decision: NewDecision,
    ) -> Result<&'static str, RedecideError> {
        let mut current = self.store.begin(entry).await?;
        let now = self.clock.now();
        let mut next = current.clone();
        let outcome = next
            .redecide(
                &decision.from,
                &decision.charter,
                &decision.redecide,
                decision.why.clone(),
                now,
            )
            .map_err(RedecideError::NotApplicable)?;
        let payload = json!({
            "approval": current.id,
            "action": current.action,
            "charter": decision.charter,
            "previous": decision.from,
            "status": current.status,
            "was": "ask",
            "now": decision.verdict,
            "tier": decision.tier,
            "outcome": outcome,
            "why": decision.why,
        });
        self.record(&current.session, RecordKind::ApprovalRedecided, payload)
            .await
            .map_err(RedecideError::Ledger)?;
        current.save(next).await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
