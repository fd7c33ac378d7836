//! The detectors: each reads the record payloads as the gateway and the model proxy write
//! them, updates the profiles and the session's windows, and raises [`Signal`]s with their
//! evidence (ledger seqs) and the baseline they were held against.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};
use warden_charter::{Detector, DetectorKind};

use crate::chain::Proposed;
use crate::engine::{Engine, dur_ms, time_of};
use crate::profile::{
    Event, HOUR_MS, Intent, MAX_INTENTS, MAX_LABELS, SessionState, prune, push_event, resources,
};
use crate::response::Signal;

/// Evidence a signal cites at most (the latest records).
pub const MAX_EVIDENCE: usize = 64;
/// Longest agent, principal, tool or label name kept (longer ones are cut).
const MAX_NAME: usize = 256;
/// A `rate` signal needs at least this many actions in its window, whatever the baseline.
pub const MIN_RATE_EVENTS: usize = 5;
/// A `token_spike` needs a baseline of at least this many model turns.
pub const MIN_BASELINE_TURNS: u64 = 10;
/// The built-in detector (and signal kind) of an export sink falling behind: the gateway's
/// `export_lagging` record becomes an alert, gateway-wide, never an intervention.
pub const EXPORT_LAGGING: &str = "export_lagging";

/// The defaults of each kind's `threshold` and `window` when the charter leaves them out.
pub fn defaults(kind: DetectorKind) -> (f64, Duration) {
    let m = |mins: u64| Duration::from_secs(mins * 60);
    match kind {
        DetectorKind::IntentMismatch => (3.0, m(5)),
        DetectorKind::NewResourceBurst => (10.0, m(5)),
        DetectorKind::Rate => (3.0, m(1)),
        DetectorKind::DenialStorm => (5.0, m(10)),
        DetectorKind::SensitiveThenSend => (1.0, Duration::ZERO),
        DetectorKind::TokenSpike => (4.0, m(60)),
        DetectorKind::LedgerIntegrity => (1.0, Duration::ZERO),
    }
}

pub(crate) fn params(d: &Detector) -> (f64, i64) {
    let (t, w) = defaults(d.kind);
    (d.threshold.unwrap_or(t), dur_ms(d.window.unwrap_or(w)))
}

/// A name from a payload, cut to a bounded length at a char boundary.
pub(crate) fn bounded(s: &str) -> &str {
    if s.len() <= MAX_NAME {
        return s;
    }
    let mut end = MAX_NAME;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// How many events after `since` are within the window (pruned first), and the seqs of the
/// latest [`MAX_EVIDENCE`] of them.
pub(crate) fn recent(
    q: &mut VecDeque<Event>,
    now: i64,
    window: i64,
    since: u64,
) -> (usize, Vec<u64>) {
    prune(q, now, window);
    let mut v: Vec<u64> = q.iter().filter(|e| e.1 > since).map(|e| e.1).collect();
    let n = v.len();
    v.drain(..n.saturating_sub(MAX_EVIDENCE));
    (n, v)
}

/// Where a detector's signal is about: the session and the record's time.
pub(crate) struct At<'a> {
    pub sid: &'a str,
    pub ms: i64,
}

pub(crate) fn signal(
    d: &Detector,
    at: At<'_>,
    s: &SessionState,
    tool: Option<String>,
    evidence: Vec<u64>,
    baseline: Value,
    detail: String,
) -> Signal {
    let At { sid, ms } = at;
    Signal {
        detector: d.id.clone(),
        kind: d.kind.as_str().to_owned(),
        session: Some(sid.to_owned()),
        agent: Some(s.agent.clone()),
        principal: s.principal.clone(),
        tool,
        evidence,
        baseline,
        detail,
        time: time_of(ms),
    }
}

impl Engine {
    /// Counts the session active in this hour of its agent's profile (once per hour).
    fn active(&mut self, sid: &str, ms: i64) -> String {
        let baseline = self.baseline_ms();
        let s = self.session(sid, ms);
        let hour = ms.div_euclid(HOUR_MS);
        let minute = ms.div_euclid(60_000);
        let new_hour = s.hour != Some(hour);
        let new_minute = s.minute != Some(minute);
        s.hour = Some(hour);
        s.minute = Some(minute);
        let agent = s.agent.clone();
        let p = self.agent(&agent, ms);
        if let Some(b) = p.bucket(ms, baseline) {
            b.session_hours += u64::from(new_hour);
            b.session_minutes += u64::from(new_minute);
        }
        agent
    }

    /// Intents older than the `intent_mismatch` window were never attempted: each is a
    /// mismatch (cited by its own seq).
    fn expire_intents(&mut self, sid: &str, ms: i64) {
        let window = self
            .charter_for_session(sid)
            .observer
            .detectors
            .iter()
            .filter(|d| d.kind == DetectorKind::IntentMismatch)
            .map(|d| params(d).1)
            .max();
        let Some(window) = window else { return };
        let s = self.session(sid, ms);
        while s
            .intents
            .front()
            .is_some_and(|i| i.ms < ms.saturating_sub(window))
        {
            if let Some(i) = s.intents.pop_front() {
                push_event(&mut s.mismatches, (ms, i.seq));
            }
        }
    }

    pub(crate) fn on_attempt(&mut self, sid: &str, seq: u64, p: &Value, ms: i64) -> Vec<Signal> {
        let Some(tool) = p.get("tool").and_then(Value::as_str).map(bounded) else {
            return Vec::new();
        };
        let called_as = p.get("called_as").and_then(Value::as_str);
        let args = p
            .get("resolved_arguments")
            .or_else(|| p.get("arguments"))
            .unwrap_or(&Value::Null);
        let baseline_ms = self.baseline_ms();
        self.expire_intents(sid, ms);
        let agent = self.active(sid, ms);
        let charter = self.charter_of(Some(&agent));
        let fresh = charter
            .observer
            .detectors
            .iter()
            .filter(|d| d.kind == DetectorKind::NewResourceBurst)
            .map(|d| params(d).1)
            .max()
            .unwrap_or(0);
        // The profile: tool counts, hours, and whether a resource is new to the agent.
        let prof = self.agent(&agent, ms);
        prof.count_tool(tool, ms);
        if let Some(b) = prof.bucket(ms, baseline_ms) {
            b.actions += 1;
        }
        let hod = usize::try_from(ms.rem_euclid(86_400_000) / HOUR_MS).unwrap_or(0);
        if let Some(h) = prof.active_hours.get_mut(hod) {
            *h += 1;
        }
        let mut novel = false;
        for r in resources(args) {
            novel |= prof.touch(&r, ms, baseline_ms, fresh);
        }
        let ready_since = prof.first_ms;
        let known = prof.prefixes.len();
        let base = prof.baseline(ms);
        // The intent that proposed it: the session's own, or (a delegated session) one of
        // its ancestors' within the window.
        let proposed = self.take_intent(sid, tool, called_as, ms);
        let s = self.session(sid, ms);
        push_event(&mut s.actions, (ms, seq));
        if novel {
            push_event(&mut s.novel, (ms, seq));
        }
        if proposed == Proposed::No {
            push_event(&mut s.mismatches, (ms, seq));
        }
        let mut out = Vec::new();
        for d in &charter.observer.detectors {
            let (threshold, window) = params(d);
            let since = s.since.get(&d.id).copied().unwrap_or(0);
            let fired = match d.kind {
                DetectorKind::IntentMismatch => {
                    let (n, ev) = recent(&mut s.mismatches, ms, window, since);
                    (n as f64 >= threshold).then(|| {
                        signal(d, At { sid, ms }, s, Some(tool.to_owned()), ev, json!({
                            "window_secs": window / 1000, "threshold": threshold, "count": n,
                        }), format!("{n} actions and model proposals did not match within {}s (the last: `{tool}`)", window / 1000))
                    })
                }
                DetectorKind::NewResourceBurst => {
                    if ready_since > ms.saturating_sub(window) {
                        None // no history older than the window: nothing is "never touched before" yet
                    } else {
                        let (n, ev) = recent(&mut s.novel, ms, window, since);
                        (n as f64 >= threshold).then(|| {
                            signal(d, At { sid, ms }, s, Some(tool.to_owned()), ev, json!({
                                "window_secs": window / 1000, "threshold": threshold, "count": n,
                                "known_prefixes": known, "history_hours": base.hours,
                            }), format!("{n} actions in resources the agent had not touched before, within {}s", window / 1000))
                        })
                    }
                }
                DetectorKind::Rate => {
                    let per_window = base.actions_per_active_minute * window as f64 / 60_000.0;
                    let (n, ev) = recent(&mut s.actions, ms, window, since);
                    (base.hours > 0 && n >= MIN_RATE_EVENTS && n as f64 > threshold * per_window).then(|| {
                        signal(d, At { sid, ms }, s, Some(tool.to_owned()), ev, json!({
                            "window_secs": window / 1000, "threshold": threshold, "count": n,
                            "baseline_per_window": per_window, "history_hours": base.hours,
                        }), format!("{n} actions within {}s, above {threshold} times the baseline of {per_window:.2}", window / 1000))
                    })
                }
                DetectorKind::SensitiveThenSend => {
                    let outbound = d.tool_set.is_match(tool);
                    let label = d.labels.iter().find_map(|l| {
                        s.labels
                            .get(&**l)
                            .filter(|e| window == 0 || e.0 >= ms.saturating_sub(window))
                            .map(|e| (l.to_string(), e.1))
                    });
                    match (outbound, label) {
                        (true, Some((label, at))) => Some(signal(
                            d,
                            At { sid, ms },
                            s,
                            Some(tool.to_owned()),
                            vec![at, seq],
                            json!({
                                "labels": d.labels.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
                                "tools": d.tools,
                            }),
                            format!("`{tool}` sends out of a session that read `{label}` data"),
                        )),
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(sig) = fired {
                s.since.insert(d.id.clone(), seq);
                out.push(sig);
            }
        }
        out
    }

    pub(crate) fn on_decided(&mut self, sid: &str, seq: u64, p: &Value, ms: i64) -> Vec<Signal> {
        let verdict = p
            .pointer("/decision/verdict")
            .and_then(Value::as_str)
            .unwrap_or("");
        let denied = verdict == "deny";
        let baseline_ms = self.baseline_ms();
        let agent = self.session(sid, ms).agent.clone();
        let prof = self.agent(&agent, ms);
        let base = prof.baseline(ms);
        if let Some(b) = prof.bucket(ms, baseline_ms) {
            b.decided += 1;
            b.denied += u64::from(denied);
        }
        if !denied {
            return Vec::new();
        }
        self.denial_storm(&agent, sid, seq, ms, |n, threshold, window_secs| {
            (
                json!({
                    "window_secs": window_secs, "threshold": threshold, "count": n,
                    "baseline_denial_rate": base.denial_rate, "baseline_approval_rate": base.approval_rate,
                }),
                format!("{n} actions denied within {window_secs}s"),
            )
        })
    }

    /// Counts one denial of session `sid` (record `seq`, at `ms`) and fires every
    /// denial-storm detector of `agent`'s charter whose threshold the session's denials in
    /// its window reach; `describe(count, threshold, window_secs)` gives the signal's
    /// baseline and detail. One mechanism for denied actions and refused delegations.
    pub(crate) fn denial_storm(
        &mut self,
        agent: &str,
        sid: &str,
        seq: u64,
        ms: i64,
        describe: impl Fn(usize, f64, i64) -> (Value, String),
    ) -> Vec<Signal> {
        let charter = self.charter_of(Some(agent));
        let s = self.session(sid, ms);
        push_event(&mut s.denials, (ms, seq));
        let mut out = Vec::new();
        for d in charter
            .observer
            .detectors
            .iter()
            .filter(|d| d.kind == DetectorKind::DenialStorm)
        {
            let (threshold, window) = params(d);
            let since = s.since.get(&d.id).copied().unwrap_or(0);
            let (n, ev) = recent(&mut s.denials, ms, window, since);
            if n as f64 >= threshold {
                let (baseline, detail) = describe(n, threshold, window / 1000);
                out.push(signal(d, At { sid, ms }, s, None, ev, baseline, detail));
                s.since.insert(d.id.clone(), seq);
            }
        }
        out
    }

    pub(crate) fn on_intent(&mut self, sid: &str, seq: u64, p: &Value, ms: i64) -> Vec<Signal> {
        self.expire_intents(sid, ms);
        let s = self.session(sid, ms);
        s.has_model = true;
        if let Some(tool) = p.get("tool").and_then(Value::as_str) {
            if s.intents.len() >= MAX_INTENTS {
                s.intents.pop_front();
            }
            s.intents.push_back(Intent {
                ms,
                seq,
                tool: bounded(tool).to_owned(),
            });
        }
        Vec::new()
    }

    pub(crate) fn on_completed(&mut self, sid: &str, seq: u64, p: &Value, ms: i64) -> Vec<Signal> {
        let tokens = ["input_tokens", "output_tokens"]
            .iter()
            .filter_map(|k| {
                p.get("usage")
                    .and_then(|u| u.get(k))
                    .and_then(Value::as_u64)
            })
            .fold(0u64, u64::saturating_add);
        let baseline_ms = self.baseline_ms();
        self.active(sid, ms);
        let s = self.session(sid, ms);
        s.has_model = true;
        let agent = s.agent.clone();
        let prof = self.agent(&agent, ms);
        let base = prof.baseline(ms);
        if let Some(b) = prof.bucket(ms, baseline_ms) {
            b.turns += 1;
            b.tokens = b.tokens.saturating_add(tokens);
        }
        let charter = self.charter_of(Some(&agent));
        let s = self.session(sid, ms);
        let mut out = Vec::new();
        for d in charter
            .observer
            .detectors
            .iter()
            .filter(|d| d.kind == DetectorKind::TokenSpike)
        {
            let (threshold, _) = params(d);
            if base.turns >= MIN_BASELINE_TURNS && tokens as f64 > threshold * base.tokens_per_turn
            {
                out.push(signal(d, At { sid, ms }, s, None, vec![seq], json!({
                    "threshold": threshold, "tokens": tokens,
                    "baseline_tokens_per_turn": base.tokens_per_turn, "baseline_turns": base.turns,
                }), format!("a model turn used {tokens} tokens, above {threshold} times the baseline of {:.0}", base.tokens_per_turn)));
            }
        }
        out
    }

    pub(crate) fn on_labels(&mut self, sid: &str, seq: u64, p: &Value, ms: i64) {
        let s = self.session(sid, ms);
        for l in p
            .get("labels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if s.labels.len() >= MAX_LABELS && !s.labels.contains_key(l) {
                continue;
            }
            s.labels.insert(bounded(l).to_owned(), (ms, seq));
        }
    }

    pub(crate) fn on_approval(&mut self, sid: &str, granted: bool, ms: i64) {
        let baseline_ms = self.baseline_ms();
        let agent = self.session(sid, ms).agent.clone();
        if let Some(b) = self.agent(&agent, ms).bucket(ms, baseline_ms) {
            if granted {
                b.approved += 1;
            } else {
                b.refused += 1;
            }
        }
    }

    /// The `ledger_integrity` signals for a break at `seq`: one per such detector, or one of
    /// the built-in `ledger_integrity` detector when the charter declares none.
    pub(crate) fn integrity_signals(&mut self, seq: u64, detail: &str) -> Vec<Signal> {
        let mut ids: Vec<String> = self
            .charter
            .observer
            .detectors
            .iter()
            .filter(|d| d.kind == DetectorKind::LedgerIntegrity)
            .map(|d| d.id.clone())
            .collect();
        if ids.is_empty() {
            ids.push("ledger_integrity".to_owned());
        }
        ids.into_iter()
            .map(|id| Signal {
                detector: id,
                kind: DetectorKind::LedgerIntegrity.as_str().to_owned(),
                session: None,
                agent: None,
                principal: None,
                tool: None,
                evidence: vec![seq],
                baseline: json!({ "last_verified_seq": seq.saturating_sub(1) }),
                detail: format!(
                    "the ledger's hash chain does not verify at record {seq}: {}",
                    bounded(detail)
                ),
                time: time_of(self.st.now_ms),
            })
            .collect()
    }

    /// The signal of an `export_lagging` record at `seq`: a copy of the ledger outside the
    /// agent's reach is falling behind (or failing), so tampering could go unnoticed longer.
    pub(crate) fn export_lagging(&self, seq: u64, p: &Value, ms: i64) -> Signal {
        let field = |k: &str| p.get(k).cloned().unwrap_or(Value::Null);
        let sink = p.get("sink").and_then(Value::as_str).map_or("?", bounded);
        let error = p
            .get("error")
            .and_then(Value::as_str)
            .map(|e| format!(" ({})", bounded(e)))
            .unwrap_or_default();
        Signal {
            detector: EXPORT_LAGGING.to_owned(),
            kind: EXPORT_LAGGING.to_owned(),
            session: None,
            agent: None,
            principal: None,
            tool: None,
            evidence: vec![seq],
            baseline: json!({ "sink": sink, "acked": field("acked"), "head": field("head"), "lag": field("lag") }),
            detail: format!(
                "the export sink `{sink}` is {} records behind the ledger{error}",
                p.get("lag").and_then(Value::as_u64).unwrap_or(0)
            ),
            time: time_of(ms),
        }
    }
}
