//! Where the time comes from: [`Clock`], the system clock and a hand-set clock for tests.
//!
//! Code that stamps a time on anything that is kept (a ledger record, an approval deadline)
//! takes an `Arc<dyn Clock>` instead of reading the system time, so tests are deterministic
//! and every timestamp in the system comes through one seam (STYLE C9).

use std::fmt;
use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock, in UTC.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that shows the time it was set to, until it is set or advanced again.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the time forward by `by` (backward if `by` is negative).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.saturating_add(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn manual_clock_is_set_and_advanced() {
        let clock = ManualClock::new(datetime!(2026-11-21 06:00 UTC));
        assert_eq!(clock.now(), datetime!(2026-11-21 06:00 UTC));
        clock.advance(Duration::milliseconds(1500));
        assert_eq!(clock.now(), datetime!(2026-11-21 06:00:01.5 UTC));
        clock.set(datetime!(2027-01-01 00:00 UTC));
        assert_eq!(clock.now(), datetime!(2027-01-01 00:00 UTC));
    }

    #[test]
    fn system_clock_is_in_utc() {
        assert!(SystemClock.now().offset().is_utc());
    }
}
