//! Routes set aside after a 429, until the time their `Retry-After` named: shared by every
//! call of the proxy, so one call's 429 spares the next calls the wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One route of a model alias: the alias, and the route's position in its list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RouteKey {
    pub(crate) alias: String,
    pub(crate) index: usize,
}

/// Routes kept aside after a 429, until the instant their `Retry-After` named.
#[derive(Debug, Default)]
pub(crate) struct Cooldowns {
    until: Mutex<HashMap<RouteKey, Instant>>,
}

impl Cooldowns {
    /// How long `route` stays aside, if it is still cooling down at `now`.
    pub(crate) fn remaining(&self, route: &RouteKey, now: Instant) -> Option<Duration> {
        self.until
            .lock()
            .ok()
            .and_then(|c| c.get(route).copied())
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Keeps `route` aside until `until`.
    pub(crate) fn hold(&self, route: RouteKey, until: Instant) {
        if let Ok(mut c) = self.until.lock() {
            c.insert(route, until);
        }
    }
}
