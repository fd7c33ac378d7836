//! When a sink is lagging: its lag (head minus cursor) above `max_lag_records`, or failing
//! without a success for longer than `max_lag`. The exporter then appends one `export_lagging`
//! record (`sink`, `acked`, `head`, `lag`, `error`), and `export_recovered` (`sink`, `acked`,
//! `head`) once it is back under both limits: at most one such record per sink per
//! [`ANNOUNCE_EVERY`], so a sink flapping at the limit cannot flood the ledger. Pure: the time
//! is passed in.

use std::time::{Duration, Instant};

use serde_json::json;
use warden_core::{NewRecord, RecordKind};

/// The least time between two lag records of one sink.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(60);

/// One sink's lag state.
#[derive(Debug, Clone)]
pub struct LagWatch {
    sink: String,
    max_records: u64,
    max_failing: Duration,
    failing_since: Option<Instant>,
    last_error: Option<String>,
    announced_lagging: bool,
    last_announced: Option<Instant>,
    every: Duration,
}

impl LagWatch {
    /// The watch of sink `sink` with its limits.
    pub fn new(sink: &str, max_records: u64, max_failing: Duration) -> LagWatch {
        LagWatch {
            sink: sink.to_owned(),
            max_records,
            max_failing,
            failing_since: None,
            last_error: None,
            announced_lagging: false,
            last_announced: None,
            every: ANNOUNCE_EVERY,
        }
    }

    /// The same watch with another least time between two records (tests use a short one).
    pub fn every(mut self, every: Duration) -> LagWatch {
        self.every = every;
        self
    }

    /// A delivery failed at `now` for `reason`.
    pub fn failed(&mut self, now: Instant, reason: &str) {
        self.failing_since.get_or_insert(now);
        self.last_error = Some(reason.to_owned());
    }

    /// A delivery succeeded.
    pub fn succeeded(&mut self) {
        self.failing_since = None;
        self.last_error = None;
    }

    /// Whether the sink is over a limit now.
    pub fn lagging(&self, now: Instant, acked: u64, head: u64) -> bool {
        head.saturating_sub(acked) > self.max_records
            || self
                .failing_since
                .is_some_and(|since| now.saturating_duration_since(since) > self.max_failing)
    }

    /// The record to append now, if the sink crossed a limit (either way) since the last one
    /// and the last one is at least [`ANNOUNCE_EVERY`] (or [`LagWatch::every`]) old. Once returned, it counts as
    /// announced (a failed append is not retried for a minute).
    pub fn check(&mut self, now: Instant, acked: u64, head: u64) -> Option<NewRecord> {
        let lagging = self.lagging(now, acked, head);
        if lagging == self.announced_lagging
            || self
                .last_announced
                .is_some_and(|at| now.saturating_duration_since(at) < self.every)
        {
            return None;
        }
        self.announced_lagging = lagging;
        self.last_announced = Some(now);
        let payload = if lagging {
            json!({
                "sink": self.sink,
                "acked": acked,
                "head": head,
                "lag": head.saturating_sub(acked),
                "error": self.last_error,
            })
        } else {
            json!({ "sink": self.sink, "acked": acked, "head": head })
        };
        let kind = if lagging {
            RecordKind::ExportLagging
        } else {
            RecordKind::ExportRecovered
        };
        Some(NewRecord::new(None, kind, payload))
    }
}

#[cfg(test)]
mod tests;
