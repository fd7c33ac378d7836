//! Sessions, kept in `state.db` under the data directory.
//!
//! A session binds one agent, acting on behalf of one principal of the charter, to one task,
//! for a limited time. Its token is shown once, when the session is opened; only its BLAKE3
//! hash is stored. Live sessions are also held in memory for the request path, with the data
//! labels they have accumulated.
//!
//! On PostgreSQL the sessions are the fleet's: any instance serves any session, reading it
//! current from the store at each request ([`SessionStore::authenticate_current`]), and holds
//! in memory only the sessions it serves (see [`postgres`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use sqlx::{PgPool, Row, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use warden_core::TrustedSource;
use warden_core::store::InstanceId;

use crate::state_db::{Backend, StateDb, StoreError, fmt_time, parse_time};
use crate::tokens::{self, Plane, TokenHash};
use crate::trust::{self, TrustedPiece};

mod children;
mod current;
pub mod postgres;
mod session;
pub use children::ChildError;
pub use current::MAX_TOKEN_BYTES;
pub use session::Session;
pub(crate) use session::provenance_of;

/// Longest session lifetime accepted.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest task text accepted, in bytes.
pub const MAX_TASK_BYTES: usize = 16 * 1024;

/// A session as listed to operators (never with its token).
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// Agent.
    pub agent: String,
    /// Principal.
    pub principal: String,
    /// Task.
    pub task: String,
    /// Opened at (RFC 3339).
    pub opened_at: String,
    /// Expires at (RFC 3339).
    pub expires_at: String,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    /// Labels accumulated.
    pub labels: Vec<String>,
    /// The pieces of its trusted text (the task first: instructions, values confirmed on
    /// approval) with their sources.
    pub trusted: Vec<TrustedPiece>,
    /// Whether the index of the untrusted content it read is complete (`false`: every value
    /// its trusted text does not state counts as untrusted).
    pub provenance_complete: bool,
    /// The parent session, for a child session (delegation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The delegation chain (ancestors, root first; empty for a session an operator opened).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<Link>,
}

/// One ancestor in a session's delegation chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Link {
    /// The ancestor session's id.
    pub session: String,
    /// Its agent.
    pub agent: String,
}

/// A newly opened session: the token is returned exactly once.
#[derive(Debug, Clone, Serialize)]
pub struct OpenedSession {
    /// Session id.
    pub id: String,
    /// The session token (shown once).
    pub token: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
}

/// The sessions: in `state.db`, and the live ones in memory for the request path.
#[derive(Debug, Clone)]
pub struct SessionStore {
    backend: Backend,
    /// This instance's id, as noted in `session_instances` (PostgreSQL).
    instance: Arc<str>,
    live: Arc<RwLock<HashMap<TokenHash, Arc<Session>>>>,
    by_id: Arc<RwLock<HashMap<String, Arc<Session>>>>,
    /// Children being opened, per parent (counted with the live ones against the fan-out).
    opening: Arc<Mutex<HashMap<String, u32>>>,
}

impl SessionStore {
    /// The sessions of `state.db`, the live ones loaded into memory. On PostgreSQL the
    /// instance is anonymous (a fresh id: every other process is another instance); the
    /// gateway uses [`open_as`](Self::open_as).
    pub async fn open(db: &StateDb) -> Result<SessionStore, StoreError> {
        SessionStore::open_as(db, None).await
    }

    /// The sessions of the store, as instance `instance` (PostgreSQL; ignored on SQLite).
    /// On SQLite every session is loaded into memory; on PostgreSQL the active sessions this
    /// instance served (their untrusted index is rebuilt from this instance's ledger chain),
    /// the others when first presented ([`authenticate_current`](Self::authenticate_current)).
    pub async fn open_as(
        db: &StateDb,
        instance: Option<&InstanceId>,
    ) -> Result<SessionStore, StoreError> {
        let instance: Arc<str> = match instance {
            Some(i) => Arc::from(i.as_str()),
            None => Arc::from(format!("anonymous-{}", Uuid::now_v7()).as_str()),
        };
        let store = SessionStore {
            backend: db.backend().clone(),
            instance,
            live: Arc::default(),
            by_id: Arc::default(),
            opening: Arc::default(),
        };
        match &store.backend {
            Backend::Sqlite(_) => store.load().await?,
            Backend::Postgres(pg) => postgres::load_served(&store, pg).await?,
        }
        Ok(store)
    }

    /// The SQLite pool; [`StoreError::Unsupported`] on PostgreSQL (where the callers branch
    /// first).
    fn sqlite(&self) -> Result<&SqlitePool, StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => Ok(pool),
            Backend::Postgres(_) => Err(StoreError::Unsupported("this SQLite path")),
        }
    }

    /// The PostgreSQL pool, when the store is the shared one.
    fn shared(&self) -> Option<&PgPool> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg),
        }
    }

    async fn load(&self) -> Result<(), StoreError> {
        let rows = sqlx::query("SELECT id, token_hash, agent, principal, task, opened_at, expires_at, revoked_at, parent, chain FROM sessions")
            .fetch_all(self.sqlite()?)
            .await?;
        let labels = sqlx::query("SELECT session, label FROM session_labels")
            .fetch_all(self.sqlite()?)
            .await?;
        let mut by_session: HashMap<String, Vec<Arc<str>>> = HashMap::new();
        for row in labels {
            let s: String = row.try_get("session")?;
            let l: String = row.try_get("label")?;
            by_session.entry(s).or_default().push(Arc::from(l.as_str()));
        }
        let trusted = trust::load(self.sqlite()?).await?;
        let mut live = self.live.write().map_err(|_| StoreError::Poisoned)?;
        let mut by_id = self.by_id.write().map_err(|_| StoreError::Poisoned)?;
        for row in rows {
            let hash: Vec<u8> = row.try_get("token_hash")?;
            let hash: TokenHash = hash
                .try_into()
                .map_err(|_| StoreError::Corrupt("token_hash"))?;
            let id: String = row.try_get("id")?;
            let revoked: Option<String> = row.try_get("revoked_at")?;
            let parent: Option<String> = row.try_get("parent")?;
            let chain = children::parse_chain(row.try_get("chain")?)?;
            let task: String = row.try_get("task")?;
            // A child's trusted text is its parent's, copied into `session_trust` when it was
            // opened (restored below); its own task is the parent agent's text, never trusted.
            let provenance = if parent.is_some() {
                children::child_provenance()
            } else {
                provenance_of(&task)
            };
            let session = Arc::new(Session {
                labels: Mutex::new(by_session.remove(&id).unwrap_or_default()),
                id: id.clone(),
                agent: row.try_get("agent")?,
                principal: row.try_get("principal")?,
                task,
                opened_at: parse_time(&row.try_get::<String, _>("opened_at")?)?,
                expires_at: parse_time(&row.try_get::<String, _>("expires_at")?)?,
                chain,
                parent,
                revoked: std::sync::atomic::AtomicBool::new(revoked.is_some()),
                provenance,
                trust_seen: Default::default(),
                served_here: Default::default(),
            });
            live.insert(hash, session.clone());
            by_id.insert(id, session);
        }
        trust::restore(trusted, &by_id);
        Ok(())
    }

    /// Opens a session. The caller has checked the agent and principal against the charter.
    pub async fn open_session(
        &self,
        agent: &str,
        principal: &str,
        task: &str,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<(OpenedSession, Arc<Session>), StoreError> {
        // Checked: a lifetime that overflows the calendar is refused, never a panic.
        let expires_at = time::Duration::try_from(ttl)
            .ok()
            .and_then(|ttl| now.checked_add(ttl))
            .ok_or(StoreError::InvalidTtl)?;
        let (token, hash) = tokens::generate(Plane::Agent)?;
        let id = Uuid::now_v7().to_string();
        if let Some(pg) = self.shared() {
            postgres::insert(pg, (&id, &hash), (agent, principal, task), now, expires_at).await?;
        } else {
            sqlx::query("INSERT INTO sessions (id, token_hash, agent, principal, task, opened_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(&hash[..])
            .bind(agent)
            .bind(principal)
            .bind(task)
            .bind(fmt_time(now))
            .bind(fmt_time(expires_at))
            .execute(self.sqlite()?)
            .await?;
        }
        let session = Arc::new(Session {
            id: id.clone(),
            agent: agent.to_owned(),
            principal: principal.to_owned(),
            task: task.to_owned(),
            opened_at: now,
            expires_at,
            chain: Vec::new(),
            parent: None,
            revoked: std::sync::atomic::AtomicBool::new(false),
            labels: Mutex::new(Vec::new()),
            provenance: provenance_of(task),
            trust_seen: Default::default(),
            served_here: Default::default(),
        });
        self.hold_new(hash, session, token)
    }

    /// The session a presented agent token belongs to, if any, among those held in memory
    /// (revoked and expired ones included: the caller decides what to do with them). The
    /// request path uses [`authenticate_current`](Self::authenticate_current), which on
    /// PostgreSQL reads the store.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Session>> {
        if tokens::plane_of(token) != Some(Plane::Agent) {
            return None;
        }
        let hash = tokens::hash(token);
        let live = self.live.read().ok()?;
        // The map is keyed by the hash of a 256-bit secret; the final comparison is constant-time.
        live.get_key_value(&hash)
            .filter(|(k, _)| tokens::hashes_equal(k, &hash))
            .map(|(_, s)| s.clone())
    }

    /// A session held in memory, by id (on SQLite every session; on PostgreSQL those this
    /// instance serves: [`get_current`](Self::get_current) reads the store).
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.by_id.read().ok()?.get(id).cloned()
    }

    /// Every session held in memory, newest first (on SQLite every session; on PostgreSQL
    /// those this instance serves: [`list_current`](Self::list_current) reads the store).
    pub fn list(&self, now: OffsetDateTime) -> Vec<SessionInfo> {
        let Ok(by_id) = self.by_id.read() else {
            return Vec::new();
        };
        let mut v: Vec<SessionInfo> = by_id.values().map(|s| s.info(now)).collect();
        v.sort_by(|a, b| b.id.cmp(&a.id));
        v
    }

    /// Forgets, in memory, the sessions that expired more than `kept_for` before `now`
    /// (revoked ones included); returns how many. Their rows stay in `state.db`. A forgotten
    /// session's token is refused as unknown (`invalid session token`) instead of as expired,
    /// and it no longer appears in [`list`](Self::list), so memory is bounded by the sessions
    /// live within `kept_for`.
    pub fn prune_expired(&self, now: OffsetDateTime, kept_for: Duration) -> usize {
        let Some(cutoff) = time::Duration::try_from(kept_for)
            .ok()
            .and_then(|d| now.checked_sub(d))
        else {
            return 0;
        };
        let (Ok(mut live), Ok(mut by_id)) = (self.live.write(), self.by_id.write()) else {
            return 0;
        };
        let before = by_id.len();
        if self.shared().is_some() {
            // PostgreSQL: the store lists them; memory keeps only the active ones.
            drop((live, by_id));
            return self.evict_inactive(now);
        }
        live.retain(|_, s| s.expires_at > cutoff);
        by_id.retain(|_, s| s.expires_at > cutoff);
        before.saturating_sub(by_id.len())
    }

    /// Holds a session just stored (its row written) in memory, by token hash and by id, and
    /// answers it with its token (shown this once).
    pub(super) fn hold_new(
        &self,
        hash: TokenHash,
        session: Arc<Session>,
        token: String,
    ) -> Result<(OpenedSession, Arc<Session>), StoreError> {
        self.live
            .write()
            .map_err(|_| StoreError::Poisoned)?
            .insert(hash, session.clone());
        self.by_id
            .write()
            .map_err(|_| StoreError::Poisoned)?
            .insert(session.id.clone(), session.clone());
        Ok((
            OpenedSession {
                id: session.id.clone(),
                token,
                expires_at: fmt_time(session.expires_at),
            },
            session,
        ))
    }

    /// Revokes a session. `Ok(false)` when there is no such session or it was already revoked.
    pub async fn revoke(&self, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        if let Some(pg) = self.shared() {
            // The store decides (whichever instance holds the session): then the copy held
            // here, if any; the others follow the notice.
            let changed = postgres::revoke(pg, id, now).await?;
            if let Some(held) = self.get(id) {
                held.revoked
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            return Ok(changed);
        }
        let Some(session) = self.get(id) else {
            return Ok(false);
        };
        if session
            .revoked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(false);
        }
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(fmt_time(now))
            .bind(id)
            .execute(self.sqlite()?)
            .await?;
        Ok(true)
    }

    /// Persists labels a session gained.
    pub async fn persist_labels(
        &self,
        session: &str,
        labels: &[Arc<str>],
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.shared() {
            return postgres::persist_labels(pg, session, labels).await;
        }
        for l in labels {
            sqlx::query("INSERT OR IGNORE INTO session_labels (session, label) VALUES (?, ?)")
                .bind(session)
                .bind(&**l)
                .execute(self.sqlite()?)
                .await?;
        }
        Ok(())
    }

    /// Persists trusted text a session gained (an instruction, a value confirmed on
    /// approval), so that it is trusted again after a restart (reloaded, in order and with
    /// its source, when the store is opened). The caller records it and adds it to the live
    /// session first.
    pub async fn persist_trust(
        &self,
        session: &str,
        text: &str,
        source: &TrustedSource,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => trust::insert(pool, session, text, source).await,
            Backend::Postgres(pg) => postgres::persist_trust(pg, session, text, source).await,
        }
    }
}

#[cfg(test)]
mod tests;
