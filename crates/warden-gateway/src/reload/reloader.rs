//! What a reload keeps between reloads: the lock that lets one run at a time, and what it
//! compares with the start-up.

use std::collections::BTreeSet;
use std::sync::PoisonError;

use time::OffsetDateTime;
use warden_charter::CompiledCharter;

/// The reload lock and what a reload compares with the start-up: kept in
/// [`AppState::reload`].
#[derive(Debug)]
pub struct Reloader {
    pub(super) lock: tokio::sync::Mutex<()>,
    /// The provider key variables the model proxy read at start-up.
    pub(super) key_variables: BTreeSet<String>,
    /// When the charter in force was put in force.
    pub(super) loaded_at: std::sync::Mutex<OffsetDateTime>,
}

impl Reloader {
    /// The reloader of a gateway that started with `charter` at `now`.
    pub fn new(charter: &CompiledCharter, now: OffsetDateTime) -> Reloader {
        Reloader {
            lock: tokio::sync::Mutex::new(()),
            key_variables: charter
                .inventory
                .models
                .iter()
                .flat_map(|m| &m.routes)
                .filter_map(|r| r.api_key_env.clone())
                .collect(),
            loaded_at: std::sync::Mutex::new(now),
        }
    }

    /// When the charter in force was put in force (start-up or the last reload).
    pub fn loaded_at(&self) -> OffsetDateTime {
        *self
            .loaded_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
