//! The last few model turns of each session, for approval requests: an approver sees what the
//! model was asked and what it proposed just before the call they decide on. Kept in memory
//! and, when made with [`ModelTurns::restored`], written behind to `state.db`, so that an
//! approval raised after a restart still shows the turns that led to it.
//!
//! Written behind, off the answer's path: [`ModelTurns::push`] keeps the turn in memory (what
//! approval requests read) and marks the session's turns unsaved; [`ModelTurns::write_behind`]
//! writes what is unsaved, the latest turns of each session, in one transaction, at most every
//! [`WRITE_EVERY`], and once more when it is stopped (the gateway's last shutdown phase). A
//! model answer never waits for `state.db`: the ledger's record of the completion is what it
//! waits for. What a crash can lose: the turns of the last [`WRITE_EVERY`] (an approval raised
//! after the restart shows the turns before them; the ledger holds every model call). Unsaved
//! turns are bounded like the kept ones (one snapshot per session, 10,000 sessions).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use warden_session::{StoreError, TurnStore};

/// Turns kept per session.
pub const TURNS_PER_SESSION: usize = 5;
/// Sessions kept; past it, the map is cleared (the turns are in the ledger anyway).
const MAX_SESSIONS: usize = 10_000;
/// The shortest time between two writes of unsaved turns to the store.
pub const WRITE_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, VecDeque<Value>>,
    /// Orders the writes to the store (see [`TurnStore::save`]).
    seq: i64,
    /// The turns of each session not written to the store yet, with their `seq` (only with a
    /// store); the latest snapshot of a session replaces an older one.
    unsaved: HashMap<String, (Vec<Value>, i64)>,
}

/// Recent model turns by session.
#[derive(Debug, Default)]
pub struct ModelTurns {
    inner: Mutex<Inner>,
    store: Option<TurnStore>,
    /// Wakes [`ModelTurns::write_behind`] when a turn is unsaved.
    unsaved: tokio::sync::Notify,
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
                unsaved: HashMap::new(),
            }),
            store: Some(store),
            unsaved: tokio::sync::Notify::new(),
        }
    }

    /// Adds a turn of `session`; with a store, the session's turns are written behind (see
    /// the module's documentation). Never waits for the store.
    pub fn push(&self, session: &str, turn: Value) {
        {
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
            if self.store.is_none() {
                return;
            }
            let turns: Vec<Value> = turns.iter().cloned().collect();
            inner.seq = inner.seq.saturating_add(1);
            let seq = inner.seq;
            if inner.unsaved.len() >= MAX_SESSIONS && !inner.unsaved.contains_key(session) {
                // Past the bound (the writer cannot keep up): the oldest snapshots are dropped,
                // as the kept ones are; they stay in memory.
                inner.unsaved.clear();
                tracing::warn!(
                    "Model turns waiting to be written to the state store were dropped; they are kept in memory only."
                );
            }
            inner.unsaved.insert(session.to_owned(), (turns, seq));
        }
        self.unsaved.notify_one();
    }

    /// Writes unsaved turns to the store, in one transaction, at most every [`WRITE_EVERY`],
    /// until `stop` is cancelled; then writes what is left and returns. Turns that cannot be
    /// written are kept in memory only, with a warning. Returns at once without a store.
    pub async fn write_behind(&self, stop: CancellationToken) {
        let Some(store) = &self.store else {
            return;
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.unsaved.notified() => {}
            }
            self.write_unsaved(store).await;
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(WRITE_EVERY) => {}
            }
        }
        self.write_unsaved(store).await;
    }

    async fn write_unsaved(&self, store: &TurnStore) {
        let unsaved: Vec<(String, Vec<Value>, i64)> = match self.inner.lock() {
            Ok(mut inner) => inner
                .unsaved
                .drain()
                .map(|(session, (turns, seq))| (session, turns, seq))
                .collect(),
            Err(_) => return,
        };
        if !unsaved.is_empty()
            && let Err(e) = store.save_many(&unsaved).await
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
