//! Forwarded actions whose result is not recorded yet, so that every forwarded action ends in
//! the ledger: a result that does not come back in time (the MCP client went away and its call
//! was cut off, a decide-API agent never reported it) or that is cut off by shutdown is
//! recorded as an `action_result` with status `unknown` and the reason.
//!
//! Bounded: past [`MAX_OUTSTANDING`] the oldest is recorded as `unknown` at once and dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_core::gate::Via;
use warden_core::{NewRecord, RecordKind};

/// Most forwarded actions awaiting their result at once.
pub const MAX_OUTSTANDING: usize = 100_000;

/// A forwarded action awaiting its result.
#[derive(Debug, Clone)]
pub struct OutstandingAction {
    /// The action id.
    pub action_id: String,
    /// Its session.
    pub session: String,
    /// The tool.
    pub tool: String,
    /// When its result is overdue.
    pub due: Instant,
}

impl OutstandingAction {
    /// The `action_result` recorded for it when its result never came: status `unknown`.
    pub fn unknown_result(&self, reason: &str) -> NewRecord {
        NewRecord::new(
            Some(&self.session),
            RecordKind::ActionResult,
            json!({
                "action": self.action_id,
                "tool": self.tool,
                "status": "unknown",
                "reason": reason,
            }),
        )
    }
}

/// How long after forwarding each kind of action may take to report its result.
#[derive(Debug, Clone, Copy)]
pub struct ResultDeadlines {
    /// MCP calls: the gateway forwards them itself, within the upstream timeout; past it (plus
    /// a little), the call was cut off.
    pub mcp: Duration,
    /// Decide-API actions: the agent runs them and reports the result.
    pub decide_api: Duration,
}

#[derive(Debug, Default)]
struct Index {
    by_id: HashMap<String, OutstandingAction>,
    /// Ids by due time, to find the overdue ones and the oldest.
    by_due: BTreeMap<(Instant, String), ()>,
}

/// The forwarded actions awaiting their result.
#[derive(Debug)]
pub struct OutstandingActions {
    deadlines: ResultDeadlines,
    index: Mutex<Index>,
}

impl OutstandingActions {
    /// An empty set with these deadlines.
    pub fn new(deadlines: ResultDeadlines) -> OutstandingActions {
        OutstandingActions {
            deadlines,
            index: Mutex::new(Index::default()),
        }
    }

    /// Tracks a forwarded action; returns the one evicted to stay within [`MAX_OUTSTANDING`],
    /// whose result the caller records as `unknown`.
    pub fn insert(
        &self,
        action_id: &str,
        session: &str,
        tool: &str,
        via: Via,
    ) -> Option<OutstandingAction> {
        let wait = match via {
            Via::Mcp => self.deadlines.mcp,
            Via::DecideApi => self.deadlines.decide_api,
        };
        let now = Instant::now();
        let due = now.checked_add(wait).unwrap_or(now);
        let action = OutstandingAction {
            action_id: action_id.to_owned(),
            session: session.to_owned(),
            tool: tool.to_owned(),
            due,
        };
        // A poisoned lock tracks nothing more; the sweeper and shutdown still record what it
        // holds. (Recording `unknown` is the fallback, never an allow.)
        let mut index = self.index.lock().ok()?;
        let evicted = if index.by_id.len() >= MAX_OUTSTANDING {
            let oldest = index.by_due.keys().next().cloned();
            oldest.and_then(|key| {
                index.by_due.remove(&key);
                index.by_id.remove(&key.1)
            })
        } else {
            None
        };
        index.by_due.insert((due, action.action_id.clone()), ());
        index.by_id.insert(action.action_id.clone(), action);
        evicted
    }

    /// Stops tracking an action whose result was recorded. `false` when it was not tracked
    /// (already recorded as `unknown`, or never forwarded).
    pub fn remove(&self, action_id: &str) -> bool {
        let Ok(mut index) = self.index.lock() else {
            return false;
        };
        match index.by_id.remove(action_id) {
            Some(a) => {
                index.by_due.remove(&(a.due, a.action_id));
                true
            }
            None => false,
        }
    }

    /// Takes the actions overdue at `now`.
    pub fn take_overdue(&self, now: Instant) -> Vec<OutstandingAction> {
        let Ok(mut index) = self.index.lock() else {
            return Vec::new();
        };
        let due: Vec<(Instant, String)> = index
            .by_due
            .keys()
            .take_while(|(due, _)| *due <= now)
            .cloned()
            .collect();
        due.into_iter()
            .filter_map(|key| {
                index.by_due.remove(&key);
                index.by_id.remove(&key.1)
            })
            .collect()
    }

    /// Takes every tracked action (at shutdown).
    pub fn take_all(&self) -> Vec<OutstandingAction> {
        let Ok(mut index) = self.index.lock() else {
            return Vec::new();
        };
        index.by_due.clear();
        index.by_id.drain().map(|(_, a)| a).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(mcp: u64, decide: u64) -> OutstandingActions {
        OutstandingActions::new(ResultDeadlines {
            mcp: Duration::from_secs(mcp),
            decide_api: Duration::from_secs(decide),
        })
    }

    #[test]
    fn an_action_is_overdue_after_its_deadline_and_not_before() {
        let s = set(10, 100);
        assert!(s.insert("a", "s", "t", Via::Mcp).is_none());
        assert!(s.insert("b", "s", "t", Via::DecideApi).is_none());
        let now = Instant::now();
        assert!(s.take_overdue(now).is_empty());
        let overdue = s.take_overdue(now + Duration::from_secs(11));
        assert_eq!(overdue.len(), 1);
        assert_eq!(overdue[0].action_id, "a");
        assert!(!s.remove("a"), "an overdue action is no longer tracked");
        assert!(s.remove("b"));
        assert!(s.take_all().is_empty());
    }

    #[test]
    fn shutdown_takes_everything_and_records_it_as_unknown() {
        let s = set(10, 100);
        s.insert("a", "s1", "echo.echo", Via::Mcp);
        let all = s.take_all();
        assert_eq!(all.len(), 1);
        let record = all[0].unknown_result("the gateway stopped");
        assert_eq!(record.kind, RecordKind::ActionResult);
        assert_eq!(record.session.as_deref(), Some("s1"));
        assert_eq!(record.payload["status"], "unknown");
        assert_eq!(record.payload["reason"], "the gateway stopped");
    }
}
