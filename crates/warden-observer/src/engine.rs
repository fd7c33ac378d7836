//! The observer's engine: ledger records in, signals and responses out. Pure and
//! deterministic: no clock but the records' own `time`, no randomness, no I/O, so a replay of
//! a ledger gives exactly the responses live watching gave.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use warden_audit::{Record, RecordKind};
use warden_charter::CompiledCharter;

use crate::profile::{AgentProfile, HOUR_MS, SessionState, evict_oldest};
use crate::response::{Action, Response, Signal};

/// Sessions tracked at most; beyond, the least recently active is forgotten.
pub const MAX_SESSIONS: usize = 100_000;
/// Agents profiled at most; beyond, the least recently active is forgotten.
pub const MAX_AGENTS: usize = 1024;
/// Baseline window when the charter sets none.
pub const DEFAULT_BASELINE: Duration = Duration::from_secs(14 * 86_400);

/// Counters over everything the engine has read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Records ingested.
    pub records: u64,
    /// Sessions tracked now.
    pub sessions: u64,
    /// Signals raised.
    pub signals: u64,
    /// Responses returned (alerts and interventions).
    pub responses: u64,
}

/// When a detector or rule last answered about a target, and how strongly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Fired {
    pub ms: i64,
    /// The ledger seq it answered at (correlation counts only signals raised after it).
    pub seq: u64,
    pub action: Action,
}

/// A signal kept for correlation, with when it was raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Recent {
    pub ms: i64,
    pub seq: u64,
    pub signal: Signal,
}

/// Everything the engine knows, serialisable so the `observe` process can save it and
/// restore it after a restart ([`Engine::state`], [`Engine::restore`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    pub(crate) last_seq: u64,
    pub(crate) now_ms: i64,
    /// The charter hash of the last `charter_loaded` (or `set_charter`).
    pub(crate) seen_hash: Option<String>,
    pub(crate) learning_until_ms: Option<i64>,
    pub(crate) agents: BTreeMap<String, AgentProfile>,
    pub(crate) sessions: HashMap<String, SessionState>,
    pub(crate) fired: HashMap<String, Fired>,
    pub(crate) recent: VecDeque<Recent>,
    pub(crate) stats: EngineStats,
}

impl EngineState {
    /// The sequence number of the last record read (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

/// Reads ledger records in order and answers with the responses they call for.
#[derive(Debug)]
pub struct Engine {
    /// The charter of the gateway's first agent: the observer section applied to a session
    /// whose agent has no charter of its own here, and the learning window's.
    pub(crate) charter: Arc<CompiledCharter>,
    /// Every charter of the gateway's set by agent id (a one-charter gateway: empty), so each
    /// session is observed under its own agent's observer section.
    pub(crate) agents: BTreeMap<String, Arc<CompiledCharter>>,
    pub(crate) st: EngineState,
}

pub(crate) fn ms_of(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn time_of(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Engine {
    /// An engine for `charter` (its `observer` section), with no history yet.
    pub fn new(charter: Arc<CompiledCharter>) -> Engine {
        Engine {
            charter,
            agents: BTreeMap::new(),
            st: EngineState::default(),
        }
    }

    /// An engine for `charter` that continues from a saved state. A charter whose hash
    /// differs from the one the state last saw starts the learning window.
    pub fn restore(charter: Arc<CompiledCharter>, state: EngineState) -> Engine {
        let mut engine = Engine {
            charter: charter.clone(),
            agents: BTreeMap::new(),
            st: state,
        };
        engine.set_charter(charter);
        engine
    }

    /// A copy of everything the engine knows, to save.
    pub fn state(&self) -> EngineState {
        self.st.clone()
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.st.stats;
        s.sessions = u64::try_from(self.st.sessions.len()).unwrap_or(u64::MAX);
        s
    }

    /// The charter it applies.
    pub fn charter(&self) -> &Arc<CompiledCharter> {
        &self.charter
    }

    /// Applies, from now on, each of `charters` to the sessions of its own agent (the
    /// gateway's set): a session is observed under its agent's observer section, and one
    /// whose agent has none here under [`Engine::charter`]'s. Replaces the previous set.
    pub fn set_agents(&mut self, charters: impl IntoIterator<Item = Arc<CompiledCharter>>) {
        self.agents = charters
            .into_iter()
            .map(|c| (c.identity.id.clone(), c))
            .collect();
    }

    /// The charter whose observer section applies to `agent`'s sessions.
    pub(crate) fn charter_of(&self, agent: Option<&str>) -> Arc<CompiledCharter> {
        agent
            .and_then(|a| self.agents.get(a))
            .unwrap_or(&self.charter)
            .clone()
    }

    /// The charter whose observer section applies to session `sid`.
    pub(crate) fn charter_for_session(&self, sid: &str) -> Arc<CompiledCharter> {
        self.charter_of(self.st.sessions.get(sid).map(|s| s.agent.as_str()))
    }

    /// Whether the engine is in a learning window (it only alerts) at the last record's time.
    pub fn learning(&self) -> bool {
        self.st
            .learning_until_ms
            .is_some_and(|until| self.st.now_ms < until)
    }

    /// Applies a new charter from now on. When its hash is not the one the ledger last
    /// announced, the learning window starts at the last record's time: the observer only
    /// alerts until it has seen `learning_window` of behaviour under the new charter.
    pub fn set_charter(&mut self, charter: Arc<CompiledCharter>) {
        let hash = charter.hash.to_prefixed_hex();
        self.charter = charter;
        if self.st.seen_hash.as_deref() != Some(hash.as_str()) {
            if self.st.seen_hash.is_some() {
                self.start_learning();
            }
            self.st.seen_hash = Some(hash);
        }
    }

    fn start_learning(&mut self) {
        if let Some(w) = self.charter.observer.learning_window {
            let until = self.st.now_ms.saturating_add(dur_ms(w));
            self.st.learning_until_ms =
                Some(self.st.learning_until_ms.map_or(until, |u| u.max(until)));
        }
    }

    /// How far back the profiles reach.
    pub(crate) fn baseline_ms(&self) -> i64 {
        dur_ms(
            self.charter
                .observer
                .baseline_window
                .unwrap_or(DEFAULT_BASELINE),
        )
    }

    /// Takes the next ledger record (in sequence order, its chain already verified by the
    /// caller) and returns the responses it calls for. A record at or below the last seq read
    /// is ignored (a resumed stream may repeat one); a gap in the sequence is a
    /// `ledger_integrity` signal. Never panics, whatever the payload holds.
    pub fn ingest(&mut self, record: &Record) -> Vec<Response> {
        let mut out = Vec::new();
        let last = self.st.last_seq;
        if last > 0 && record.seq <= last {
            return out;
        }
        let ms = ms_of(record.time).max(self.st.now_ms);
        self.st.now_ms = ms;
        if last > 0 && record.seq != last.saturating_add(1) {
            let detail = format!(
                "records {} to {} are missing from the stream",
                last.saturating_add(1),
                record.seq.saturating_sub(1)
            );
            self.st.last_seq = record.seq;
            out.extend(self.broken(record.seq, &detail));
        }
        self.st.last_seq = record.seq;
        self.st.stats.records = self.st.stats.records.saturating_add(1);
        let p = &record.payload;
        let sid = record.session.as_deref();
        let signals = match (record.kind, sid) {
            // Another agent's charter (a set): its observer section changes, not the
            // learning window, which follows the first agent's charter.
            (RecordKind::CharterLoaded, _)
                if p.get("agent")
                    .and_then(|v| v.as_str())
                    .is_some_and(|a| a != self.charter.identity.id) =>
            {
                Vec::new()
            }
            (RecordKind::CharterLoaded, _) => {
                if let Some(hash) = p.get("charter").and_then(|v| v.as_str()) {
                    if self.st.seen_hash.as_deref().is_some_and(|h| h != hash) {
                        self.start_learning();
                    }
                    self.st.seen_hash = Some(hash.to_owned());
                }
                Vec::new()
            }
            (RecordKind::SessionOpened, Some(sid)) => {
                self.open_session(sid, p, ms);
                Vec::new()
            }
            (RecordKind::SessionDelegated, Some(sid)) => {
                self.on_delegated(sid, p, ms);
                Vec::new()
            }
            (RecordKind::DelegationRefused, Some(sid)) => {
                self.on_delegation_refused(sid, record.seq, p, ms)
            }
            (RecordKind::SessionRevoked | RecordKind::SessionExpired, Some(sid)) => {
                self.st.sessions.remove(sid);
                Vec::new()
            }
            (RecordKind::ActionAttempted, Some(sid)) => self.on_attempt(sid, record.seq, p, ms),
            (RecordKind::ActionDecided, Some(sid)) => self.on_decided(sid, record.seq, p, ms),
            (RecordKind::ModelIntent, Some(sid)) => self.on_intent(sid, record.seq, p, ms),
            (RecordKind::ModelCompleted, Some(sid)) => self.on_completed(sid, record.seq, p, ms),
            (RecordKind::LabelsAdded, Some(sid)) => {
                self.on_labels(sid, record.seq, p, ms);
                Vec::new()
            }
            (RecordKind::ExportLagging, _) => vec![self.export_lagging(record.seq, p, ms)],
            (RecordKind::ApprovalGranted | RecordKind::ApprovalDenied, Some(sid)) => {
                let granted = record.kind == RecordKind::ApprovalGranted;
                self.on_approval(sid, granted, ms);
                Vec::new()
            }
            _ => Vec::new(),
        };
        for mut signal in signals {
            self.name_chain(&mut signal);
            for r in self.respond(signal) {
                // Two rules agreeing on the same answer for the same target: one response.
                let covered = r.action != Action::Alert
                    && out.iter().any(|o: &Response| {
                        o.scope == r.scope
                            && o.action >= r.action
                            && (r.action != Action::FreezeTool || o.tool == r.tool)
                    });
                if !covered {
                    out.push(r);
                }
            }
        }
        self.st.stats.responses = self
            .st
            .stats
            .responses
            .saturating_add(u64::try_from(out.len()).unwrap_or(u64::MAX));
        out
    }

    /// The chain broke at `seq` (a record whose hash or link does not verify, or a gap):
    /// returns the `ledger_integrity` responses, gateway-wide. Every `ledger_integrity`
    /// detector of the charter answers with its response; with none declared the engine
    /// still answers, with `conservative` (failing closed: a ledger that cannot be trusted
    /// makes the gateway ask).
    pub fn chain_broken(&mut self, seq: u64, detail: &str) -> Vec<Response> {
        let out = self.broken(seq, detail);
        self.st.stats.responses = self
            .st
            .stats
            .responses
            .saturating_add(u64::try_from(out.len()).unwrap_or(u64::MAX));
        out
    }

    fn broken(&mut self, seq: u64, detail: &str) -> Vec<Response> {
        let signals = self.integrity_signals(seq, detail);
        let mut out = Vec::new();
        for signal in signals {
            out.extend(self.respond(signal));
        }
        out
    }

    /// The session's state, created (for the charter's agent) when the ledger has not shown
    /// its opening; the least recently active session is forgotten beyond [`MAX_SESSIONS`].
    pub(crate) fn session(&mut self, sid: &str, ms: i64) -> &mut SessionState {
        if !self.st.sessions.contains_key(sid) {
            if self.st.sessions.len() >= MAX_SESSIONS {
                evict_oldest(&mut self.st.sessions, |s| s.last_ms);
            }
            self.st.sessions.insert(
                sid.to_owned(),
                SessionState {
                    agent: self.charter.identity.id.clone(),
                    last_ms: ms,
                    ..SessionState::default()
                },
            );
        }
        let s = self.st.sessions.entry(sid.to_owned()).or_default();
        s.last_ms = s.last_ms.max(ms);
        s
    }

    /// The agent's profile, created on first sight; the least recently active agent is
    /// forgotten beyond [`MAX_AGENTS`].
    pub(crate) fn agent(&mut self, agent: &str, ms: i64) -> &mut AgentProfile {
        if !self.st.agents.contains_key(agent) {
            if self.st.agents.len() >= MAX_AGENTS {
                evict_oldest(&mut self.st.agents, |a| {
                    a.buckets
                        .back()
                        .map_or(a.first_ms, |b| b.hour.saturating_mul(HOUR_MS))
                });
            }
            self.st.agents.insert(
                agent.to_owned(),
                AgentProfile {
                    first_ms: ms,
                    ..AgentProfile::default()
                },
            );
        }
        self.st.agents.entry(agent.to_owned()).or_default()
    }

    fn open_session(&mut self, sid: &str, p: &serde_json::Value, ms: i64) {
        let agent = p
            .get("agent")
            .and_then(|v| v.as_str())
            .map(|a| crate::detect::bounded(a).to_owned());
        let principal = p
            .get("principal")
            .and_then(|v| v.as_str())
            .map(|a| crate::detect::bounded(a).to_owned());
        let s = self.session(sid, ms);
        if let Some(agent) = agent {
            s.agent = agent;
        }
        s.principal = principal;
        let agent = s.agent.clone();
        self.agent(&agent, ms);
    }
}
