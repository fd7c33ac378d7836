//! How much a session may have recorded: a byte limit per record and a byte quota per
//! session, shared by everything that captures content into the ledger for a session — the
//! governor (arguments, tool results) and the model proxy (prompts, completions, intents).
//!
//! The counts are kept in memory, per session, from the gateway's start: a restart gives every
//! session its whole quota again. Fail closed: a lock poisoned by a panic elsewhere still
//! counts (the counts are plain numbers, never half-updated).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Default largest captured content of one record (arguments, a result's content), in bytes.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1024 * 1024;
/// Default largest total captured for one session, in bytes.
pub const DEFAULT_MAX_SESSION_BYTES: u64 = 256 * 1024 * 1024;

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureLimits {
    /// Largest captured content of one record, in bytes.
    pub max_record_bytes: u64,
    /// Largest total captured for one session, in bytes.
    pub max_session_bytes: u64,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        CaptureLimits {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_session_bytes: DEFAULT_MAX_SESSION_BYTES,
        }
    }
}

/// The session's quota does not hold what was to be recorded: nothing was charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the session's recording quota is exhausted: {used} of {limit} bytes used, {wanted} more asked"
)]
pub struct QuotaExhausted {
    /// Bytes the session has used.
    pub used: u64,
    /// The session quota.
    pub limit: u64,
    /// Bytes that were to be charged.
    pub wanted: u64,
}

/// The bytes each session has had recorded, against [`CaptureLimits`].
#[derive(Debug, Default)]
pub struct CaptureQuota {
    limits: CaptureLimits,
    used: Mutex<HashMap<String, u64>>,
}

impl CaptureQuota {
    /// A quota with `limits`, nothing used.
    pub fn new(limits: CaptureLimits) -> CaptureQuota {
        CaptureQuota {
            limits,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// The limits.
    pub fn limits(&self) -> CaptureLimits {
        self.limits
    }

    fn used(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes `session` may still have recorded.
    pub fn remaining(&self, session: &str) -> u64 {
        let used = self.used().get(session).copied().unwrap_or(0);
        self.limits.max_session_bytes.saturating_sub(used)
    }

    /// Charges `bytes` to `session` if they fit in what remains, all or nothing.
    pub fn try_charge(&self, session: &str, bytes: u64) -> Result<(), QuotaExhausted> {
        let mut map = self.used();
        let used = map.get(session).copied().unwrap_or(0);
        let after = used.saturating_add(bytes);
        if after > self.limits.max_session_bytes || used >= self.limits.max_session_bytes {
            return Err(QuotaExhausted {
                used,
                limit: self.limits.max_session_bytes,
                wanted: bytes,
            });
        }
        map.insert(session.to_owned(), after);
        Ok(())
    }

    /// Charges up to `bytes` to `session` and returns how many fit (what may be recorded;
    /// the rest is to be cut off). Once nothing remains, the session's further calls are
    /// refused by [`try_charge`](Self::try_charge).
    pub fn charge_up_to(&self, session: &str, bytes: u64) -> u64 {
        let mut map = self.used();
        let used = map.get(session).copied().unwrap_or(0);
        let granted = bytes.min(self.limits.max_session_bytes.saturating_sub(used));
        map.insert(session.to_owned(), used.saturating_add(granted));
        granted
    }

    /// Charges `bytes` to `session` whatever remains (content already recorded, such as a
    /// model's completion): the quota may end up exceeded, and the session's further calls
    /// are refused.
    pub fn charge(&self, session: &str, bytes: u64) {
        let mut map = self.used();
        let used = map.entry(session.to_owned()).or_insert(0);
        *used = used.saturating_add(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_fit_or_are_refused_and_truncation_takes_what_remains() {
        let q = CaptureQuota::new(CaptureLimits {
            max_record_bytes: 10,
            max_session_bytes: 100,
        });
        q.try_charge("s", 60).unwrap();
        assert_eq!(q.remaining("s"), 40);
        let err = q.try_charge("s", 41).unwrap_err();
        assert_eq!((err.used, err.limit, err.wanted), (60, 100, 41));
        assert_eq!(q.remaining("s"), 40);
        assert_eq!(q.charge_up_to("s", 50), 40);
        assert_eq!(q.remaining("s"), 0);
        assert!(q.try_charge("s", 0).is_err());
        // Other sessions are untouched.
        assert_eq!(q.remaining("t"), 100);
        q.charge("t", 150);
        assert_eq!(q.remaining("t"), 0);
    }
}
