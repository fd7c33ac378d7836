//! How often the agent plane records that it refused a revoked or expired session.
//!
//! Every request of such a session is refused at authentication, but recording each one would
//! let an agent that keeps hammering with a dead token fill the ledger. So the first refusal
//! of a session is recorded, and after it at most one every [`REFUSAL_RECORD_INTERVAL`]; each
//! record counts the refusals left unrecorded since the previous one (`suppressed`), so the
//! ledger still says how many there were.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

/// The shortest time between two recorded refusals of one session.
pub const REFUSAL_RECORD_INTERVAL: Duration = Duration::from_secs(60);

/// Above this many tracked sessions, those whose interval has passed are forgotten (the next
/// refusal of a forgotten session is recorded again, as a first one).
const PRUNE_ABOVE: usize = 10_000;

/// When each refused session was last recorded, and what was left unrecorded since.
///
/// Guarantees: [`admit`](Self::admit) says "record" for the first refusal of a session and then
/// at most once per [`REFUSAL_RECORD_INTERVAL`] per session (concurrent refusals included: the
/// check and the update are one step under a lock); memory holds one entry per session refused
/// in the last interval, plus at most [`PRUNE_ABOVE`] older ones.
#[derive(Debug, Default)]
pub struct SessionRefusals {
    sessions: Mutex<HashMap<String, Tracked>>,
}

#[derive(Debug)]
struct Tracked {
    recorded_at: OffsetDateTime,
    suppressed: u64,
}

impl SessionRefusals {
    /// Counts a refusal of `session` at `now`: `Some(suppressed)` when it is to be recorded
    /// (with the number of refusals left unrecorded since the previous record), `None` when it
    /// is not.
    pub fn admit(&self, session: &str, now: OffsetDateTime) -> Option<u64> {
        // The map holds plain data: a panic elsewhere cannot leave it inconsistent.
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tracked) = sessions.get_mut(session) {
            if now - tracked.recorded_at < REFUSAL_RECORD_INTERVAL {
                tracked.suppressed = tracked.suppressed.saturating_add(1);
                return None;
            }
            let suppressed = tracked.suppressed;
            *tracked = Tracked {
                recorded_at: now,
                suppressed: 0,
            };
            return Some(suppressed);
        }
        if sessions.len() >= PRUNE_ABOVE {
            sessions.retain(|_, t| now - t.recorded_at < REFUSAL_RECORD_INTERVAL);
        }
        sessions.insert(
            session.to_owned(),
            Tracked {
                recorded_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }

    /// Forgets `session`, so that its next refusal is recorded: for a record the ledger could
    /// not take.
    pub fn forget(&self, session: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_is_recorded_then_one_a_minute_with_the_count_of_the_rest() {
        let r = SessionRefusals::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(r.admit("s", t0), Some(0));
        for i in 1..=99 {
            assert_eq!(r.admit("s", t0 + time::Duration::seconds(i % 60)), None);
        }
        assert_eq!(r.admit("other", t0), Some(0));
        assert_eq!(r.admit("s", t0 + time::Duration::seconds(60)), Some(99));
        assert_eq!(r.admit("s", t0 + time::Duration::seconds(61)), None);
        r.forget("s");
        assert_eq!(r.admit("s", t0 + time::Duration::seconds(62)), Some(0));
    }

    #[test]
    fn memory_stays_bounded() {
        let r = SessionRefusals::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        for i in 0..PRUNE_ABOVE {
            r.admit(&i.to_string(), t0);
        }
        let later = t0 + time::Duration::minutes(2);
        assert_eq!(r.admit("new", later), Some(0));
        assert_eq!(r.sessions.lock().map(|s| s.len()).unwrap_or(0), 1);
    }
}
