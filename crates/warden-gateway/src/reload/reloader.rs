//! What a reload keeps between reloads: the lock that lets one run at a time, and what it
//! compares with the start-up.

use std::collections::{BTreeSet, HashMap};
use std::sync::PoisonError;

use time::OffsetDateTime;
use warden_charter::CharterSet;

/// The reload lock and what a reload compares with the start-up: kept in
/// [`AppState::reload`].
#[derive(Debug)]
pub struct Reloader {
    pub(super) lock: tokio::sync::Mutex<()>,
    /// The provider key variables the model proxy read at start-up.
    pub(super) key_variables: BTreeSet<String>,
    /// When each agent's charter in force was put in force.
    loaded_at: std::sync::Mutex<HashMap<String, OffsetDateTime>>,
}

impl Reloader {
    /// The reloader of a gateway that started with the charters of `set` at `now`.
    pub fn new(set: &CharterSet, now: OffsetDateTime) -> Reloader {
        Reloader {
            lock: tokio::sync::Mutex::new(()),
            key_variables: set
                .iter()
                .flat_map(|c| &c.inventory.models)
                .flat_map(|m| &m.routes)
                .filter_map(|r| r.api_key_env.clone())
                .collect(),
            loaded_at: std::sync::Mutex::new(set.agents().map(|a| (a.to_owned(), now)).collect()),
        }
    }

    /// When `agent`'s charter in force was put in force (start-up or its last reload).
    pub fn loaded_at(&self, agent: &str) -> Option<OffsetDateTime> {
        self.loaded_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(agent)
            .copied()
    }

    /// Notes that `agent`'s charter was put in force at `now`.
    pub(super) fn loaded(&self, agent: &str, now: OffsetDateTime) {
        self.loaded_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(agent.to_owned(), now);
    }
}
