//! Delegation chains: a child session (`session_delegated`) is observed under its own
//! agent's observer section and remembers its ancestors, so
//!
//! - an attempt of a delegated session is matched against what the model proposed in that
//!   session *or any of its ancestors* (within the `intent_mismatch` window): a coordinator's
//!   model that proposed the call its worker makes is not a mismatch; a tool nobody along the
//!   chain proposed, while some session of it has a model, is one;
//! - a refused delegation (`delegation_refused`) counts, for the would-be parent, as a denial
//!   for its `denial_storm` detectors: repeated refusals are an alert like repeated denials;
//! - every signal about a delegated session names its chain (`baseline.chain`, and the
//!   detail ends with the chain of agents).

use serde_json::{Value, json};
use warden_charter::DetectorKind;
use warden_core::gate::intent_names_tool;

use crate::detect::{bounded, params};
use crate::engine::Engine;
use crate::profile::{ChainLink, MAX_CHAIN};
use crate::response::Signal;

/// Whether an attempted tool was proposed by a model first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proposed {
    /// An intent of the session or of an ancestor named it (and is used up).
    Yes,
    /// None did, and the session or an ancestor has a model whose proposals are seen: a
    /// mismatch.
    No,
    /// None did, and no session along the chain has a model seen by the proxy: nothing to
    /// hold the attempt against.
    Unknown,
}

impl Engine {
    /// A child session was opened: its agent, principal and chain.
    pub(crate) fn on_delegated(&mut self, sid: &str, p: &Value, ms: i64) {
        let text = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .map(|v| bounded(v).to_owned())
        };
        let chain: Vec<ChainLink> = p
            .get("chain")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| {
                Some(ChainLink {
                    session: bounded(l.get("session")?.as_str()?).to_owned(),
                    agent: bounded(l.get("agent")?.as_str()?).to_owned(),
                })
            })
            .take(MAX_CHAIN)
            .collect();
        let (agent, principal) = (text("agent"), text("principal"));
        let s = self.session(sid, ms);
        if let Some(agent) = agent {
            s.agent = agent;
        }
        s.principal = principal;
        s.chain = chain;
        let agent = s.agent.clone();
        self.agent(&agent, ms);
    }

    /// Finds (and uses up) the intent that proposed `tool`: the session's own first, then
    /// its ancestors' from the parent up, within the session's own `intent_mismatch` window.
    pub(crate) fn take_intent(
        &mut self,
        sid: &str,
        tool: &str,
        called_as: Option<&str>,
        ms: i64,
    ) -> Proposed {
        let ancestors: Vec<String> = self
            .st
            .sessions
            .get(sid)
            .map(|s| s.chain.iter().rev().map(|l| l.session.clone()).collect())
            .unwrap_or_default();
        // The window is the attempting session's (its agent's detector judges it): an
        // ancestor's proposal older than that covers nothing here.
        let oldest = self
            .charter_for_session(sid)
            .observer
            .detectors
            .iter()
            .filter(|d| d.kind == DetectorKind::IntentMismatch)
            .map(|d| params(d).1)
            .max()
            .map_or(i64::MIN, |w| ms.saturating_sub(w));
        let mut seen_model = false;
        for id in std::iter::once(sid.to_owned()).chain(ancestors) {
            let Some(s) = self.st.sessions.get_mut(&id) else {
                continue;
            };
            seen_model |= s.has_model;
            if let Some(at) = s
                .intents
                .iter()
                .position(|i| i.ms >= oldest && intent_names_tool(&i.tool, tool, called_as))
            {
                s.intents.remove(at);
                return Proposed::Yes;
            }
        }
        if seen_model {
            Proposed::No
        } else {
            Proposed::Unknown
        }
    }

    /// A delegation the session asked for was refused: a denial for its `denial_storm`
    /// detectors (not for the agent's baseline of decisions: no action was decided).
    pub(crate) fn on_delegation_refused(
        &mut self,
        sid: &str,
        seq: u64,
        p: &Value,
        ms: i64,
    ) -> Vec<Signal> {
        let known = self.st.sessions.contains_key(sid);
        let by = p
            .get("by")
            .and_then(Value::as_str)
            .map(|v| bounded(v).to_owned());
        let s = self.session(sid, ms);
        if let (false, Some(by)) = (known, by) {
            s.agent = by;
        }
        let agent = s.agent.clone();
        let asked = p
            .get("agent")
            .and_then(Value::as_str)
            .map_or("", bounded)
            .to_owned();
        let refusal = p
            .get("refusal")
            .and_then(Value::as_str)
            .map_or("", bounded)
            .to_owned();
        self.denial_storm(&agent, sid, seq, ms, |n, threshold, window_secs| {
            (
                json!({
                    "window_secs": window_secs, "threshold": threshold, "count": n,
                    "delegation": { "agent": asked, "refusal": refusal },
                }),
                format!(
                    "{n} actions denied or delegations refused within {window_secs}s (the last: a delegation to `{asked}`, refused as `{refusal}`)"
                ),
            )
        })
    }

    /// Names the chain of a delegated session in a signal about it: `baseline.chain` (the
    /// ancestors and the session itself, root first) and the detail's last words.
    pub(crate) fn name_chain(&self, sig: &mut Signal) {
        let Some(s) = sig
            .session
            .as_deref()
            .and_then(|id| self.st.sessions.get(id))
        else {
            return;
        };
        if s.chain.is_empty() {
            return;
        }
        let mut links: Vec<Value> = s
            .chain
            .iter()
            .map(|l| json!({ "session": l.session, "agent": l.agent }))
            .collect();
        links.push(json!({ "session": sig.session, "agent": s.agent }));
        let agents: Vec<&str> = s
            .chain
            .iter()
            .map(|l| l.agent.as_str())
            .chain(std::iter::once(s.agent.as_str()))
            .collect();
        if let Value::Object(map) = &mut sig.baseline {
            map.insert("chain".to_owned(), Value::Array(links));
        }
        sig.detail = format!("{} (delegated: {})", sig.detail, agents.join(" -> "));
    }
}
