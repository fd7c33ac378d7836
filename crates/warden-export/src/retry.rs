//! When a failed delivery is tried again: exponential backoff with full jitter (a random
//! delay between zero and the exponential bound, so sinks that failed together do not retry
//! together), a `Retry-After` honoured up to a cap, and a slow retry for a refusal the sink
//! will likely repeat (a 4xx other than 408 and 429). Never given up: the cursor stays where
//! it is and the ledger keeps the records.

use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a delivery failed, and how to retry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What happened, for the log and the `export_lagging` record (never a URL's credentials
    /// or a header value).
    pub reason: String,
    /// Whether the sink refused the batch itself (a 4xx other than 408 and 429): retried
    /// slowly, never skipped.
    pub refused: bool,
    /// The delay the sink asked for (`Retry-After`), if any.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A failure worth retrying soon (a connection error, a timeout, 408, 429, 5xx, a disk
    /// error).
    pub fn transient(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            refused: false,
            retry_after: None,
        }
    }
}

/// The retry delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry's bound (doubled for each further one).
    pub base: Duration,
    /// The largest bound.
    pub cap: Duration,
    /// The delay before retrying a refused batch.
    pub slow: Duration,
    /// The largest `Retry-After` honoured (a larger one waits this long).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            slow: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1 for the first retry) after `failure`.
    pub fn delay(&self, attempt: u32, failure: &Failure) -> Duration {
        if let Some(asked) = failure.retry_after {
            return asked.min(self.max_retry_after);
        }
        if failure.refused {
            // Half the slow delay, plus up to as much again: slow, and still spread out.
            let half = self.slow / 2;
            return half.saturating_add(jitter(half));
        }
        let exp = attempt.saturating_sub(1).min(20);
        let bound = self.base.saturating_mul(1u32 << exp).min(self.cap);
        jitter(bound)
    }
}

/// A random duration in `[0, max]` (full jitter), from the standard library's per-process
/// random hash keys and a counter: unpredictable enough to spread retries, no new crate.
pub fn jitter(max: Duration) -> Duration {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    Duration::from_millis(h.finish() % millis.saturating_add(1))
}

/// A `Retry-After` value in seconds (`120`); the HTTP-date form is not read (the backoff
/// applies instead).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    (!v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse::<u64>().ok().map(Duration::from_secs))
        .flatten()
}

#[cfg(test)]
mod tests;
