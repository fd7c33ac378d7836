//! A change of one request: [`Change`], from [`ApprovalStore::begin`] to [`Change::save`].

use std::sync::atomic::Ordering;

use super::{ApprovalStore, Entry, StoreError, StorePool, postgres, sqlite, stays_in_memory};
use crate::request::ApprovalRequest;

/// A change of one request in progress, from [`ApprovalStore::begin`] until
/// [`Change::save`] (or until dropped, which changes nothing): the request as stored (read
/// under its row lock on PostgreSQL), which the change is computed from. It derefs to that
/// request.
pub struct Change<'a> {
    pub(super) store: &'a ApprovalStore,
    pub(super) entry: &'a Entry,
    pub(super) current: tokio::sync::MutexGuard<'a, ApprovalRequest>,
    /// The transaction holding the row lock (PostgreSQL).
    pub(super) tx: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
    pub(super) saved: bool,
}

impl std::fmt::Debug for Change<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Change")
            .field("id", &self.entry.id)
            .field("saved", &self.saved)
            .finish()
    }
}

impl std::ops::Deref for Change<'_> {
    type Target = ApprovalRequest;

    fn deref(&self) -> &ApprovalRequest {
        &self.current
    }
}

impl Change<'_> {
    /// Writes `next` as the request's new state (on PostgreSQL: written, announced to the
    /// other instances and committed, which releases the row), then makes it current in
    /// memory and announces its status to the calls waiting on it. On a database error
    /// nothing changes (and the row is released). A change saves once.
    pub async fn save(&mut self, next: ApprovalRequest) -> Result<(), StoreError> {
        if self.saved {
            return Err(StoreError::Saved(self.entry.id.clone()));
        }
        let body = serde_json::to_string(&next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let version = match &self.store.pool {
            StorePool::Sqlite(pool) => {
                sqlite::update(pool, &next, body).await?;
                0
            }
            StorePool::Postgres(_) => {
                let Some(mut tx) = self.tx.take() else {
                    return Err(StoreError::Saved(self.entry.id.clone()));
                };
                let version = postgres::update(&mut tx, &next, body).await?;
                tx.commit().await?;
                version
            }
        };
        self.saved = true;
        self.entry.version.store(version, Ordering::SeqCst);
        let status = next.status;
        *self.current = next;
        if !stays_in_memory(status) {
            self.store.forget(self.entry);
        }
        self.entry.status.send_replace(status);
        Ok(())
    }
}
