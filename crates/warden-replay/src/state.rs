//! The state a recorded decision saw, rebuilt from the ledger in order: each session's
//! principal, agent, labels, trusted text and untrusted index, revocation and expiry; the
//! controls in force (posture, frozen tools, refused sessions).
//!
//! Bounded: a session's state is dropped once its expiry has passed (the gateway decides
//! nothing of an expired session), at most [`MAX_SESSIONS`] are held at once, and at most
//! [`MAX_CONTROLS`] controls; what does not fit is counted, never guessed.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use warden_core::{Posture, TrustedSource};
use warden_provenance::{Limits, Origin, SessionProvenance};

use crate::scope::SessionCounters;

/// Most sessions whose state is held at once; the attempts of a session opened past it are
/// reported as not reproducible.
pub const MAX_SESSIONS: usize = 200_000;

/// Most controls held in force at once (the gateway refuses more than 10,000).
pub const MAX_CONTROLS: usize = 10_000;

/// One session's state.
#[derive(Debug)]
pub(crate) struct SessionState {
    pub(crate) agent: String,
    pub(crate) principal: String,
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) revoked: bool,
    /// Sorted, without duplicates (as the gateway keeps them).
    pub(crate) labels: Vec<Arc<str>>,
    pub(crate) provenance: SessionProvenance,
    pub(crate) counters: SessionCounters,
}

impl SessionState {
    /// A session opened with `payload` (`session_opened`).
    pub(crate) fn opened(payload: &Value) -> Option<SessionState> {
        let text = |k: &str| payload.get(k).and_then(Value::as_str);
        let mut provenance = SessionProvenance::new(Limits::default());
        // As the gateway: a task past the bound is not trusted (fail closed).
        let _ = provenance.add_trusted(text("task").unwrap_or(""), TrustedSource::Task);
        Some(SessionState {
            agent: text("agent")?.to_owned(),
            principal: text("principal")?.to_owned(),
            expires_at: text("expires_at").and_then(warden_core::text::parse_rfc3339),
            revoked: false,
            labels: Vec::new(),
            provenance,
            counters: SessionCounters::default(),
        })
    }

    /// Adds labels (as the gateway: sorted, each once).
    pub(crate) fn add_labels(&mut self, labels: &[Arc<str>]) {
        for l in labels {
            if !self.labels.contains(l) {
                self.labels.push(l.clone());
            }
        }
        self.labels.sort();
    }

    /// Adds trusted text recorded by `trust_added` at `seq`; an instruction's source names the
    /// record, as the gateway's does once recorded. Not added when it does not fit.
    pub(crate) fn add_trust(&mut self, payload: &Value, seq: u64) -> Result<(), &'static str> {
        let text = payload
            .get("text")
            .and_then(Value::as_str)
            .ok_or("its `text` is missing")?;
        let source = payload
            .get("source")
            .cloned()
            .and_then(|s| serde_json::from_value::<TrustedSource>(s).ok())
            .ok_or("its `source` is not a trusted source")?;
        let source = match source {
            TrustedSource::Instruction { seq: None } => {
                TrustedSource::Instruction { seq: Some(seq) }
            }
            other => other,
        };
        // Past the bound the gateway did not trust it either.
        let _ = self.provenance.add_trusted(text, source);
        Ok(())
    }

    /// Indexes a recorded result's content under `labels` (untrusted in the candidate);
    /// content not recorded in full marks the index incomplete, as the gateway's rebuild does.
    pub(crate) fn index(&mut self, text: &str, complete: bool, seq: u64, labels: Vec<Arc<str>>) {
        self.provenance.add_untrusted(text, Origin { seq, labels });
        if !complete {
            self.provenance.mark_incomplete();
        }
    }
}

/// What a control does (as `control_set` records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ControlAction {
    Conservative,
    Frozen,
    FreezeTool,
    RevokeSession,
    Alert,
}

/// What a control applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ControlScope {
    Gateway,
    Agent,
    Principal,
    Session,
}

/// A control as `control_set` records it (the fields a decision depends on).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Control {
    id: String,
    action: ControlAction,
    scope: ControlScope,
    target: Option<String>,
    tool: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

impl Control {
    fn in_force(&self, now: OffsetDateTime) -> bool {
        self.action != ControlAction::Alert && self.expires_at.is_none_or(|e| now < e)
    }

    fn covers(&self, id: &str, session: &SessionState) -> bool {
        let target = self.target.as_deref();
        match self.scope {
            ControlScope::Gateway => true,
            ControlScope::Agent => target == Some(session.agent.as_str()),
            ControlScope::Principal => target == Some(session.principal.as_str()),
            ControlScope::Session => target == Some(id),
        }
    }
}

/// The controls in force, in the order they were set.
#[derive(Debug, Default)]
pub(crate) struct Controls {
    in_force: Vec<Control>,
}

impl Controls {
    /// Puts a recorded control in force (`control_set`). Past [`MAX_CONTROLS`] it is refused.
    pub(crate) fn set(&mut self, payload: &Value) -> Result<(), String> {
        let control: Control = serde_json::from_value(payload.clone())
            .map_err(|e| format!("its control cannot be read: {e}"))?;
        if control.action == ControlAction::Alert {
            return Ok(());
        }
        if self.in_force.len() >= MAX_CONTROLS {
            return Err(format!("more than {MAX_CONTROLS} controls in force"));
        }
        self.in_force.push(control);
        Ok(())
    }

    /// Takes control `id` out of force (`control_lifted`, `control_expired`).
    pub(crate) fn remove(&mut self, id: &str) {
        self.in_force.retain(|c| c.id != id);
    }

    /// What the controls in force at `now` do to a decision of `session` about `tool`: the
    /// strictest posture, a frozen tool, a refused session (as `warden_session::Controls`).
    pub(crate) fn pdp(
        &self,
        id: &str,
        session: &SessionState,
        tool: &str,
        now: OffsetDateTime,
    ) -> warden_pdp::Controls {
        let mut out = warden_pdp::Controls {
            posture: Posture::Normal,
            session_revoked: session.revoked,
            tool_frozen: false,
        };
        for c in self
            .in_force
            .iter()
            .filter(|c| c.in_force(now) && c.covers(id, session))
        {
            match c.action {
                ControlAction::Frozen => out.posture = Posture::Frozen,
                ControlAction::Conservative => {
                    if out.posture == Posture::Normal {
                        out.posture = Posture::Conservative;
                    }
                }
                ControlAction::FreezeTool => {
                    if c.tool.as_deref() == Some(tool) {
                        out.tool_frozen = true;
                    }
                }
                ControlAction::RevokeSession => out.session_revoked = true,
                ControlAction::Alert => {}
            }
        }
        out
    }
}

/// Every session's state.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    pub(crate) map: HashMap<String, SessionState>,
}

impl Sessions {
    /// Drops the sessions whose expiry is at or before `now` (nothing of theirs is decided
    /// again); their day scopes stay counted.
    pub(crate) fn sweep(&mut self, now: OffsetDateTime) {
        self.map.retain(|_, s| s.expires_at.is_none_or(|e| now < e));
    }
}
