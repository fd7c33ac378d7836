//! Decide-API actions that were allowed and whose result the agent has not reported yet:
//! bounded (the oldest is dropped past the bound), and a result is taken only by the session
//! that was allowed the action.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::StatusCode;
use warden_core::gate::Allowed;

/// Allowed actions awaiting their result report, at most this many (the oldest is dropped).
pub const MAX_PENDING_RESULTS: usize = 10_000;
/// An allowed action waiting for its result report.
#[derive(Debug)]
struct AwaitingResult {
    /// The session that was allowed the action (only it may report the result).
    session: String,
    /// The tool.
    tool: String,
    /// The allowance, as the governor gave it.
    allowed: Allowed,
}

/// Allowed decide-API actions whose result has not been reported yet, in arrival order.
#[derive(Debug, Default)]
pub struct PendingResults {
    inner: Mutex<PendingIndex>,
}

/// The actions by id, and their ids in arrival order (to drop the oldest past the bound).
#[derive(Debug, Default)]
struct PendingIndex {
    by_id: HashMap<String, AwaitingResult>,
    arrival: std::collections::VecDeque<String>,
}

impl PendingResults {
    pub(crate) fn insert(&self, session: &str, tool: &str, allowed: Allowed) {
        if let Ok(mut g) = self.inner.lock() {
            let PendingIndex { by_id, arrival } = &mut *g;
            if by_id.len() >= MAX_PENDING_RESULTS
                && let Some(old) = arrival.pop_front()
            {
                by_id.remove(&old);
            }
            arrival.push_back(allowed.action_id.clone());
            by_id.insert(
                allowed.action_id.clone(),
                AwaitingResult {
                    session: session.to_owned(),
                    tool: tool.to_owned(),
                    allowed,
                },
            );
        }
    }

    pub(crate) fn take(&self, id: &str, session: &str) -> Result<(String, Allowed), StatusCode> {
        let mut g = self
            .inner
            .lock()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let PendingIndex { by_id, arrival } = &mut *g;
        match by_id.get(id) {
            None => Err(StatusCode::NOT_FOUND),
            Some(a) if a.session != session => Err(StatusCode::NOT_FOUND),
            Some(_) => {
                arrival.retain(|x| x != id);
                by_id
                    .remove(id)
                    .map(|a| (a.tool, a.allowed))
                    .ok_or(StatusCode::NOT_FOUND)
            }
        }
    }
}
