//! Pending approvals re-decided after a live reload.
//!
//! Every pending request and every unused grant raised under the charter a reload replaced
//! is decided again under the charter put in force, with its session's state now (labels,
//! provenance, controls, scope usage), exactly as a new call of the same action would be:
//! - denied now (prohibited, or any deny; also: its session is gone, its tool left the
//!   inventory, its paths are refused, or nobody could approve it now) → **voided**: the
//!   waiting calls are refused, naming the new charter; a grant can no longer be used;
//! - allowed now without approval (autonomous, or preapproved: the release counts a scope
//!   use, and a used-up scope asks or denies instead) → **released**: one waiting call
//!   proceeds, recorded as `approval_used` and `action_forwarded` after the re-decision;
//! - still asks → **kept**: bound to the new charter (so a later grant is not refused as
//!   given under another), with the approvers and quorum the new charter gives; a grant
//!   whose votes those approvers would not have given is voided.
//!
//! Each is recorded as `approval_redecided` before it takes effect. One that cannot be
//! recorded or stored is left as it was, bound to the replaced charter: its grant can never
//! be used (the charter in force is another) and its calls end at its deadline — the safe
//! side, with no unrecorded change. Requests raised under older charters (before a restart,
//! or two reloads ago) are not re-decided: their grants stay refused as given under another
//! charter.

use serde_json::Value;
use warden_approval::workflow::{NewDecision, authority_for};
use warden_approval::{ApprovalRequest, Redecide};
use warden_charter::CompiledCharter;
use warden_core::Verdict;
use warden_pdp::{Controls as PdpControls, Request, decide};

use super::{Governed, Governor};

/// What a reload did to one approval request or grant raised under the previous charter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redecided {
    /// The approval request's id.
    pub approval: String,
    /// `kept`, `voided` or `released`.
    pub outcome: &'static str,
}

impl Governor {
    /// Re-decides every pending approval request and every unused grant raised under
    /// `previous` with the charter now in force; records `approval_redecided` for each; voids
    /// (prohibited now, or denied) or releases (autonomous or preapproved now); returns what
    /// it did. A request whose re-decision could not be recorded or stored is left as it was
    /// (it cannot release anything: see the module) and is not in the list.
    ///
    /// Only requests of `previous`'s agent are re-decided, under that agent's charter now in
    /// force; when the agent has none any more, its requests stay bound to the replaced
    /// charter, which no grant can be used under (fail closed), until they time out.
    pub async fn redecide_pending(&self, previous: &CompiledCharter) -> Vec<Redecided> {
        let Some(governed) = self.governed_for(&previous.identity.id) else {
            return Vec::new();
        };
        if governed.charter.hash == previous.hash {
            // The same charter again: every request is bound to the charter in force.
            return Vec::new();
        }
        let from = previous.hash.to_string();
        let mut done = Vec::new();
        for entry in self.approvals.store().open_entries() {
            let req = entry.lock().await.clone();
            if req.charter.as_deref() != Some(from.as_str()) || !req.status.is_open() {
                continue;
            }
            let decision = self.decide_again(&governed, &req, &from).await;
            match self.approvals.redecide(&entry, decision).await {
                Ok(outcome) => done.push(Redecided {
                    approval: req.id.clone(),
                    outcome,
                }),
                Err(e) => {
                    tracing::error!(error = %e, approval = %req.id, "An approval request could not be re-decided under the new charter; it stays bound to the replaced one and cannot be used.");
                }
            }
        }
        done
    }

    /// The decision of the charter in force on the action of `req`, as a new call of it
    /// would get now.
    async fn decide_again(
        &self,
        governed: &Governed,
        req: &ApprovalRequest,
        from: &str,
    ) -> NewDecision {
        let charter = &governed.charter;
        let void = |why: String| NewDecision {
            from: from.to_owned(),
            charter: charter.hash.to_string(),
            verdict: "deny",
            tier: "prohibited",
            why,
            redecide: Redecide::Void,
        };
        let tool = req.tool.as_str();
        let Some(session) = self.sessions.get(&req.session) else {
            return void("its session is no longer known to the gateway".to_owned());
        };
        let now = self.clock.now();
        if session.is_expired(now) {
            return void("its session has expired".to_owned());
        }
        if !session.chain.is_empty() {
            // A delegated action is decided under every charter of its chain; one charter's
            // re-decision alone could release what another asks for (fail closed).
            return void("its session is delegated: only a new call decides it again".to_owned());
        }
        if !charter.is_inventoried(tool) {
            return void(format!("`{tool}` is not in the charter's inventory"));
        }
        let args: Value = match governed
            .paths
            .prepare(tool, &req.arguments, governed.is_local(tool))
            .await
        {
            Ok(args) => args,
            Err(why) => return void(why),
        };
        let labels = session.labels();
        let applied = self.controls.applying(&session, Some(tool), now);
        let controls: PdpControls = applied.pdp(session.is_revoked());
        let counted = self
            .scope_counters
            .decide_and_count_async(charter, &session.id, now, &args, |usage| {
                let provenance = session.provenance();
                decide(
                    charter,
                    &Request {
                        tool,
                        args: &args,
                        principal: Some(&session.principal),
                        labels: &labels,
                        provenance: &provenance,
                        controls,
                        usage,
                        now,
                    },
                )
            })
            .await;
        // Fail closed: without the counters nothing is released.
        let (decision, increment) = match counted {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "The scope counters cannot be read or counted; the request is voided.");
                return void(
                    "the state store is unavailable, so the decision cannot be counted".to_owned(),
                );
            }
        };
        if let Some(inc) = increment
            && let Err(e) = self.scope_counters.persist(inc).await
        {
            tracing::warn!(error = %e, "Scope counters could not be written through; they stay counted in memory.");
        }
        let redecide = match decision.verdict {
            Verdict::Deny => Redecide::Void,
            Verdict::Allow => Redecide::Release,
            Verdict::Ask => {
                let rules = authority_for(&decision);
                let approvers =
                    self.approvals
                        .eligible(&charter.identity.id, &rules, &session.principal);
                let quorum = decision
                    .approval
                    .as_ref()
                    .map_or(charter.default_approval.quorum, |a| a.quorum);
                if approvers.len() < usize::try_from(quorum).unwrap_or(usize::MAX) {
                    return void(format!(
                        "it needs approval ({}), and {} approver(s) are needed where the charter gives the authority to {}",
                        decision.summary(),
                        quorum,
                        approvers.len()
                    ));
                }
                Redecide::Keep {
                    authority_for: rules,
                    approvers,
                    quorum,
                }
            }
        };
        NewDecision {
            from: from.to_owned(),
            charter: charter.hash.to_string(),
            verdict: decision.verdict.as_str(),
            tier: decision.tier.as_str(),
            why: decision.summary(),
            redecide,
        }
    }
}
