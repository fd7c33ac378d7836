//! The replay of recorded attempts under a candidate charter, one record at a time in ledger
//! order: state changes are applied as they were recorded; each `action_attempted` is decided
//! again, with the state before it, when its `action_decided` (the next record: both are in
//! one batch) is read.

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;
use warden_audit::{Record, RecordKind};
use warden_charter::CompiledCharter;
use warden_core::gate::RefusalReason;
use warden_pdp::{Request, decide};

use crate::Options;
use crate::report::{Builder, Compared, Outcome};
use crate::scope::{DayCounters, SessionCounters, Usage, count_use};
use crate::state::{Controls, MAX_SESSIONS, SessionState, Sessions};
use warden_provenance::recorded::{label_list, recorded_text, untrusted_labels};

/// How the gateway words a refusal of a tool outside the inventory (the start of the
/// recorded `refused`), for ledgers written before attempts recorded the `refusal` code.
const NOT_INVENTORIED: &str = "it is not in the charter's inventory";

/// A session is forgotten this long after its expiry (a decision taken just before the
/// expiry may be recorded just after it).
const EXPIRY_GRACE: time::Duration = time::Duration::minutes(5);

/// Why an attempt of a session whose state is not held cannot be reproduced.
const UNKNOWN_SESSION: &str = "its session was not opened in the ledger read (records pruned), or more sessions were live than the replay holds";

/// Why a recorded decision under the candidate's own charter came out otherwise.
const DIFFERS_INCOMPLETE: &str = "re-decided under the same charter it differs, and the session's untrusted index could not be rebuilt in full from the recorded content (cut, redacted or not text)";
const DIFFERS: &str = "re-decided under the same charter it differs: it depended on state the ledger does not hold, or concurrent decisions were recorded in another order";

pub(crate) struct Engine<'a> {
    candidate: &'a CompiledCharter,
    hash: String,
    options: &'a Options,
    sessions: Sessions,
    controls: Controls,
    days: DayCounters,
    held_attempt: Option<Record>,
    held_result: Option<Record>,
    overflowed: u64,
    pub(crate) out: Builder,
}

fn action_of(r: &Record) -> Option<&str> {
    r.payload.get("action").and_then(Value::as_str)
}

impl<'a> Engine<'a> {
    pub(crate) fn new(candidate: &'a CompiledCharter, options: &'a Options) -> Engine<'a> {
        Engine {
            candidate,
            hash: candidate.hash.to_prefixed_hex(),
            options,
            sessions: Sessions::default(),
            controls: Controls::default(),
            days: DayCounters::default(),
            held_attempt: None,
            held_result: None,
            overflowed: 0,
            out: Builder::new("candidate", options.examples),
        }
    }

    fn in_window(&self, r: &Record) -> bool {
        self.options.since.is_none_or(|s| r.time >= s)
            && self
                .options
                .session
                .as_deref()
                .is_none_or(|s| r.session.as_deref() == Some(s))
    }

    /// Drops what no later decision reads: sessions past their expiry, day counters before
    /// yesterday.
    pub(crate) fn sweep(&mut self, now: OffsetDateTime) {
        self.sessions.sweep(now - EXPIRY_GRACE);
        self.days.prune(now);
    }

    /// Replays one record.
    pub(crate) fn record(&mut self, r: Record) {
        if let Some(result) = self.held_result.take() {
            let labels = if r.kind == RecordKind::LabelsAdded
                && action_of(&r) == action_of(&result)
                && r.session == result.session
            {
                label_list(r.payload.get("labels"))
            } else {
                Vec::new()
            };
            self.index(&result, &labels);
        }
        if let Some(attempt) = self.held_attempt.take() {
            if r.kind == RecordKind::ActionDecided && action_of(&r) == action_of(&attempt) {
                self.decided(&attempt, &r);
                return;
            }
            self.undecided(&attempt);
        }
        let session = r.session.as_deref();
        match r.kind {
            RecordKind::SessionOpened => match session {
                Some(id) if self.sessions.map.len() < MAX_SESSIONS => {
                    match SessionState::opened(&r.payload) {
                        Some(s) => {
                            self.sessions.map.insert(id.to_owned(), s);
                        }
                        None => self.out.malformed(
                            r.seq,
                            "a `session_opened` without its agent or principal".to_owned(),
                        ),
                    }
                }
                Some(_) => self.overflowed += 1,
                None => self
                    .out
                    .malformed(r.seq, "a `session_opened` without a session".to_owned()),
            },
            RecordKind::SessionRevoked => {
                if let Some(s) = session.and_then(|id| self.sessions.map.get_mut(id)) {
                    s.revoked = true;
                }
            }
            RecordKind::LabelsAdded => {
                if let Some(s) = session.and_then(|id| self.sessions.map.get_mut(id)) {
                    s.add_labels(&label_list(r.payload.get("labels")));
                }
            }
            RecordKind::TrustAdded => {
                if let Some(s) = session.and_then(|id| self.sessions.map.get_mut(id))
                    && let Err(why) = s.add_trust(&r.payload, r.seq)
                {
                    self.out
                        .malformed(r.seq, format!("a `trust_added` whose {why}"));
                }
            }
            RecordKind::ActionResult => self.held_result = Some(r),
            RecordKind::ControlSet => {
                if let Err(why) = self.controls.set(&r.payload) {
                    self.out.malformed(r.seq, format!("a `control_set`: {why}"));
                }
            }
            RecordKind::ControlLifted | RecordKind::ControlExpired => {
                if let Some(id) = r.payload.get("id").and_then(Value::as_str) {
                    self.controls.remove(id);
                }
            }
            RecordKind::ActionAttempted => {
                if r.payload.get("refused").is_some() {
                    self.refused(&r);
                } else {
                    self.held_attempt = Some(r);
                }
            }
            RecordKind::ActionDecided => self.out.malformed(
                r.seq,
                "an `action_decided` not after its attempt".to_owned(),
            ),
            _ => {}
        }
    }

    /// Ends the replay: what is held is settled.
    pub(crate) fn finish(mut self) -> Builder {
        if let Some(result) = self.held_result.take() {
            self.index(&result, &[]);
        }
        if let Some(attempt) = self.held_attempt.take() {
            self.undecided(&attempt);
        }
        if self.overflowed > 0 {
            self.out.report.notes.push(format!(
                "{} sessions were opened while {MAX_SESSIONS} were live; their attempts are not reproducible",
                self.overflowed
            ));
        }
        self.out
    }

    /// Indexes a recorded result whose untrusted labels (its own and `added`) the candidate
    /// declares untrusted (as the gateway's start-up rebuild does).
    fn index(&mut self, result: &Record, added: &[Arc<str>]) {
        let Some(s) = result
            .session
            .as_deref()
            .and_then(|id| self.sessions.map.get_mut(id))
        else {
            return;
        };
        let mut labels = label_list(result.payload.get("untrusted"));
        labels.extend_from_slice(added);
        let labels = untrusted_labels(&self.candidate.data.untrusted, &labels);
        if labels.is_empty() {
            return;
        }
        let (text, complete) = recorded_text(&result.payload);
        s.index(&text, complete, result.seq, labels);
    }

    /// An attempt with no decision after it.
    fn undecided(&mut self, attempt: &Record) {
        if !self.other_agents(attempt) && self.in_window(attempt) {
            self.out.report.totals.attempts += 1;
            self.out.not_decided(
                attempt.seq,
                "no decision was recorded (the session had expired, or the ledger could not record it)",
            );
        }
    }

    /// An attempt refused before any decision: a tool outside the inventory is compared (the
    /// candidate may inventory it); others were refused whatever the charter.
    fn refused(&mut self, attempt: &Record) {
        if self.other_agents(attempt) {
            return;
        }
        let why = attempt
            .payload
            .get("refused")
            .and_then(Value::as_str)
            .unwrap_or("");
        // The stable code when recorded (`refusal`); older ledgers only have the sentence.
        let not_inventoried = match attempt.payload.get("refusal").and_then(Value::as_str) {
            Some(code) => code == RefusalReason::NotInventoried.as_str(),
            None => why.starts_with(NOT_INVENTORIED),
        };
        if !not_inventoried {
            if self.in_window(attempt) {
                self.out.report.totals.attempts += 1;
                let reason = format!(
                    "refused before any decision: {}",
                    warden_core::text::ellipsize(why, 120)
                );
                self.out.not_decided(attempt.seq, &reason);
            }
            return;
        }
        self.compare(attempt, Outcome::not_inventoried(), None);
    }

    /// Whether `attempt` is of a session of another agent than the candidate's: a gateway
    /// governing several agents records them all in one ledger, and a candidate charter
    /// governs its own agent only (the others' attempts are left out of the report).
    fn other_agents(&self, attempt: &Record) -> bool {
        attempt
            .session
            .as_deref()
            .and_then(|id| self.sessions.map.get(id))
            .is_some_and(|s| s.agent != self.candidate.identity.id)
    }

    /// An attempt and its recorded decision.
    fn decided(&mut self, attempt: &Record, decided: &Record) {
        if self.other_agents(attempt) {
            return;
        }
        let decision = decided.payload.get("decision");
        let Some(recorded) = decision.and_then(Outcome::from_recorded) else {
            self.out.malformed(
                decided.seq,
                "an `action_decided` whose decision cannot be read".to_owned(),
            );
            return;
        };
        let charter = decision
            .and_then(|d| d.get("charter"))
            .and_then(Value::as_str);
        self.compare(attempt, recorded, charter);
    }

    /// Decides `attempt` under the candidate and compares it with `recorded` (decided under
    /// `charter`, when recorded).
    fn compare(&mut self, attempt: &Record, recorded: Outcome, charter: Option<&str>) {
        let p = &attempt.payload;
        let tool = p.get("tool").and_then(Value::as_str);
        let args = p.get("resolved_arguments").or_else(|| p.get("arguments"));
        let (Some(tool), Some(args), Some(id)) = (tool, args, attempt.session.as_deref()) else {
            self.out.malformed(
                attempt.seq,
                "an `action_attempted` without its session, tool or arguments".to_owned(),
            );
            return;
        };
        let in_window = self.in_window(attempt);
        let now = attempt.time;
        let Some(session) = self.sessions.map.get_mut(id) else {
            if in_window {
                self.out.report.totals.attempts += 1;
                self.out.not_reproducible(attempt.seq, UNKNOWN_SESSION);
            }
            return;
        };
        // A provider-side action the model proxy decided (`via: model`): implicit in every
        // charter, decided without scope usage, never counted (as `warden-models` does).
        let model = p.get("via").and_then(Value::as_str) == Some("model");
        let candidate = if model || self.candidate.is_inventoried(tool) {
            let controls = self.controls.pdp(id, session, tool, now);
            let decision = {
                let empty = SessionCounters::default();
                let usage = if model {
                    Usage::none(&empty)
                } else {
                    Usage::of(&session.counters, &self.days, now)
                };
                decide(
                    self.candidate,
                    &Request {
                        tool,
                        args,
                        principal: Some(&session.principal),
                        labels: &session.labels,
                        provenance: &session.provenance,
                        controls,
                        usage: &usage,
                        now,
                    },
                )
            };
            if !model {
                count_use(
                    self.candidate,
                    &decision,
                    args,
                    &mut session.counters,
                    &mut self.days,
                    now,
                );
            }
            Outcome::of(&decision)
        } else {
            Outcome::not_inventoried()
        };
        if !in_window {
            return;
        }
        self.out.report.totals.attempts += 1;
        if charter == Some(self.hash.as_str()) && !recorded.same_decision(&candidate) {
            let why = if session.provenance.is_complete() {
                DIFFERS
            } else {
                DIFFERS_INCOMPLETE
            };
            self.out.not_reproducible(attempt.seq, why);
            return;
        }
        self.out.compared(Compared {
            seq: attempt.seq,
            session: Some(id),
            time: now,
            tool,
            arguments: args,
            recorded,
            candidate,
        });
    }
}
