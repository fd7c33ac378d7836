//! Sessions, kept in `state.db` under the data directory.
//!
//! A session binds one agent, acting on behalf of one principal of the charter, to one task,
//! for a limited time. Its token is shown once, when the session is opened; only its BLAKE3
//! hash is stored. Live sessions are also held in memory for the request path, with the data
//! labels they have accumulated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use warden_core::TrustedSource;
use warden_provenance::{Limits, Origin, SessionProvenance, TrustError};

use crate::state_db::{StateDb, StoreError, fmt_time, parse_time};
use crate::tokens::{self, Plane, TokenHash};
use crate::trust::{self, TrustedPiece};

mod children;
pub use children::ChildError;

/// Longest session lifetime accepted.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest task text accepted, in bytes.
pub const MAX_TASK_BYTES: usize = 16 * 1024;

/// A live session, as the request path sees it.
#[derive(Debug)]
pub struct Session {
    /// Session id (UUID v7).
    pub id: String,
    /// The agent (the charter's identity id).
    pub agent: String,
    /// The principal the agent acts for.
    pub principal: String,
    /// The task.
    pub task: String,
    /// When the session was opened.
    pub opened_at: OffsetDateTime,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// The delegation chain: the session's ancestors from the root session to its parent
    /// (empty for a session an operator opened). A child session acts for the same principal
    /// as its root and can never do more than every charter along the chain allows.
    pub chain: Vec<Link>,
    /// The parent session's id (`None` for a root session).
    pub parent: Option<String>,
    revoked: std::sync::atomic::AtomicBool,
    labels: Mutex<Vec<Arc<str>>>,
    provenance: RwLock<SessionProvenance>,
}

/// A fresh provenance whose trusted text is `task`. A task longer than the trusted-text bound
/// cannot be (opening refuses it: [`MAX_TASK_BYTES`] is far below the bound).
fn provenance_of(task: &str) -> RwLock<SessionProvenance> {
    let mut p = SessionProvenance::new(Limits::default());
    if p.add_trusted(task, TrustedSource::Task).is_err() {
        // Fail closed: the task is not trusted, and nothing is lost but convenience.
        tracing::warn!("A session's task exceeds the trusted-text bound; it is not trusted.");
    }
    RwLock::new(p)
}

impl Session {
    /// Whether the session was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the session has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }

    /// The labels accumulated so far. A lock poisoned by a panic elsewhere still yields
    /// them (labels only restrict, so they are never dropped).
    pub fn labels(&self) -> Vec<Arc<str>> {
        self.labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The session's provenance, for a decision. A lock poisoned by a panic elsewhere still
    /// yields it (it only ever grows: trusted text, indexed content, incompleteness).
    pub fn provenance(&self) -> std::sync::RwLockReadGuard<'_, SessionProvenance> {
        self.provenance
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds trusted text (an instruction, a value confirmed on approval). The caller records
    /// it first.
    pub fn add_trusted(&self, text: &str, source: TrustedSource) -> Result<(), TrustError> {
        self.provenance
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add_trusted(text, source)
    }

    /// Indexes untrusted content the session read (a result carrying an untrusted label,
    /// recorded at `origin.seq`).
    pub fn add_untrusted(&self, text: &str, origin: Origin) {
        self.provenance
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add_untrusted(text, origin);
    }

    /// The pieces of the session's trusted text (the task first) with their sources.
    pub fn trusted_pieces(&self) -> Vec<TrustedPiece> {
        self.provenance()
            .trusted()
            .map(|(text, source)| TrustedPiece {
                text: text.to_owned(),
                source: source.clone(),
            })
            .collect()
    }

    /// Whether `bytes` more of trusted text would fit the session's bound now (checked before
    /// an instruction is recorded; [`add_trusted`](Self::add_trusted) checks again).
    pub fn trusted_fits(&self, bytes: usize) -> bool {
        let p = self.provenance();
        let used: usize = p.trusted().map(|(t, _)| t.len()).sum();
        used.saturating_add(bytes) <= p.limits().max_trusted_bytes
    }

    /// The session as operators see it at `now` (never its token).
    pub fn info(&self, now: OffsetDateTime) -> SessionInfo {
        SessionInfo {
            id: self.id.clone(),
            agent: self.agent.clone(),
            principal: self.principal.clone(),
            task: self.task.clone(),
            opened_at: fmt_time(self.opened_at),
            expires_at: fmt_time(self.expires_at),
            status: if self.is_revoked() {
                "revoked"
            } else if self.is_expired(now) {
                "expired"
            } else {
                "active"
            },
            labels: self.labels().iter().map(|l| l.to_string()).collect(),
            trusted: self.trusted_pieces(),
            provenance_complete: self.provenance().is_complete(),
            parent: self.parent.clone(),
            chain: self.chain.clone(),
        }
    }

    /// Marks the session's untrusted index incomplete (fail closed: every value trusted text
    /// does not state counts as untrusted).
    pub fn mark_provenance_incomplete(&self) {
        self.provenance
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .mark_incomplete();
    }

    /// Adds labels; returns those that were new. A poisoned lock does not stop them being
    /// added (fail closed).
    pub fn add_labels(&self, new: &[Arc<str>]) -> Vec<Arc<str>> {
        let mut labels = self
            .labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut added = Vec::new();
        for l in new {
            if !labels.contains(l) {
                labels.push(l.clone());
                added.push(l.clone());
            }
        }
        labels.sort();
        added
    }
}

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
    pool: SqlitePool,
    live: Arc<RwLock<HashMap<TokenHash, Arc<Session>>>>,
    by_id: Arc<RwLock<HashMap<String, Arc<Session>>>>,
    /// Children being opened, per parent (counted with the live ones against the fan-out).
    opening: Arc<Mutex<HashMap<String, u32>>>,
}

impl SessionStore {
    /// The sessions of `state.db`, the live ones loaded into memory.
    pub async fn open(db: &StateDb) -> Result<SessionStore, StoreError> {
        let store = SessionStore {
            pool: db.pool()?,
            live: Arc::default(),
            by_id: Arc::default(),
            opening: Arc::default(),
        };
        store.load().await?;
        Ok(store)
    }

    async fn load(&self) -> Result<(), StoreError> {
        let rows = sqlx::query("SELECT id, token_hash, agent, principal, task, opened_at, expires_at, revoked_at, parent, chain FROM sessions")
            .fetch_all(&self.pool)
            .await?;
        let labels = sqlx::query("SELECT session, label FROM session_labels")
            .fetch_all(&self.pool)
            .await?;
        let mut by_session: HashMap<String, Vec<Arc<str>>> = HashMap::new();
        for row in labels {
            let s: String = row.try_get("session")?;
            let l: String = row.try_get("label")?;
            by_session.entry(s).or_default().push(Arc::from(l.as_str()));
        }
        let trusted = trust::load(&self.pool).await?;
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
        sqlx::query("INSERT INTO sessions (id, token_hash, agent, principal, task, opened_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(&hash[..])
            .bind(agent)
            .bind(principal)
            .bind(task)
            .bind(fmt_time(now))
            .bind(fmt_time(expires_at))
            .execute(&self.pool)
            .await?;
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
        });
        self.hold_new(hash, session, token)
    }

    /// The session a presented agent token belongs to, if any (revoked and expired ones
    /// included: the caller decides what to do with them).
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

    /// A session by id.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.by_id.read().ok()?.get(id).cloned()
    }

    /// Every session, newest first.
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
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// Persists labels a session gained.
    pub async fn persist_labels(
        &self,
        session: &str,
        labels: &[Arc<str>],
    ) -> Result<(), StoreError> {
        for l in labels {
            sqlx::query("INSERT OR IGNORE INTO session_labels (session, label) VALUES (?, ?)")
                .bind(session)
                .bind(&**l)
                .execute(&self.pool)
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
        trust::insert(&self.pool, session, text, source).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10, point 17: a lifetime that ends past the calendar is refused, never a panic
    /// (`now + ttl` panicked before).
    #[tokio::test]
    async fn a_lifetime_past_the_end_of_the_calendar_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).await.unwrap();
        let store = SessionStore::open(&db).await.unwrap();
        let end_of_time = time::macros::datetime!(9999-12-31 23:00:00 UTC);
        let err = store
            .open_session("a", "p", "t", MAX_TTL, end_of_time)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidTtl), "{err}");
        assert!(store.list(end_of_time).is_empty());
        let ok = store
            .open_session("a", "p", "t", Duration::from_secs(60), end_of_time)
            .await;
        assert!(ok.is_ok());
    }

    /// Issue 10, point 15: sessions long expired do not stay in memory for ever.
    #[tokio::test]
    async fn issue_10_long_expired_sessions_are_pruned_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).await.unwrap();
        let store = SessionStore::open(&db).await.unwrap();
        let t0 = time::macros::datetime!(2026-12-06 12:00:00 UTC);
        let (old, _) = store
            .open_session("a", "p", "t", Duration::from_secs(60), t0)
            .await
            .unwrap();
        let (live, _) = store
            .open_session("a", "p", "t", Duration::from_secs(3 * 86_400), t0)
            .await
            .unwrap();
        let day = Duration::from_secs(86_400);
        let later = t0 + time::Duration::days(2);
        assert_eq!(store.prune_expired(later, day), 1);
        assert!(store.authenticate(&old.token).is_none());
        assert!(store.authenticate(&live.token).is_some());
        assert_eq!(store.list(later).len(), 1);
        // Recently expired ones are kept (refused as expired, listed).
        assert_eq!(store.prune_expired(t0 + time::Duration::hours(1), day), 0);
    }

    /// Issue 13: trusted text added to a session is persisted and back, in order and with its
    /// source, after the store is reopened; an unreadable stored source is not trusted.
    #[tokio::test]
    async fn issue_13_trusted_text_is_back_after_a_restart_with_its_sources() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).await.unwrap();
        let store = SessionStore::open(&db).await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        let (opened, session) = store
            .open_session("a", "p", "pay the rent", Duration::from_secs(600), now)
            .await
            .unwrap();
        let source = TrustedSource::Instruction { seq: Some(7) };
        session
            .add_trusted("also pay bob@x.com", source.clone())
            .unwrap();
        store
            .persist_trust(&opened.id, "also pay bob@x.com", &source)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO session_trust (session, text, source) VALUES (?, 'forged', '{bad')",
        )
        .bind(&opened.id)
        .execute(&db.pool().unwrap())
        .await
        .unwrap();
        db.close().await;
        let db = StateDb::open(dir.path()).await.unwrap();
        let store = SessionStore::open(&db).await.unwrap();
        let back = store.get(&opened.id).unwrap();
        assert_eq!(
            back.trusted_pieces(),
            [
                TrustedPiece {
                    text: "pay the rent".to_owned(),
                    source: TrustedSource::Task
                },
                TrustedPiece {
                    text: "also pay bob@x.com".to_owned(),
                    source
                },
            ]
        );
        let listed = store.list(now);
        assert_eq!(listed[0].trusted.len(), 2);
        assert!(back.trusted_fits(1024));
        assert!(!back.trusted_fits(Limits::default().max_trusted_bytes));
    }

    /// Issue 10, point 18: a labels lock poisoned by a panic made `labels()` answer none and
    /// `add_labels` add none (fail open); the labels stay and are added now.
    #[test]
    fn issue_10_a_poisoned_labels_lock_keeps_and_adds_labels() {
        let s = Session {
            id: "s".to_owned(),
            agent: "a".to_owned(),
            principal: "p".to_owned(),
            task: "t".to_owned(),
            opened_at: time::OffsetDateTime::UNIX_EPOCH,
            expires_at: time::OffsetDateTime::UNIX_EPOCH,
            chain: Vec::new(),
            parent: None,
            revoked: std::sync::atomic::AtomicBool::new(false),
            labels: Mutex::new(Vec::new()),
            provenance: provenance_of("t"),
        };
        s.add_labels(&[Arc::from("pii")]);
        std::thread::scope(|scope| {
            let _ = scope
                .spawn(|| {
                    let _held = s.labels.lock();
                    panic!("poison the lock");
                })
                .join();
        });
        assert!(s.labels.is_poisoned());
        assert_eq!(s.labels(), [Arc::from("pii")]);
        assert_eq!(s.add_labels(&[Arc::from("secret")]), [Arc::from("secret")]);
        assert_eq!(s.labels(), [Arc::from("pii"), Arc::from("secret")]);
    }
}
