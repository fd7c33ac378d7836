//! The summary of a shadow charter's recorded decisions (`shadow_decided`: `action`,
//! `charter`, `decision`, `live` = `{verdict, tier}`, `diverged`), in the report's shape: the
//! live outcome is the recorded one, the shadow's the candidate's. The attempt and the live
//! decision of the same action (in the same batch, just before) give the example's tool and
//! arguments and the live rules.

use std::collections::VecDeque;

use serde_json::Value;
use warden_audit::{Record, RecordKind};

use crate::Options;
use crate::report::{Builder, Compared, Outcome};

/// Most recent attempts and decisions held to join a shadow decision with (they are in the
/// same batch).
const RECENT: usize = 32;

pub(crate) struct Shadow<'a> {
    options: &'a Options,
    attempts: VecDeque<Record>,
    decided: VecDeque<(String, Outcome)>,
    pub(crate) out: Builder,
}

fn action_of(r: &Record) -> Option<&str> {
    r.payload.get("action").and_then(Value::as_str)
}

impl<'a> Shadow<'a> {
    pub(crate) fn new(options: &'a Options) -> Shadow<'a> {
        Shadow {
            options,
            attempts: VecDeque::new(),
            decided: VecDeque::new(),
            out: Builder::new("shadow", options.examples),
        }
    }

    pub(crate) fn record(&mut self, r: Record) {
        match r.kind {
            RecordKind::ActionAttempted => {
                if self.attempts.len() >= RECENT {
                    self.attempts.pop_front();
                }
                self.attempts.push_back(r);
            }
            RecordKind::ActionDecided => {
                let outcome = r.payload.get("decision").and_then(Outcome::from_recorded);
                if let (Some(action), Some(outcome)) = (action_of(&r), outcome) {
                    if self.decided.len() >= RECENT {
                        self.decided.pop_front();
                    }
                    self.decided.push_back((action.to_owned(), outcome));
                }
            }
            RecordKind::ShadowDecided => self.shadowed(&r),
            _ => {}
        }
    }

    fn shadowed(&mut self, r: &Record) {
        let in_window = self.options.since.is_none_or(|s| r.time >= s)
            && self
                .options
                .session
                .as_deref()
                .is_none_or(|s| r.session.as_deref() == Some(s));
        if !in_window {
            return;
        }
        let p = &r.payload;
        let action = p.get("action").and_then(Value::as_str);
        let shadow = p.get("decision").and_then(Outcome::from_recorded);
        let live = p.get("live").and_then(|l| {
            Some((
                serde_json::from_value(l.get("verdict")?.clone()).ok()?,
                serde_json::from_value(l.get("tier")?.clone()).ok()?,
            ))
        });
        let (Some(action), Some(shadow), Some((verdict, tier))) = (action, shadow, live) else {
            self.out.malformed(
                r.seq,
                "a `shadow_decided` without its action, decision or live outcome".to_owned(),
            );
            return;
        };
        self.out.report.totals.attempts += 1;
        let recorded = self
            .decided
            .iter()
            .rev()
            .find(|(a, _)| a == action)
            .map(|(_, o)| o.clone())
            .filter(|o| o.verdict == verdict && o.tier == tier)
            .unwrap_or(Outcome {
                verdict,
                tier,
                reason: "unknown".to_owned(),
                rules: Vec::new(),
            });
        let attempt = self
            .attempts
            .iter()
            .rev()
            .find(|a| action_of(a) == Some(action));
        let (seq, tool, args) = match attempt {
            Some(a) => (
                a.seq,
                a.payload.get("tool").and_then(Value::as_str).unwrap_or(""),
                a.payload
                    .get("resolved_arguments")
                    .or_else(|| a.payload.get("arguments"))
                    .unwrap_or(&Value::Null),
            ),
            None => (r.seq, "", &Value::Null),
        };
        self.out.compared(Compared {
            seq,
            session: r.session.as_deref(),
            time: r.time,
            tool,
            arguments: args,
            recorded,
            candidate: shadow,
        });
    }
}
