//! Approval requests in the state store.
//!
//! Each request is a row of `approvals` in `state.db` (its status and deadline as columns, the
//! whole request as JSON), written through on every change, so pending requests survive a
//! restart and stay decidable after one. In memory, the store keeps the requests that can
//! still matter — open ones, and denied ones until their deadline (a retry of a denied action
//! is answered with the denial) — indexed by id and by action hash, each with a watch channel
//! that wakes the calls waiting on it.
//!
//! Changes go through [`Entry::lock`] and [`ApprovalStore::save`]: the caller locks the
//! request, computes the next state with the pure transitions of
//! [`machine`](crate::machine), records it in the ledger, then saves it. Nothing changes in
//! memory unless the row was written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::request::{ActionHash, ApprovalRequest, Earlier, MAX_EARLIER, Status};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("approval store: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored request could not be read back.
    #[error("approval store: corrupt request `{0}`")]
    Corrupt(String),
    /// A lock was poisoned by a panic elsewhere.
    #[error("approval store: a lock was poisoned")]
    Poisoned,
    /// An open request for the same action exists already.
    #[error("approval store: an open request for this action exists already")]
    Duplicate,
}

/// One request in memory: its state behind an async lock, and a channel announcing its status.
#[derive(Debug)]
pub struct Entry {
    id: String,
    hash: ActionHash,
    deadline: OffsetDateTime,
    request: tokio::sync::Mutex<ApprovalRequest>,
    status: watch::Sender<Status>,
}

impl Entry {
    fn new(req: ApprovalRequest) -> Arc<Entry> {
        let (status, _) = watch::channel(req.status);
        Arc::new(Entry {
            id: req.id.clone(),
            hash: req.action_hash.clone(),
            deadline: req.deadline,
            request: tokio::sync::Mutex::new(req),
            status,
        })
    }

    /// The request id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The action hash.
    pub fn hash(&self) -> &ActionHash {
        &self.hash
    }

    /// The deadline.
    pub fn deadline(&self) -> OffsetDateTime {
        self.deadline
    }

    /// The current status.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// A receiver that sees every status change.
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Locks the request for a change (or a consistent read).
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ApprovalRequest> {
        self.request.lock().await
    }
}

#[derive(Debug, Default)]
struct Index {
    by_id: HashMap<String, Arc<Entry>>,
    by_hash: HashMap<ActionHash, Arc<Entry>>,
}

/// The approval store.
#[derive(Debug, Clone)]
pub struct ApprovalStore {
    pool: SqlitePool,
    index: Arc<Mutex<Index>>,
}

/// Whether a request in `status` stays in memory: open ones, and denials (a retry of the same
/// action gets the denial until the deadline).
fn stays_in_memory(status: Status) -> bool {
    matches!(status, Status::Pending | Status::Granted | Status::Denied)
}

impl ApprovalStore {
    /// Opens the store over the state database's pool (creating the table), and loads the
    /// requests that can still matter at `now`.
    pub async fn open(pool: SqlitePool, now: OffsetDateTime) -> Result<ApprovalStore, StoreError> {
        for stmt in [
            "CREATE TABLE IF NOT EXISTS approvals (id TEXT PRIMARY KEY, action_hash TEXT NOT NULL, status TEXT NOT NULL, requested_at TEXT NOT NULL, deadline TEXT NOT NULL, body TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, requested_at)",
        ] {
            sqlx::query(stmt).execute(&pool).await?;
        }
        let store = ApprovalStore {
            pool,
            index: Arc::default(),
        };
        let rows = sqlx::query(
            "SELECT id, body FROM approvals WHERE status IN ('pending', 'granted') OR (status = 'denied' AND deadline > ?) ORDER BY id",
        )
        .bind(warden_core::text::rfc3339(now))
        .fetch_all(&store.pool)
        .await?;
        let mut index = store.index.lock().map_err(|_| StoreError::Poisoned)?;
        for row in rows {
            let req = decode(&row)?;
            let entry = Entry::new(req);
            index.by_hash.insert(entry.hash.clone(), entry.clone());
            index.by_id.insert(entry.id.clone(), entry);
        }
        drop(index);
        Ok(store)
    }

    /// Stores a new pending request. Refused when an open request for the same action exists
    /// (the caller joins that one instead). The check and the reservation are one step, so
    /// two identical calls arriving together raise one request.
    pub async fn create(&self, req: ApprovalRequest) -> Result<Arc<Entry>, StoreError> {
        let body = serde_json::to_string(&req).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let entry = Entry::new(req.clone());
        {
            let mut index = self.index.lock().map_err(|_| StoreError::Poisoned)?;
            if index
                .by_hash
                .get(&req.action_hash)
                .is_some_and(|e| e.status().is_open())
            {
                return Err(StoreError::Duplicate);
            }
            index.by_hash.insert(entry.hash.clone(), entry.clone());
            index.by_id.insert(entry.id.clone(), entry.clone());
        }
        let inserted = sqlx::query("INSERT INTO approvals (id, action_hash, status, requested_at, deadline, body) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&req.id)
            .bind(req.action_hash.as_str())
            .bind(req.status.as_str())
            .bind(warden_core::text::rfc3339(req.requested_at))
            .bind(warden_core::text::rfc3339(req.deadline))
            .bind(body)
            .execute(&self.pool)
            .await;
        if let Err(e) = inserted {
            // Not stored: nothing may wait on it. Anyone who joined in the meantime is told it
            // ended (fail closed).
            self.forget(&entry);
            entry.status.send_replace(Status::TimedOut);
            return Err(e.into());
        }
        Ok(entry)
    }

    /// The request in memory for this action (open, or denied before its deadline).
    pub fn by_hash(&self, hash: &ActionHash) -> Option<Arc<Entry>> {
        self.index.lock().ok()?.by_hash.get(hash).cloned()
    }

    /// A request in memory, by id.
    pub fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.index.lock().ok()?.by_id.get(id).cloned()
    }

    /// A request by id: from memory, or the database.
    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRequest>, StoreError> {
        if let Some(entry) = self.entry(id) {
            return Ok(Some(entry.lock().await.clone()));
        }
        let row = sqlx::query("SELECT id, body FROM approvals WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(&r)).transpose()
    }

    /// Requests, newest first, at most `limit`; only those in `status` when given.
    pub async fn list(
        &self,
        status: Option<Status>,
        limit: u32,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let rows = match status {
            Some(s) => {
                sqlx::query(
                    "SELECT id, body FROM approvals WHERE status = ? ORDER BY id DESC LIMIT ?",
                )
                .bind(s.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query("SELECT id, body FROM approvals ORDER BY id DESC LIMIT ?")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(decode).collect()
    }

    /// The earlier refusals of the action `hash` (which binds the session): requests that
    /// were denied or timed out, newest first, at most [`MAX_EARLIER`]. A request whose body
    /// cannot be read is listed with its request time (its row's status is authoritative).
    pub async fn earlier(&self, hash: &ActionHash) -> Result<Vec<Earlier>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, status, requested_at, body FROM approvals WHERE action_hash = ? AND status IN ('denied', 'timed_out') ORDER BY id DESC LIMIT ?",
        )
        .bind(hash.as_str())
        .bind(i64::try_from(MAX_EARLIER).unwrap_or(8))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let Some(status) = Status::parse(&status) else {
                return Err(StoreError::Corrupt(id));
            };
            let at = match decode(&row) {
                Ok(req) => req.decided_at.unwrap_or(req.requested_at),
                Err(_) => {
                    let requested: String = row.try_get("requested_at")?;
                    warden_core::text::parse_rfc3339(&requested)
                        .ok_or_else(|| StoreError::Corrupt(id.clone()))?
                }
            };
            out.push(Earlier { id, status, at });
        }
        Ok(out)
    }

    /// Writes `next` as the new state of the locked request `current` (of `entry`), then makes
    /// it current and announces its status. On a database error nothing changes.
    pub async fn save(
        &self,
        entry: &Entry,
        current: &mut ApprovalRequest,
        next: ApprovalRequest,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(&next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE approvals SET status = ?, body = ? WHERE id = ?")
            .bind(next.status.as_str())
            .bind(body)
            .bind(&next.id)
            .execute(&self.pool)
            .await?;
        let status = next.status;
        *current = next;
        if !stays_in_memory(status) {
            self.forget(entry);
        }
        entry.status.send_replace(status);
        Ok(())
    }

    /// Drops a request from memory (it stays in the database).
    pub fn forget(&self, entry: &Entry) {
        if let Ok(mut index) = self.index.lock() {
            index.by_id.remove(&entry.id);
            if index
                .by_hash
                .get(&entry.hash)
                .is_some_and(|e| e.id == entry.id)
            {
                index.by_hash.remove(&entry.hash);
            }
        }
    }

    /// Requests in memory whose deadline has passed at `now`: open ones to time out, denied
    /// ones to forget.
    pub fn due(&self, now: OffsetDateTime) -> Vec<Arc<Entry>> {
        self.index
            .lock()
            .map(|index| {
                index
                    .by_id
                    .values()
                    .filter(|e| e.deadline <= now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The open requests in memory (pending, or granted and not yet used), oldest first.
    pub fn open_entries(&self) -> Vec<Arc<Entry>> {
        let mut open: Vec<Arc<Entry>> = self
            .index
            .lock()
            .map(|index| {
                index
                    .by_id
                    .values()
                    .filter(|e| e.status().is_open())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        open.sort_by(|a, b| a.id.cmp(&b.id));
        open
    }

    /// How many requests are open (pending or granted).
    pub fn open_count(&self) -> usize {
        self.index
            .lock()
            .map(|index| {
                index
                    .by_id
                    .values()
                    .filter(|e| e.status().is_open())
                    .count()
            })
            .unwrap_or(0)
    }
}

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<ApprovalRequest, StoreError> {
    let id: String = row.try_get("id")?;
    let body: String = row.try_get("body")?;
    serde_json::from_str(&body).map_err(|_| StoreError::Corrupt(id))
}

#[cfg(test)]
mod tests;
