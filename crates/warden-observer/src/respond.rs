//! From signals to responses: a detector that may act alone answers with its response; one
//! that may not raises an alert and waits for a correlation rule; a rule acts when enough
//! distinct detectors agree about one session (or agent) within its window. A detector or rule
//! answering again about the same target within `escalate_within` escalates one step, up to
//! the ceiling. In a learning window every response is an alert (except `ledger_integrity`).

use std::collections::BTreeMap;

use warden_charter::{CorrelateOn, Intervention};

use crate::detect::EXPORT_LAGGING;
use crate::engine::{Engine, Fired, Recent, dur_ms};
use crate::profile::evict_oldest;
use crate::response::{Action, Response, Scope, Signal};

/// Signals kept for correlation at most.
pub const MAX_RECENT: usize = 1024;
/// Detector and rule firings remembered (for escalation and de-duplication) at most.
pub const MAX_FIRED: usize = 10_000;
/// Evidence a response cites at most (the latest records; the control API takes 1000).
pub const MAX_RESPONSE_EVIDENCE: usize = 1000;
/// Longest `reason` (the control API takes 1024 bytes).
const MAX_REASON: usize = 1024;
/// How long an alert of a detector that may not act alone silences the same alert about the
/// same target (when the detector has no window of its own).
const ALERT_COOLDOWN_MS: i64 = 5 * 60 * 1000;

/// The observer's action for a charter intervention.
pub fn action_of(i: Intervention) -> Action {
    match i {
        Intervention::Alert => Action::Alert,
        Intervention::Conservative => Action::Conservative,
        Intervention::FreezeTool => Action::FreezeTool,
        Intervention::RevokeSession => Action::RevokeSession,
        Intervention::Frozen => Action::Frozen,
    }
}

/// One step stronger (`frozen` stays `frozen`).
pub fn step(a: Action) -> Action {
    match a {
        Action::Alert => Action::Conservative,
        Action::Conservative => Action::FreezeTool,
        Action::FreezeTool => Action::RevokeSession,
        Action::RevokeSession | Action::Frozen => Action::Frozen,
    }
}

fn scope_key(s: &Scope) -> String {
    match s {
        Scope::Gateway => "gateway".to_owned(),
        Scope::Agent(a) => format!("agent:{a}"),
        Scope::Principal(p) => format!("principal:{p}"),
        Scope::Session(x) => format!("session:{x}"),
    }
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// What a rule or detector decided, before escalation and learning.
struct Ask {
    id: String,
    base: Action,
    scope: Scope,
    signals: Vec<Signal>,
    acting: bool,
    integrity: bool,
    cooldown_ms: i64,
    reason: String,
}

impl Engine {
    /// The responses one signal calls for (correlation first: when a rule acts on it, the
    /// signal's own alert is not repeated).
    pub(crate) fn respond(&mut self, sig: Signal) -> Vec<Response> {
        self.st.stats.signals = self.st.stats.signals.saturating_add(1);
        let charter = self.charter_of(sig.agent.as_deref());
        let now = self.st.now_ms;
        let seq = self.st.last_seq;
        let integrity = sig.kind == "ledger_integrity";
        let det = charter
            .observer
            .detectors
            .iter()
            .find(|d| d.id == sig.detector && d.kind.as_str() == sig.kind);
        // The built-in ledger_integrity detector (none declared) acts, conservatively; the
        // built-in export_lagging one only alerts (at most once a minute, as the gateway
        // records it), whatever the escalation.
        let (acting, base, window) = match det {
            Some(d) => (d.alone, action_of(d.response), d.window.map(dur_ms)),
            None if sig.kind == EXPORT_LAGGING => (false, Action::Alert, Some(60_000)),
            None => (true, Action::Conservative, None),
        };
        let max_within = charter
            .observer
            .correlate
            .iter()
            .map(|r| dur_ms(r.within))
            .max()
            .unwrap_or(0);
        while self
            .st
            .recent
            .front()
            .is_some_and(|r| r.ms < now.saturating_sub(max_within))
            || self.st.recent.len() >= MAX_RECENT
        {
            self.st.recent.pop_front();
        }
        if max_within > 0 {
            self.st.recent.push_back(Recent {
                ms: now,
                seq,
                signal: sig.clone(),
            });
        }
        let mut out = Vec::new();
        for rule in &charter.observer.correlate {
            if !rule.signals.contains(&sig.detector) {
                continue;
            }
            let (target, scope) = match rule.on {
                CorrelateOn::Session => match &sig.session {
                    Some(s) => (s.clone(), Scope::Session(s.clone())),
                    None => continue,
                },
                CorrelateOn::Agent => match &sig.agent {
                    Some(a) => (a.clone(), Scope::Agent(a.clone())),
                    None => continue,
                },
            };
            let fired_key = format!("{}\u{1f}{}", rule.id, scope_key(&scope));
            let since = self.st.fired.get(&fired_key).map_or(0, |f| f.seq);
            let oldest = now.saturating_sub(dur_ms(rule.within));
            let mut latest: BTreeMap<&str, &Signal> = BTreeMap::new();
            for r in self.st.recent.iter().filter(|r| {
                r.ms >= oldest && r.seq > since && rule.signals.contains(&r.signal.detector)
            }) {
                let about = match rule.on {
                    CorrelateOn::Session => r.signal.session.as_deref(),
                    CorrelateOn::Agent => r.signal.agent.as_deref(),
                };
                if about == Some(target.as_str()) {
                    latest.insert(r.signal.detector.as_str(), &r.signal);
                }
            }
            if latest.len() < rule.min {
                continue;
            }
            let signals: Vec<Signal> = latest.into_values().cloned().collect();
            let reason = format!(
                "{} detectors agree ({}): {}",
                signals.len(),
                rule.id,
                signals
                    .iter()
                    .map(|s| s.detail.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            out.extend(self.decide(Ask {
                id: rule.id.clone(),
                base: action_of(rule.response),
                scope,
                signals,
                acting: true,
                integrity: false,
                cooldown_ms: dur_ms(rule.within),
                reason,
            }));
        }
        if acting || out.is_empty() {
            let scope = if integrity {
                Scope::Gateway
            } else if let Some(s) = &sig.session {
                Scope::Session(s.clone())
            } else if let Some(a) = &sig.agent {
                Scope::Agent(a.clone())
            } else {
                Scope::Gateway
            };
            let reason = sig.detail.clone();
            let own = self.decide(Ask {
                id: sig.detector.clone(),
                base: if acting { base } else { Action::Alert },
                scope,
                signals: vec![sig],
                acting,
                integrity,
                cooldown_ms: window.unwrap_or(ALERT_COOLDOWN_MS),
                reason,
            });
            // The detector's own answer first, then what the rules made of it.
            if let Some(r) = own {
                out.insert(0, r);
            }
        }
        out
    }

    /// Applies de-duplication, escalation and the learning window; remembers the firing.
    fn decide(&mut self, ask: Ask) -> Option<Response> {
        let now = self.st.now_ms;
        let key = format!("{}\u{1f}{}", ask.id, scope_key(&ask.scope));
        let prev = self.st.fired.get(&key).copied();
        let mut action = ask.base;
        let charter = self.charter_of(ask.signals.iter().find_map(|s| s.agent.as_deref()));
        let escalation = charter.observer.escalation.as_ref().filter(|_| ask.acting);
        match (escalation, prev) {
            (Some(esc), Some(p)) if now.saturating_sub(p.ms) <= dur_ms(esc.within) => {
                action = action.max(step(p.action).min(action_of(esc.ceiling)));
            }
            // Without escalation, the same answer about the same target within the cooldown
            // (the rule's or detector's window) is not repeated.
            (None, Some(p)) if now.saturating_sub(p.ms) < ask.cooldown_ms && p.action >= action => {
                return None;
            }
            _ => {}
        }
        let tool = ask.signals.iter().rev().find_map(|s| s.tool.clone());
        if action == Action::FreezeTool && tool.is_none() {
            // Nothing to freeze: the charter's own `freeze_tool` becomes `conservative`; an
            // escalation that reached it goes on to `revoke_session` if the ceiling allows.
            let ceiling = charter
                .observer
                .escalation
                .as_ref()
                .map_or(Action::Alert, |e| action_of(e.ceiling));
            action = if ask.base < Action::FreezeTool && ceiling >= Action::RevokeSession {
                Action::RevokeSession
            } else {
                Action::Conservative
            };
        }
        let remembered = action;
        if self.learning() && !ask.integrity {
            action = Action::Alert;
        }
        if self.st.fired.len() >= MAX_FIRED && !self.st.fired.contains_key(&key) {
            evict_oldest(&mut self.st.fired, |f| f.ms);
        }
        self.st.fired.insert(
            key,
            Fired {
                ms: now,
                seq: self.st.last_seq,
                action: if action == Action::Alert {
                    action
                } else {
                    remembered
                },
            },
        );
        let mut evidence: Vec<u64> = ask
            .signals
            .iter()
            .flat_map(|s| s.evidence.iter().copied())
            .collect();
        evidence.sort_unstable();
        evidence.dedup();
        let skip = evidence.len().saturating_sub(MAX_RESPONSE_EVIDENCE);
        evidence.drain(..skip);
        let learning = if action == Action::Alert && ask.base > Action::Alert && !ask.integrity {
            " (learning window: alert only)"
        } else {
            ""
        };
        Some(Response {
            action,
            scope: ask.scope,
            tool: if action == Action::FreezeTool {
                tool
            } else {
                None
            },
            reason: cut(format!("observer: {}{learning}", ask.reason), MAX_REASON),
            evidence,
            detector: cut(ask.id, 128),
            signals: ask.signals,
            expires_in_secs: None,
        })
    }
}
