//! Decisions per minute by verdict and model tokens per agent over the last hour, counted from
//! the ledger's committed records: a fixed ring of [`MINUTES`] one-minute buckets, each with
//! at most [`MAX_AGENTS`] agents, so memory never grows with traffic.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;
use time::OffsetDateTime;
use warden_audit::Record;

/// The buckets kept: one per minute of the last hour.
pub const MINUTES: usize = 60;
/// Agents counted per minute; the rest are counted under [`OTHER_AGENTS`].
pub const MAX_AGENTS: usize = 32;
/// Where tokens of agents past [`MAX_AGENTS`] (in one minute) are counted.
pub const OTHER_AGENTS: &str = "(other agents)";

/// One minute's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bucket {
    /// Minutes since the Unix epoch.
    minute: i64,
    allow: u64,
    deny: u64,
    ask: u64,
    tokens: BTreeMap<String, u64>,
}

/// Decisions per minute by verdict and model tokens per agent, fed from the ledger; bounded.
#[derive(Debug, Default)]
pub struct Activity {
    buckets: Mutex<VecDeque<Bucket>>,
}

/// One minute as the overview shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteLine {
    /// `HH:MM` UTC.
    pub minute: String,
    /// Allowed actions.
    pub allow: u64,
    /// Denied actions.
    pub deny: u64,
    /// Actions sent to approval.
    pub ask: u64,
    /// All three.
    pub total: u64,
}

/// The last hour, as the overview shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivitySnapshot {
    /// Minutes with decisions, newest first.
    pub minutes: Vec<MinuteLine>,
    /// The busiest minute's decisions (for the bars).
    pub peak: u64,
    /// Allowed, denied and asked over the hour.
    pub allow: u64,
    /// Denied over the hour.
    pub deny: u64,
    /// Asked over the hour.
    pub ask: u64,
    /// Model tokens (input and output) per agent over the hour, most first.
    pub tokens: Vec<(String, u64)>,
}

fn minute_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(60)
}

fn hhmm(minute: i64) -> String {
    let m = minute.rem_euclid(24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The model tokens a `model_completed` payload reports (input and output).
pub(crate) fn tokens_of(payload: &Value) -> u64 {
    ["input_tokens", "output_tokens"]
        .iter()
        .filter_map(|k| {
            payload
                .get("usage")
                .and_then(|u| u.get(k))
                .and_then(Value::as_u64)
        })
        .fold(0, u64::saturating_add)
}

impl Activity {
    /// Counts `record` (an `action_decided` by its verdict, a `model_completed` by its tokens
    /// under `agent`; other kinds are ignored) when it falls within the hour before `now`.
    pub fn count(&self, record: &Record, agent: &str, now: OffsetDateTime) {
        let kind = record.kind.as_str();
        if kind != "action_decided" && kind != "model_completed" {
            return;
        }
        let minute = minute_of(record.time);
        let newest = minute_of(now);
        let oldest = newest.saturating_sub(i64::try_from(MINUTES).unwrap_or(60) - 1);
        if minute < oldest || minute > newest {
            return;
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        buckets.retain(|b| b.minute >= oldest);
        let at = match buckets.iter().position(|b| b.minute == minute) {
            Some(i) => i,
            None => {
                if buckets.len() >= MINUTES {
                    // Cannot happen after the `retain` above; kept as the bound.
                    return;
                }
                let i = buckets.partition_point(|b| b.minute < minute);
                buckets.insert(
                    i,
                    Bucket {
                        minute,
                        ..Bucket::default()
                    },
                );
                i
            }
        };
        let Some(b) = buckets.get_mut(at) else {
            return;
        };
        let p = &record.payload;
        match kind {
            "action_decided" => {
                match p
                    .get("decision")
                    .and_then(|d| d.get("verdict"))
                    .and_then(Value::as_str)
                {
                    Some("allow") => b.allow = b.allow.saturating_add(1),
                    Some("ask") => b.ask = b.ask.saturating_add(1),
                    // Anything else (deny, or a verdict this version does not know) counts as
                    // a denial: nothing unknown is shown as allowed.
                    _ => b.deny = b.deny.saturating_add(1),
                }
            }
            _ => {
                let n = tokens_of(p);
                if n == 0 {
                    return;
                }
                let key = if b.tokens.contains_key(agent) || b.tokens.len() < MAX_AGENTS {
                    agent
                } else {
                    OTHER_AGENTS
                };
                let slot = b.tokens.entry(key.to_owned()).or_insert(0);
                *slot = slot.saturating_add(n);
            }
        }
    }

    /// The hour before `now`.
    pub fn snapshot(&self, now: OffsetDateTime) -> ActivitySnapshot {
        let newest = minute_of(now);
        let oldest = newest.saturating_sub(i64::try_from(MINUTES).unwrap_or(60) - 1);
        let Ok(buckets) = self.buckets.lock() else {
            return ActivitySnapshot::default();
        };
        let mut s = ActivitySnapshot::default();
        let mut tokens: BTreeMap<String, u64> = BTreeMap::new();
        for b in buckets
            .iter()
            .rev()
            .filter(|b| b.minute >= oldest && b.minute <= newest)
        {
            let total = b.allow.saturating_add(b.deny).saturating_add(b.ask);
            if total > 0 {
                s.minutes.push(MinuteLine {
                    minute: hhmm(b.minute),
                    allow: b.allow,
                    deny: b.deny,
                    ask: b.ask,
                    total,
                });
            }
            s.peak = s.peak.max(total);
            s.allow = s.allow.saturating_add(b.allow);
            s.deny = s.deny.saturating_add(b.deny);
            s.ask = s.ask.saturating_add(b.ask);
            for (agent, n) in &b.tokens {
                let slot = tokens.entry(agent.clone()).or_insert(0);
                *slot = slot.saturating_add(*n);
            }
        }
        let mut tokens: Vec<(String, u64)> = tokens.into_iter().collect();
        tokens.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        s.tokens = tokens;
        s
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use warden_core::RecordKind;

    use super::*;

    fn record(seq: u64, kind: RecordKind, payload: Value, time: OffsetDateTime) -> Record {
        Record {
            seq,
            time,
            session: Some("s".to_owned()),
            kind,
            payload,
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    fn decided(seq: u64, verdict: &str, time: OffsetDateTime) -> Record {
        record(
            seq,
            RecordKind::ActionDecided,
            json!({ "decision": { "verdict": verdict } }),
            time,
        )
    }

    #[test]
    fn decisions_are_counted_per_minute_by_verdict_and_tokens_per_agent() {
        let now = time::macros::datetime!(2026-01-01 12:30:30 UTC);
        let a = Activity::default();
        a.count(&decided(1, "allow", now), "bot", now);
        a.count(&decided(2, "allow", now), "bot", now);
        a.count(&decided(3, "deny", now), "bot", now);
        a.count(
            &decided(4, "ask", now - time::Duration::minutes(2)),
            "bot",
            now,
        );
        a.count(&decided(5, "weird", now), "bot", now);
        let completed = record(
            6,
            RecordKind::ModelCompleted,
            json!({ "usage": { "input_tokens": 10, "output_tokens": 5 } }),
            now,
        );
        a.count(&completed, "bot", now);
        a.count(&completed, "other", now);
        let s = a.snapshot(now);
        assert_eq!(s.minutes.len(), 2);
        let first = s.minutes.first().cloned().unwrap();
        assert_eq!(first.minute, "12:30");
        assert_eq!((first.allow, first.deny, first.ask), (2, 2, 0));
        assert_eq!((s.allow, s.deny, s.ask, s.peak), (2, 2, 1, 4));
        assert_eq!(
            s.tokens,
            vec![("bot".to_owned(), 15), ("other".to_owned(), 15)]
        );
    }

    #[test]
    fn only_the_last_hour_is_kept_and_agents_are_bounded() {
        let now = time::macros::datetime!(2026-01-01 12:00:00 UTC);
        let a = Activity::default();
        for m in 0..200i64 {
            a.count(
                &decided(1, "allow", now - time::Duration::minutes(m)),
                "bot",
                now,
            );
        }
        a.count(
            &decided(1, "allow", now + time::Duration::minutes(5)),
            "bot",
            now,
        );
        assert_eq!(a.buckets.lock().unwrap().len(), MINUTES);
        assert_eq!(a.snapshot(now).allow, 60);
        for i in 0..100 {
            let r = record(
                2,
                RecordKind::ModelCompleted,
                json!({ "usage": { "input_tokens": 1 } }),
                now,
            );
            a.count(&r, &format!("agent-{i}"), now);
        }
        let s = a.snapshot(now);
        assert_eq!(s.tokens.len(), MAX_AGENTS + 1);
        assert!(
            s.tokens
                .iter()
                .any(|(k, n)| k == OTHER_AGENTS && *n == 100 - 32)
        );
        // An hour later, nothing of this hour is shown.
        assert_eq!(a.snapshot(now + time::Duration::hours(1)).allow, 0);
    }
}
