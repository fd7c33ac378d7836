//! The last few model turns of each session, for approval requests: an approver sees what the
//! model was asked and what it proposed just before the call they decide on. Kept in memory
//! and, when made with [`ModelTurns::restored`], written through to `state.db`, so that an
//! approval raised after a restart still shows the turns that led to it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;
use warden_session::{StoreError, TurnStore};

/// Turns kept per session.
pub const TURNS_PER_SESSION: usize = 5;
/// Sessions kept; past it, the map is cleared (the turns are in the ledger anyway).
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, VecDeque<Value>>,
    /// Orders the writes to the store (see [`TurnStore::save`]).
    seq: i64,
}

/// Recent model turns by session.
#[derive(Debug, Default)]
pub struct ModelTurns {
    inner: Mutex<Inner>,
    store: Option<TurnStore>,
}

impl ModelTurns {
    /// Turns written through to `store`, starting with those it kept (the most recently
    /// written [`MAX_SESSIONS`]).
    pub fn restored(store: TurnStore, stored: warden_session::StoredTurns) -> ModelTurns {
        let sessions = stored
            .sessions
            .into_iter()
            .take(MAX_SESSIONS)
            .map(|(session, turns)| {
                let skip = turns.len().saturating_sub(TURNS_PER_SESSION);
                (session, turns.into_iter().skip(skip).collect())
            })
            .collect();
        ModelTurns {
            inner: Mutex::new(Inner {
                sessions,
                seq: stored.last_seq,
            }),
            store: Some(store),
        }
    }

    /// Adds a turn of `session` (and writes the session's turns through, when there is a
    /// store). A turn that cannot be written is kept in memory, with a warning.
    pub async fn push(&self, session: &str, turn: Value) {
        let snapshot = {
            let Ok(mut inner) = self.inner.lock() else {
                return;
            };
            if inner.sessions.len() >= MAX_SESSIONS && !inner.sessions.contains_key(session) {
                inner.sessions.clear();
            }
            let turns = inner.sessions.entry(session.to_owned()).or_default();
            if turns.len() >= TURNS_PER_SESSION {
                turns.pop_front();
            }
            turns.push_back(turn);
            let turns: Vec<Value> = turns.iter().cloned().collect();
            inner.seq = inner.seq.saturating_add(1);
            (turns, inner.seq)
        };
        if let Some(store) = &self.store
            && let Err(e) = store.save(session, &snapshot.0, snapshot.1).await
        {
            warn_unsaved(&e);
        }
    }

    /// The recent turns of `session`, oldest first.
    pub fn recent(&self, session: &str) -> Vec<Value> {
        self.inner
            .lock()
            .ok()
            .and_then(|m| m.sessions.get(session).map(|t| t.iter().cloned().collect()))
            .unwrap_or_default()
    }
}

fn warn_unsaved(e: &StoreError) {
    tracing::warn!(error = %e, "A model turn could not be written to the state store; it is kept in memory only.");
}
