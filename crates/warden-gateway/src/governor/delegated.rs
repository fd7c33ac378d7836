//! The decision of an action: under the session's own charter and, for a delegated session,
//! under the charter of every agent on its delegation chain (the intersection).
//!
//! What it guarantees:
//! - a session with a chain is decided under its own charter and under each ancestor agent's
//!   charter in force (looked up with [`Governor::governed_for`]); an ancestor whose agent has
//!   no charter in force, or an ancestor session the gateway no longer holds, refuses the
//!   action (fail closed); a tool an ancestor's inventory does not name is refused;
//! - every charter decides the same request (same tool, arguments, principal, labels —
//!   the child's own and every live ancestor's —, provenance and controls); the most
//!   restrictive decision binds ([`warden_pdp::combine`]: deny > ask > allow, ties to the
//!   charter nearest the child);
//! - each charter's preapproved-scope usage is read from, and an allow under it spent in,
//!   the session of that charter's agent (the child's for its own, the ancestor's for an
//!   ancestor's): [`ScopeCounters::decide_and_count_async`] runs once per charter, one after
//!   the other, each taking and releasing the counters' lock (SQLite) or committing its own
//!   transaction (PostgreSQL) itself — no lock is held across the others. A use counted under
//!   one charter while another refused is not given back (it only restricts). A store error
//!   on any of them is returned: the action is refused.

use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;
use warden_charter::CompiledCharter;
use warden_core::Decision;
use warden_core::gate::RefusalReason;
use warden_pdp::{Controls as PdpControls, Request, combine, decide};
use warden_session::{ScopeIncrement, Session, StoreError};

use super::shadow::ShadowRun;
use super::{Governed, Governor};

/// An ancestor of a delegated session, with its agent's charter in force.
pub(super) struct Ancestor {
    /// The ancestor session.
    pub(super) session: Arc<Session>,
    /// Its agent's charter and what the governor derives from it.
    pub(super) governed: Arc<Governed>,
}

/// What deciding an action under every charter gave.
pub(super) struct Intersection {
    /// The binding decision.
    pub(super) decision: Decision,
    /// The charter whose decision binds (the session's own for a root session).
    pub(super) binding: Arc<CompiledCharter>,
    /// One entry per charter decided under, the session's own first (empty for a root
    /// session): `{agent, verdict, tier, reason, rules}`.
    pub(super) under: Vec<Value>,
    /// The scope-counter changes to persist.
    pub(super) increments: Vec<ScopeIncrement>,
}

/// What the charters decide on.
pub(super) struct Asked<'a> {
    pub(super) tool: &'a str,
    pub(super) args: &'a Value,
    pub(super) labels: &'a [Arc<str>],
    pub(super) controls: PdpControls,
    pub(super) now: OffsetDateTime,
}

impl Governor {
    /// The ancestors of `session`, nearest first, each with its agent's charter in force.
    /// `Err` (a sentence for the agent) when one is no longer held or its agent has no
    /// charter in force.
    pub(super) fn ancestry(&self, session: &Session) -> Result<Vec<Ancestor>, String> {
        let mut out = Vec::with_capacity(session.chain.len());
        for link in session.chain.iter().rev() {
            let Some(ancestor) = self.sessions.get(&link.session) else {
                return Err(format!(
                    "session `{}`, on this session's delegation chain, is no longer known to the gateway",
                    link.session
                ));
            };
            let Some(governed) = self.governed_for(&link.agent) else {
                return Err(format!(
                    "agent `{}`, on this session's delegation chain, has no charter in force at this gateway",
                    link.agent
                ));
            };
            out.push(Ancestor {
                session: ancestor,
                governed,
            });
        }
        Ok(out)
    }

    /// [`ancestry`](Self::ancestry), refusing also a `tool` an ancestor's inventory does not
    /// name: the reason and the sentence for the agent.
    pub(super) fn ancestry_for(
        &self,
        session: &Session,
        tool: &str,
    ) -> Result<Vec<Ancestor>, (RefusalReason, String)> {
        let ancestors = self
            .ancestry(session)
            .map_err(|why| (RefusalReason::Denied, why))?;
        if let Some(a) = ancestors
            .iter()
            .find(|a| !a.governed.charter.is_inventoried(tool))
        {
            return Err((
                RefusalReason::NotInventoried,
                format!(
                    "it is not in the inventory of the charter of `{}`, on the session's delegation chain, and a delegated session can call only what every charter of its chain inventories",
                    a.session.agent
                ),
            ));
        }
        Ok(ancestors)
    }

    /// Decides `asked` under the session's own charter (`governed`) and under each of
    /// `ancestors`' (see the module). The shadow charter, if any, decides beside the
    /// session's own only. `Err` when the scope counters' store failed (refuse).
    pub(super) async fn decide_under(
        &self,
        governed: &Governed,
        ancestors: &[Ancestor],
        session: &Session,
        asked: &Asked<'_>,
        shadow: &ShadowRun<'_>,
    ) -> Result<Intersection, StoreError> {
        let mut decisions = Vec::with_capacity(ancestors.len() + 1);
        let mut increments = Vec::new();
        let own = self
            .decide_one(&governed.charter, session, &session.id, asked, Some(shadow))
            .await?;
        decisions.push(own.0);
        increments.extend(own.1);
        for a in ancestors {
            let (d, inc) = self
                .decide_one(&a.governed.charter, session, &a.session.id, asked, None)
                .await?;
            decisions.push(d);
            increments.extend(inc);
        }
        let charters =
            std::iter::once(&governed.charter).chain(ancestors.iter().map(|a| &a.governed.charter));
        let under: Vec<Value> = if ancestors.is_empty() {
            Vec::new()
        } else {
            charters
                .clone()
                .zip(&decisions)
                .map(|(c, d)| {
                    json!({
                        "agent": c.identity.id,
                        "verdict": d.verdict,
                        "tier": d.tier,
                        "reason": d.reason,
                        "rules": d.rules.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(),
                    })
                })
                .collect()
        };
        let binding = combine(&decisions);
        let mut charters: Vec<&Arc<CompiledCharter>> = charters.collect();
        Ok(match binding {
            Some(i) if i < decisions.len() && i < charters.len() => Intersection {
                decision: decisions.swap_remove(i),
                binding: charters.swap_remove(i).clone(),
                under,
                increments,
            },
            // Cannot happen (the session's own decision is always there); deny all the same.
            _ => Intersection {
                decision: decide_denied(&governed.charter, asked.controls.posture),
                binding: governed.charter.clone(),
                under,
                increments,
            },
        })
    }

    /// One charter's decision, its scope usage read from and counted in `usage_session`
    /// (on PostgreSQL, committed before this returns).
    async fn decide_one(
        &self,
        charter: &CompiledCharter,
        session: &Session,
        usage_session: &str,
        asked: &Asked<'_>,
        shadow: Option<&ShadowRun<'_>>,
    ) -> Result<(Decision, Option<ScopeIncrement>), StoreError> {
        self.scope_counters
            .decide_and_count_async(charter, usage_session, asked.now, asked.args, |usage| {
                // The session's provenance (trusted text, untrusted index), read-locked only
                // for this synchronous decision: never across an await.
                let provenance = session.provenance();
                let request = Request {
                    tool: asked.tool,
                    args: asked.args,
                    principal: Some(&session.principal),
                    labels: asked.labels,
                    provenance: &provenance,
                    controls: asked.controls,
                    usage,
                    now: asked.now,
                };
                if let Some(shadow) = shadow {
                    // The shadow charter, if any, decides the same request (same usage read).
                    shadow.decide(&request);
                }
                decide(charter, &request)
            })
            .await
    }
}

/// A prohibited decision of `charter` (the fail-closed fallback).
fn decide_denied(charter: &CompiledCharter, posture: warden_core::Posture) -> Decision {
    super::shadow::deny(charter, posture, "no charter decided the action".to_owned())
}
