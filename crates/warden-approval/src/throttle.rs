//! Refusals from callers without a credential (a bad link signature, an expired link, a
//! string that looks like an agent token on the approval routes) are recorded sparingly, so
//! that nobody can fill the ledger — or its cap, and with it every agent's actions — without
//! holding a credential.
//!
//! Per window of [`WINDOW`]: the first refusal of each source (the client's address, when the
//! listener knows it) is recorded in full; later ones from the same source, and every one once
//! [`MAX_SOURCES`] sources were seen, are only counted. When the window ends (at the next
//! refusal or the next sweep), one aggregate `approval_refused` record carries the count. So a
//! window appends at most `MAX_SOURCES + 1` records, whatever the number of requests.

use std::collections::HashSet;

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use warden_core::text::rfc3339;

/// The length of one window.
pub const WINDOW: Duration = Duration::seconds(60);
/// Most sources whose first refusal is recorded in full in one window.
pub const MAX_SOURCES: usize = 256;

/// What to do with one anonymous refusal.
#[derive(Debug, PartialEq)]
pub(crate) struct Admitted {
    /// Record this refusal in full.
    pub record: bool,
    /// First record the aggregate of the window that just ended.
    pub aggregate: Option<Value>,
}

/// The state of the current window.
#[derive(Debug)]
pub(crate) struct Throttle {
    start: OffsetDateTime,
    sources: HashSet<String>,
    suppressed: u64,
}

impl Throttle {
    pub(crate) fn new(now: OffsetDateTime) -> Throttle {
        Throttle {
            start: now,
            sources: HashSet::new(),
            suppressed: 0,
        }
    }

    /// Ends the window if it is over: the aggregate of a window that counted refusals it did
    /// not record.
    pub(crate) fn roll(&mut self, now: OffsetDateTime) -> Option<Value> {
        if now < self.start + WINDOW {
            return None;
        }
        let aggregate = (self.suppressed > 0).then(|| {
            json!({
                "refusal": "anonymous_refusals",
                "aggregate": true,
                "count": self.suppressed,
                "sources": self.sources.len(),
                "window_start": rfc3339(self.start),
                "window_end": rfc3339(now),
                "message": "refusals without a credential after the first of each source, counted and not recorded one by one",
            })
        });
        *self = Throttle::new(now);
        aggregate
    }

    /// One refusal from `source` at `now`.
    pub(crate) fn admit(&mut self, source: &str, now: OffsetDateTime) -> Admitted {
        let aggregate = self.roll(now);
        let record = if self.sources.contains(source) || self.sources.len() >= MAX_SOURCES {
            self.suppressed = self.suppressed.saturating_add(1);
            false
        } else {
            self.sources.insert(source.to_owned());
            true
        };
        Admitted { record, aggregate }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn one_record_per_source_per_window_then_one_aggregate() {
        let mut t = Throttle::new(t0());
        assert!(t.admit("a", t0()).record);
        for _ in 0..10_000 {
            assert_eq!(
                t.admit("a", t0()),
                Admitted {
                    record: false,
                    aggregate: None
                }
            );
        }
        assert!(t.admit("b", t0()).record);
        let next = t.admit("a", t0() + WINDOW);
        assert!(next.record);
        let agg = next.aggregate.unwrap();
        assert_eq!(agg["count"], 10_000);
        assert_eq!(agg["sources"], 2);
        // Nothing suppressed in the new window: no aggregate.
        assert_eq!(t.roll(t0() + WINDOW * 2), None);
    }

    #[test]
    fn the_sources_are_bounded() {
        let mut t = Throttle::new(t0());
        let recorded = (0..10_000)
            .filter(|i| t.admit(&i.to_string(), t0()).record)
            .count();
        assert_eq!(recorded, MAX_SOURCES);
        assert_eq!(t.sources.len(), MAX_SOURCES);
        assert_eq!(
            t.roll(t0() + WINDOW).unwrap()["count"],
            10_000 - MAX_SOURCES
        );
    }
}
