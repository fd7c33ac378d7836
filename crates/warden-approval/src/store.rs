//! Approval requests in the state store.
//!
//! Each request is a row of `approvals` (its status and deadline as columns, the whole request
//! as JSON), written through on every change, so pending requests survive a restart and stay
//! decidable after one. The rows live in `state.db` ([`sqlite`]: one instance) or in the
//! fleet's PostgreSQL database ([`postgres`]: every instance reads and changes the same rows).
//! In memory, the store keeps the requests that can still matter — open ones, and denied ones
//! until their deadline (a retry of a denied action is answered with the denial) — indexed by
//! id and by action hash, each with a watch channel that wakes the calls waiting on it.
//!
//! Changes go through [`ApprovalStore::begin`] and [`Change::save`]: the caller takes the
//! request (its lock in memory and, on PostgreSQL, its row locked in a transaction, the
//! request re-read from the row, since another instance may have changed it), computes the
//! next state with the pure transitions of [`machine`](crate::machine) from what it took,
//! records it in the ledger, then saves it (on PostgreSQL: written, announced and committed
//! in that transaction). Nothing changes in memory unless the row was written.
//!
//! On PostgreSQL, what other instances change reaches this one through
//! [`ApprovalStore::refresh`] (a notification for one request) and
//! [`ApprovalStore::reconcile`] (the poll), which bring the requests in memory up to date and
//! load the ones other instances raised, waking the calls waiting on them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::{PgPool, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::request::{ActionHash, ApprovalRequest, Earlier, Status};

mod change;
mod postgres;
mod sqlite;

pub use change::Change;
pub use postgres::NOTIFY_CHANNEL;

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
    /// The request is not in the store (its row is gone).
    #[error("approval store: request `{0}` is not in the store")]
    Missing(String),
    /// A change was saved already (each [`Change`] saves once).
    #[error("approval store: this change of request `{0}` was saved already")]
    Saved(String),
}

/// The database the requests live in.
#[derive(Debug, Clone)]
pub enum StorePool {
    /// `state.db` (one instance).
    Sqlite(SqlitePool),
    /// The fleet's PostgreSQL database, already migrated (its schema has the `approvals`
    /// table).
    Postgres(PgPool),
}

impl From<SqlitePool> for StorePool {
    fn from(pool: SqlitePool) -> StorePool {
        StorePool::Sqlite(pool)
    }
}

impl From<PgPool> for StorePool {
    fn from(pool: PgPool) -> StorePool {
        StorePool::Postgres(pool)
    }
}

/// One request in memory: its state behind an async lock, and a channel announcing its status.
#[derive(Debug)]
pub struct Entry {
    id: String,
    hash: ActionHash,
    deadline: OffsetDateTime,
    request: tokio::sync::Mutex<ApprovalRequest>,
    status: watch::Sender<Status>,
    /// The stored row's version this state is (PostgreSQL; 0 on SQLite).
    version: AtomicI64,
}

impl Entry {
    fn new(req: ApprovalRequest, version: i64) -> Arc<Entry> {
        let (status, _) = watch::channel(req.status);
        Arc::new(Entry {
            id: req.id.clone(),
            hash: req.action_hash.clone(),
            deadline: req.deadline,
            request: tokio::sync::Mutex::new(req),
            status,
            version: AtomicI64::new(version),
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

    /// Locks the request for a consistent read of what this instance knows (a change goes
    /// through [`ApprovalStore::begin`]).
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ApprovalRequest> {
        self.request.lock().await
    }
}

/// A request looked up by id for a decision ([`ApprovalStore::load`]).
#[derive(Debug)]
pub enum Loaded {
    /// It can still be decided: its entry in memory.
    Live(Arc<Entry>),
    /// It is stored, and decided (or past its deadline): what it is.
    Gone(Box<ApprovalRequest>),
}

#[derive(Debug, Default)]
struct Index {
    by_id: HashMap<String, Arc<Entry>>,
    by_hash: HashMap<ActionHash, Arc<Entry>>,
}

/// The approval store.
#[derive(Debug, Clone)]
pub struct ApprovalStore {
    pool: StorePool,
    index: Arc<Mutex<Index>>,
    /// Counts the requests that became known here (created on this instance, or loaded from
    /// another's): a page listing open requests refreshes on it, since a new request is stored
    /// after its `approval_requested` record has moved the ledger's head.
    arrivals: Arc<watch::Sender<u64>>,
}

/// Whether a request in `status` stays in memory: open ones, and denials (a retry of the same
/// action gets the denial until the deadline).
fn stays_in_memory(status: Status) -> bool {
    matches!(status, Status::Pending | Status::Granted | Status::Denied)
}

/// Whether a stored request can still matter at `now` (and is held in memory).
fn live_at(req: &ApprovalRequest, now: OffsetDateTime) -> bool {
    req.status.is_open() || (req.status == Status::Denied && req.deadline > now)
}

impl ApprovalStore {
    /// Opens the store over the state database's pool (on SQLite creating the table; on
    /// PostgreSQL the shared schema has it), and loads the requests that can still matter at
    /// `now`.
    pub async fn open(
        pool: impl Into<StorePool>,
        now: OffsetDateTime,
    ) -> Result<ApprovalStore, StoreError> {
        let pool = pool.into();
        let live: Vec<(ApprovalRequest, i64)> = match &pool {
            StorePool::Sqlite(p) => {
                sqlite::create_tables(p).await?;
                sqlite::load_live(p, now)
                    .await?
                    .into_iter()
                    .map(|r| (r, 0))
                    .collect()
            }
            StorePool::Postgres(p) => postgres::load_live(p, now).await?,
        };
        let store = ApprovalStore {
            pool,
            index: Arc::default(),
            arrivals: Arc::new(watch::channel(0).0),
        };
        let mut index = store.index.lock().map_err(|_| StoreError::Poisoned)?;
        for (req, version) in live {
            let entry = Entry::new(req, version);
            index.by_hash.insert(entry.hash.clone(), entry.clone());
            index.by_id.insert(entry.id.clone(), entry);
        }
        drop(index);
        Ok(store)
    }

    /// A watch that changes whenever a request becomes known here: stored by
    /// [`create`](Self::create), or loaded from the shared store (raised by another
    /// instance). Its value counts them; what changed is read from the store.
    pub fn watch_arrivals(&self) -> watch::Receiver<u64> {
        self.arrivals.subscribe()
    }

    fn arrived(&self) {
        self.arrivals.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether the requests are shared with other instances (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.pool, StorePool::Postgres(_))
    }

    /// Stores a new pending request. Refused ([`StoreError::Duplicate`]) when an open request
    /// for the same action exists (the caller joins that one instead, found by
    /// [`by_hash`](Self::by_hash)). The check and the reservation are one step, so two
    /// identical calls arriving together raise one request; on PostgreSQL this holds across
    /// the fleet (an open request, or a denial before its deadline, raised by another instance
    /// is loaded into memory and answered as a duplicate).
    pub async fn create(&self, req: ApprovalRequest) -> Result<Arc<Entry>, StoreError> {
        let body = serde_json::to_string(&req).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // On PostgreSQL an open request held for this action may have been decided, used or
        // timed out on another instance a moment ago: brought up to date before it counts.
        if self.is_shared()
            && let Some(held) = self.by_hash(&req.action_hash)
            && held.status().is_open()
        {
            self.refresh(held.id(), req.requested_at).await?;
        }
        let entry = Entry::new(req.clone(), 1);
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
        let inserted = match &self.pool {
            StorePool::Sqlite(pool) => sqlite::insert(pool, &req, body).await.map(|()| None),
            StorePool::Postgres(pool) => postgres::insert(pool, &req, body).await,
        };
        match inserted {
            Ok(None) => {
                self.arrived();
                Ok(entry)
            }
            Ok(Some((existing, version))) => {
                // Another instance's request for this action: this one is not stored. Anyone
                // who joined it in the meantime is told it ended (fail closed); the next call
                // joins the stored one.
                self.forget(&entry);
                entry.status.send_replace(Status::TimedOut);
                self.intern(existing, version).await?;
                Err(StoreError::Duplicate)
            }
            Err(e) => {
                // Not stored: nothing may wait on it. Anyone who joined in the meantime is
                // told it ended (fail closed).
                self.forget(&entry);
                entry.status.send_replace(Status::TimedOut);
                Err(e)
            }
        }
    }

    /// The request in memory for this action (open, or denied before its deadline).
    pub fn by_hash(&self, hash: &ActionHash) -> Option<Arc<Entry>> {
        self.index.lock().ok()?.by_hash.get(hash).cloned()
    }

    /// A request in memory, by id.
    pub fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.index.lock().ok()?.by_id.get(id).cloned()
    }

    /// A request by id for a decision at `now`: its entry in memory; on PostgreSQL, one
    /// another instance raised is loaded from the store into memory if it can still be
    /// decided. `Gone` for a stored request that cannot; `None` for an unknown id.
    pub async fn load(&self, id: &str, now: OffsetDateTime) -> Result<Option<Loaded>, StoreError> {
        if !plausible_id(id) {
            return Ok(None);
        }
        if let Some(entry) = self.entry(id) {
            return Ok(Some(Loaded::Live(entry)));
        }
        match &self.pool {
            // Memory holds every request that can still be decided.
            StorePool::Sqlite(pool) => Ok(sqlite::get(pool, id)
                .await?
                .map(|r| Loaded::Gone(Box::new(r)))),
            StorePool::Postgres(pool) => match postgres::get(pool, id).await? {
                None => Ok(None),
                Some((req, version)) if live_at(&req, now) => {
                    Ok(Some(Loaded::Live(self.intern(req, version).await?)))
                }
                Some((req, _)) => Ok(Some(Loaded::Gone(Box::new(req)))),
            },
        }
    }

    /// A request by id: on SQLite from memory, or the database; on PostgreSQL from the
    /// store (what every instance committed).
    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRequest>, StoreError> {
        if !plausible_id(id) {
            return Ok(None);
        }
        match &self.pool {
            StorePool::Sqlite(pool) => {
                if let Some(entry) = self.entry(id) {
                    return Ok(Some(entry.lock().await.clone()));
                }
                sqlite::get(pool, id).await
            }
            StorePool::Postgres(pool) => Ok(postgres::get(pool, id).await?.map(|(r, _)| r)),
        }
    }

    /// Requests, newest first, at most `limit`; only those in `status` when given.
    pub async fn list(
        &self,
        status: Option<Status>,
        limit: u32,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        match &self.pool {
            StorePool::Sqlite(pool) => sqlite::list(pool, status, limit).await,
            StorePool::Postgres(pool) => postgres::list(pool, status, limit).await,
        }
    }

    /// The earlier refusals of the action `hash` (which binds the session): requests that
    /// were denied or timed out, newest first, at most
    /// [`MAX_EARLIER`](crate::request::MAX_EARLIER). A request whose body cannot be read is
    /// listed with its request time (its row's status is authoritative).
    pub async fn earlier(&self, hash: &ActionHash) -> Result<Vec<Earlier>, StoreError> {
        match &self.pool {
            StorePool::Sqlite(pool) => sqlite::earlier(pool, hash).await,
            StorePool::Postgres(pool) => postgres::earlier(pool, hash).await,
        }
    }

    /// Takes the request of `entry` for a change: its lock in memory (so changes on this
    /// instance happen one after the other) and, on PostgreSQL, its row locked in a new
    /// transaction and re-read (so changes on every instance happen one after the other, each
    /// computed from the last): if another instance changed it, the entry is brought up to
    /// date first (waking the calls waiting on it). An error (the store unreachable, the row
    /// gone, which also drops it from memory) takes nothing: the caller must not change the
    /// request.
    pub async fn begin<'a>(&'a self, entry: &'a Entry) -> Result<Change<'a>, StoreError> {
        let mut current = entry.request.lock().await;
        let tx = match &self.pool {
            StorePool::Sqlite(_) => None,
            StorePool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let Some((stored, version)) = postgres::lock(&mut tx, &entry.id).await? else {
                    // Its row is gone (removed by hand): nothing can decide it any more; the
                    // calls waiting on it end at its deadline.
                    self.forget(entry);
                    return Err(StoreError::Missing(entry.id.clone()));
                };
                if version != entry.version.load(Ordering::SeqCst) {
                    self.set(entry, &mut current, stored, version);
                }
                Some(tx)
            }
        };
        Ok(Change {
            store: self,
            entry,
            current,
            tx,
            saved: false,
        })
    }

    /// Brings request `id` up to date from the store, if this instance holds it or it can
    /// still matter at `now` (PostgreSQL: another instance announced a change of it; nothing
    /// on SQLite). Returns whether anything changed in memory.
    pub async fn refresh(&self, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let StorePool::Postgres(pool) = &self.pool else {
            return Ok(false);
        };
        if !plausible_id(id) {
            return Ok(false);
        }
        match postgres::get(pool, id).await? {
            Some((req, version)) => self.apply(req, version, now).await,
            None => Ok(false),
        }
    }

    /// Brings every request in memory up to date from the store, and loads the requests
    /// other instances raised that can still matter at `now` (PostgreSQL: the poll, which
    /// catches what notifications missed; nothing on SQLite). Returns how many requests
    /// changed in memory.
    pub async fn reconcile(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let StorePool::Postgres(pool) = &self.pool else {
            return Ok(0);
        };
        let held: HashMap<String, i64> = self
            .index
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .by_id
            .values()
            .map(|e| (e.id.clone(), e.version.load(Ordering::SeqCst)))
            .collect();
        let ids: Vec<String> = held.keys().cloned().collect();
        let stale: Vec<String> = postgres::versions(pool, &ids, now)
            .await?
            .into_iter()
            .filter(|(id, version)| held.get(id) != Some(version))
            .map(|(id, _)| id)
            .collect();
        let mut changed = 0;
        for chunk in stale.chunks(500) {
            for (req, version) in postgres::get_many(pool, chunk).await? {
                if self.apply(req, version, now).await? {
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }

    /// Applies a stored request (at row `version`) to memory: the entry held is updated if
    /// the row is newer; a request not held is loaded if it can still matter at `now`.
    async fn apply(
        &self,
        req: ApprovalRequest,
        version: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if let Some(entry) = self.entry(&req.id) {
            let mut current = entry.request.lock().await;
            if version > entry.version.load(Ordering::SeqCst) {
                self.set(&entry, &mut current, req, version);
                return Ok(true);
            }
            return Ok(false);
        }
        if !live_at(&req, now) {
            return Ok(false);
        }
        self.intern(req, version).await?;
        Ok(true)
    }

    /// The entry of a stored request (at row `version`), made and indexed if this instance
    /// holds none, else the one held, brought up to date.
    async fn intern(&self, req: ApprovalRequest, version: i64) -> Result<Arc<Entry>, StoreError> {
        let held = {
            let mut index = self.index.lock().map_err(|_| StoreError::Poisoned)?;
            match index.by_id.get(&req.id) {
                Some(e) => e.clone(),
                None => {
                    let entry = Entry::new(req, version);
                    take_place(&mut index, &entry);
                    index.by_id.insert(entry.id.clone(), entry.clone());
                    drop(index);
                    self.arrived();
                    return Ok(entry);
                }
            }
        };
        let mut current = held.request.lock().await;
        if version > held.version.load(Ordering::SeqCst) {
            self.set(&held, &mut current, req, version);
        }
        drop(current);
        let mut index = self.index.lock().map_err(|_| StoreError::Poisoned)?;
        if index.by_id.contains_key(&held.id) {
            take_place(&mut index, &held);
        }
        Ok(held)
    }

    /// Makes `stored` (at row `version`) the state of the locked `entry`: forgotten if it no
    /// longer stays in memory, its status announced if it changed.
    fn set(
        &self,
        entry: &Entry,
        current: &mut ApprovalRequest,
        stored: ApprovalRequest,
        version: i64,
    ) {
        let status = stored.status;
        *current = stored;
        entry.version.store(version, Ordering::SeqCst);
        if !stays_in_memory(status) {
            self.forget(entry);
        }
        entry.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
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

/// Makes `entry` the request of its action, when it may be: an open request takes the
/// action's place; a denial only a place no open request holds (another instance's open
/// request for the action would be newer).
fn take_place(index: &mut Index, entry: &Arc<Entry>) {
    let takes = entry.status().is_open()
        || index
            .by_hash
            .get(&entry.hash)
            .is_none_or(|e| e.id == entry.id || !e.status().is_open());
    if takes {
        index.by_hash.insert(entry.hash.clone(), entry.clone());
    }
}

/// The longest request id looked up (ours are UUIDs).
const MAX_ID_BYTES: usize = 128;

/// Whether `id` could be a request id: not empty, at most [`MAX_ID_BYTES`], no control
/// characters. Any other is unknown without asking the database (PostgreSQL refuses a NUL in
/// text, which would read as the store failing).
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES && !id.chars().any(char::is_control)
}

/// A stored request from its row's id and body (the body must be the request of that id).
fn decode(id: String, body: &str) -> Result<ApprovalRequest, StoreError> {
    match serde_json::from_str::<ApprovalRequest>(body) {
        Ok(req) if req.id == id => Ok(req),
        _ => Err(StoreError::Corrupt(id)),
    }
}

/// An earlier refusal from its row: its time is the decision's (or the request's when the
/// body cannot be read; the row's status is authoritative).
fn earlier_of(
    id: String,
    status: &str,
    requested_at: &str,
    body: &str,
) -> Result<Earlier, StoreError> {
    let Some(status) = Status::parse(status) else {
        return Err(StoreError::Corrupt(id));
    };
    let at = match decode(id.clone(), body) {
        Ok(req) => req.decided_at.unwrap_or(req.requested_at),
        Err(_) => warden_core::text::parse_rfc3339(requested_at)
            .ok_or_else(|| StoreError::Corrupt(id.clone()))?,
    };
    Ok(Earlier { id, status, at })
}

#[cfg(test)]
mod tests;
