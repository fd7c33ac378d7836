//! Preapproved-scope usage simulated under the candidate, as `warden_session::ScopeCounters`
//! counts it: a decision that allows in the preapproved tier counts one use (and the spend of
//! the rule's spend argument) of each of its rules, in the session's window and in the UTC
//! day's window (across sessions). Any other decision (an approval-tier action released by a
//! grant included) counts nothing.

use std::collections::HashMap;
use std::sync::Arc;

use time::{Date, OffsetDateTime, UtcOffset};
use warden_charter::CompiledCharter;
use warden_charter::amount::Amount;
use warden_core::{Decision, Tier, Verdict};
use warden_pdp::{RuleUsage, ScopeUsage};

/// One rule's use in one window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counter {
    count: u32,
    spend: Amount,
}

impl Counter {
    fn add(&mut self, spent: Amount) {
        self.count = self.count.saturating_add(1);
        self.spend = self.spend.checked_add(spent).unwrap_or(self.spend);
    }
}

/// One session's counters, by rule.
pub(crate) type SessionCounters = HashMap<Arc<str>, Counter>;

/// The counters of the UTC days, by rule. Days before yesterday are dropped (no decision reads
/// them).
#[derive(Debug, Default)]
pub(crate) struct DayCounters {
    days: HashMap<Date, HashMap<Arc<str>, Counter>>,
}

/// The UTC day of `now`.
pub(crate) fn utc_day(now: OffsetDateTime) -> Date {
    now.to_offset(UtcOffset::UTC).date()
}

impl DayCounters {
    /// Drops the days before the day before `now`'s.
    pub(crate) fn prune(&mut self, now: OffsetDateTime) {
        if let Some(oldest) = utc_day(now).previous_day() {
            self.days.retain(|d, _| *d >= oldest);
        }
    }
}

/// The usage a decision reads: its session's and its day's.
pub(crate) struct Usage<'a> {
    pub(crate) session: &'a SessionCounters,
    pub(crate) day: Option<&'a HashMap<Arc<str>, Counter>>,
}

impl<'a> Usage<'a> {
    /// The usage of `session` on the UTC day of `now`.
    pub(crate) fn of(
        session: &'a SessionCounters,
        days: &'a DayCounters,
        now: OffsetDateTime,
    ) -> Usage<'a> {
        Usage {
            session,
            day: days.days.get(&utc_day(now)),
        }
    }
}

impl<'a> Usage<'a> {
    /// No usage at all (`empty` is an empty map): what a provider-side action is decided with.
    pub(crate) fn none(empty: &'a SessionCounters) -> Usage<'a> {
        Usage {
            session: empty,
            day: None,
        }
    }
}

impl ScopeUsage for Usage<'_> {
    fn rule(&self, rule_id: &str) -> RuleUsage {
        let s = self.session.get(rule_id).copied().unwrap_or_default();
        let d = self
            .day
            .and_then(|m| m.get(rule_id))
            .copied()
            .unwrap_or_default();
        RuleUsage {
            session_count: s.count,
            day_count: d.count,
            session_spend: s.spend,
            day_spend: d.spend,
        }
    }
}

/// Counts the use `decision` makes, when it allows in the preapproved tier.
pub(crate) fn count_use(
    charter: &CompiledCharter,
    decision: &Decision,
    args: &serde_json::Value,
    session: &mut SessionCounters,
    days: &mut DayCounters,
    now: OffsetDateTime,
) {
    if decision.verdict != Verdict::Allow || decision.tier != Tier::Preapproved {
        return;
    }
    let day = days.days.entry(utc_day(now)).or_default();
    for r in &decision.rules {
        let spent = warden_pdp::spend_of(charter, &r.id, args);
        session.entry(r.id.clone()).or_default().add(spent);
        day.entry(r.id.clone()).or_default().add(spent);
    }
}
