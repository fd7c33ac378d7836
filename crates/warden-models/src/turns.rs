//! The last few model turns of each session, kept in memory for approval requests: an approver
//! sees what the model was asked and what it proposed just before the call they decide on.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;

/// Turns kept per session.
pub const TURNS_PER_SESSION: usize = 5;
/// Sessions kept; past it, the map is cleared (the turns are in the ledger anyway).
const MAX_SESSIONS: usize = 10_000;

/// Recent model turns by session.
#[derive(Debug, Default)]
pub struct ModelTurns {
    inner: Mutex<HashMap<String, VecDeque<Value>>>,
}

impl ModelTurns {
    /// Adds a turn of `session`.
    pub fn push(&self, session: &str, turn: Value) {
        let Ok(mut map) = self.inner.lock() else {
            return;
        };
        if map.len() >= MAX_SESSIONS && !map.contains_key(session) {
            map.clear();
        }
        let turns = map.entry(session.to_owned()).or_default();
        if turns.len() >= TURNS_PER_SESSION {
            turns.pop_front();
        }
        turns.push_back(turn);
    }

    /// The recent turns of `session`, oldest first.
    pub fn recent(&self, session: &str) -> Vec<Value> {
        self.inner
            .lock()
            .ok()
            .and_then(|m| m.get(session).map(|t| t.iter().cloned().collect()))
            .unwrap_or_default()
    }
}
