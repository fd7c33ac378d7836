//! Child sessions (delegation): opening one under a parent, the live children and
//! descendants of a session, its ancestors and the labels it decides with.
//!
//! A child acts for its parent's principal, expires no later than its parent, and starts with
//! its parent's labels and trusted text. Its own task is text the parent *agent* wrote, so it
//! is never trusted (fail closed: only what the principal stated is). The parent's untrusted
//! index is not copied piece by piece: a parent that has read untrusted content (or whose
//! index is incomplete) gives a child whose index is incomplete, so every value its trusted
//! text does not state counts as untrusted. A child reloaded after a restart is likewise
//! marked incomplete.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;
use warden_provenance::{Limits, SessionProvenance};

use super::{Link, OpenedSession, Session, SessionStore, postgres};
use crate::state_db::{StoreError, fmt_time};
use crate::tokens::{self, Plane};
use crate::trust::TrustedPiece;

/// Why a child session was not opened.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The parent already has as many live children as its charter allows.
    #[error("the session already has {live} live child sessions (at most {limit})")]
    FanOut {
        /// Live children (and children being opened).
        live: u32,
        /// The bound.
        limit: u32,
    },
    /// The parent is revoked or expired.
    #[error("the parent session is no longer active")]
    ParentInactive,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads a stored chain (`NULL` for a root session).
pub(super) fn parse_chain(stored: Option<String>) -> Result<Vec<Link>, StoreError> {
    match stored {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|_| StoreError::Corrupt("chain")),
    }
}

/// A child's provenance when it is reloaded: its trusted text comes back from
/// `session_trust`; its untrusted index cannot (fail closed: incomplete).
pub(super) fn child_provenance() -> RwLock<SessionProvenance> {
    let mut p = SessionProvenance::new(Limits::default());
    p.mark_incomplete();
    RwLock::new(p)
}

/// Releases one reserved child slot of `parent` when dropped.
struct Reserved<'a> {
    opening: &'a Mutex<HashMap<String, u32>>,
    parent: String,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut opening = self
            .opening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = opening.get_mut(&self.parent) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                opening.remove(&self.parent);
            }
        }
    }
}

impl Session {
    /// The session's depth: its chain's length (a root session is at depth 0).
    pub fn depth(&self) -> usize {
        self.chain.len()
    }

    /// The chain of a child of this session: this session's chain and this session.
    pub fn chain_of_child(&self) -> Vec<Link> {
        let mut chain = self.chain.clone();
        chain.push(Link {
            session: self.id.clone(),
            agent: self.agent.clone(),
        });
        chain
    }
}

impl SessionStore {
    /// Opens a child session of `parent` for `agent`. The caller has checked that the
    /// charters permit it; this checks that the parent is active at `now` and — atomically
    /// with other openings under the same parent — that it has fewer than `max_children` live
    /// children. The child expires at `now + ttl` or the parent's expiry, whichever is first
    /// (`ttl: None`: the parent's), acts for the parent's principal, and starts with the
    /// parent's labels and trusted text (persisted with it).
    pub async fn open_child(
        &self,
        parent: &Session,
        agent: &str,
        task: &str,
        ttl: Option<Duration>,
        now: OffsetDateTime,
        max_children: u32,
    ) -> Result<(OpenedSession, Arc<Session>), ChildError> {
        if parent.is_revoked() || parent.is_expired(now) {
            return Err(ChildError::ParentInactive);
        }
        let expires_at = match ttl {
            None => parent.expires_at,
            Some(ttl) => time::Duration::try_from(ttl)
                .ok()
                .and_then(|ttl| now.checked_add(ttl))
                .map_or(parent.expires_at, |at| at.min(parent.expires_at)),
        };
        let _slot = self.reserve(parent, now, max_children)?;
        let (token, hash) = tokens::generate(Plane::Agent).map_err(StoreError::from)?;
        let id = Uuid::now_v7().to_string();
        let chain = parent.chain_of_child();
        let chain_json = serde_json::to_string(&chain).map_err(|_| StoreError::Corrupt("chain"))?;
        let labels = parent.labels();
        let trusted = parent.trusted_pieces();
        let mut provenance = SessionProvenance::new(Limits::default());
        {
            let from = parent.provenance();
            if from.keys() > 0 || !from.is_complete() {
                provenance.mark_incomplete();
            }
        }
        // The parent held its trusted text within the same bound; fail closed all the same:
        // a piece that does not fit is neither trusted nor stored.
        let kept: Vec<&TrustedPiece> = trusted
            .iter()
            .filter(|piece| {
                provenance
                    .add_trusted(&piece.text, piece.source.clone())
                    .is_ok()
            })
            .collect();
        let row = postgres::NewChild {
            id: &id,
            hash: &hash,
            agent,
            principal: &parent.principal,
            task,
            parent: &parent.id,
            chain: &chain_json,
            now,
            expires_at,
        };
        match self.shared() {
            Some(pg) => postgres::insert_child(pg, &row, &labels, &kept, max_children).await?,
            None => self.insert_child_sqlite(&row, &labels, &kept).await?,
        }
        let session = Arc::new(Session {
            id: id.clone(),
            agent: agent.to_owned(),
            principal: parent.principal.clone(),
            task: task.to_owned(),
            opened_at: now,
            expires_at,
            chain,
            parent: Some(parent.id.clone()),
            revoked: std::sync::atomic::AtomicBool::new(false),
            labels: Mutex::new(labels),
            provenance: RwLock::new(provenance),
            trust_seen: Default::default(),
            served_here: Default::default(),
        });
        Ok(self.hold_new(hash, session, token)?)
    }

    /// Stores a child, its labels and trusted text in `state.db`, in one transaction.
    async fn insert_child_sqlite(
        &self,
        row: &postgres::NewChild<'_>,
        labels: &[Arc<str>],
        trusted: &[&TrustedPiece],
    ) -> Result<(), StoreError> {
        let mut tx = self.sqlite()?.begin().await?;
        sqlx::query("INSERT INTO sessions (id, token_hash, agent, principal, task, opened_at, expires_at, parent, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(row.id)
            .bind(&row.hash[..])
            .bind(row.agent)
            .bind(row.principal)
            .bind(row.task)
            .bind(fmt_time(row.now))
            .bind(fmt_time(row.expires_at))
            .bind(row.parent)
            .bind(row.chain)
            .execute(&mut *tx)
            .await?;
        for l in labels {
            sqlx::query("INSERT OR IGNORE INTO session_labels (session, label) VALUES (?, ?)")
                .bind(row.id)
                .bind(&**l)
                .execute(&mut *tx)
                .await?;
        }
        for piece in trusted {
            let source =
                serde_json::to_string(&piece.source).map_err(|_| StoreError::Corrupt("source"))?;
            sqlx::query("INSERT INTO session_trust (session, text, source) VALUES (?, ?, ?)")
                .bind(row.id)
                .bind(&piece.text)
                .bind(source)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Reserves a child slot of `parent`, or refuses past `max_children` (live children and
    /// those being opened count).
    fn reserve(
        &self,
        parent: &Session,
        now: OffsetDateTime,
        max_children: u32,
    ) -> Result<Reserved<'_>, ChildError> {
        let mut opening = self
            .opening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pending = opening.get(&parent.id).copied().unwrap_or(0);
        let live = u32::try_from(self.live_children(&parent.id, now))
            .unwrap_or(u32::MAX)
            .saturating_add(pending);
        if live >= max_children {
            return Err(ChildError::FanOut {
                live,
                limit: max_children,
            });
        }
        *opening.entry(parent.id.clone()).or_insert(0) += 1;
        Ok(Reserved {
            opening: &self.opening,
            parent: parent.id.clone(),
        })
    }

    /// How many children of session `id` are live (neither revoked nor expired) at `now`.
    pub fn live_children(&self, id: &str, now: OffsetDateTime) -> usize {
        let Ok(by_id) = self.by_id.read() else {
            // Fail closed: as if the bound were reached.
            return usize::MAX;
        };
        by_id
            .values()
            .filter(|s| s.parent.as_deref() == Some(id) && !s.is_revoked() && !s.is_expired(now))
            .count()
    }

    /// Every descendant of session `id` held in memory (children, their children, ...), in
    /// no particular order.
    pub fn descendants(&self, id: &str) -> Vec<Arc<Session>> {
        let Ok(by_id) = self.by_id.read() else {
            return Vec::new();
        };
        by_id
            .values()
            .filter(|s| s.chain.iter().any(|l| l.session == id))
            .cloned()
            .collect()
    }

    /// Revokes every live descendant of session `id` (a revoked session's children cannot
    /// outlive it); returns each one revoked with its parent, parents before their children.
    /// Descendants already revoked are left alone.
    pub async fn revoke_descendants(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if let Some(pg) = self.shared() {
            // Every instance's descendants, from the store.
            let mut revoked = Vec::new();
            for (child, parent) in postgres::descendants(pg, id).await? {
                if self.revoke(&child, now).await? {
                    revoked.push((child, parent));
                }
            }
            return Ok(revoked);
        }
        let mut descendants = self.descendants(id);
        descendants.sort_by_key(|s| s.chain.len());
        let mut revoked = Vec::new();
        for d in descendants {
            if self.revoke(&d.id, now).await? {
                revoked.push((d.id.clone(), d.parent.clone().unwrap_or_default()));
            }
        }
        Ok(revoked)
    }

    /// The ancestors of `session`, root first. `None` when one of them is no longer held
    /// (the caller refuses: an ancestor it cannot see is not known to be active).
    pub fn ancestors(&self, session: &Session) -> Option<Vec<Arc<Session>>> {
        session.chain.iter().map(|l| self.get(&l.session)).collect()
    }

    /// Whether `session` has an ancestor that is revoked, expired at `now`, or no longer
    /// held (fail closed).
    pub fn ancestor_inactive(&self, session: &Session, now: OffsetDateTime) -> bool {
        match self.ancestors(session) {
            None => true,
            Some(a) => a.iter().any(|s| s.is_revoked() || s.is_expired(now)),
        }
    }

    /// The labels `session` decides with: its own and every live ancestor's, sorted and
    /// without repeats (what a parent reads after its child opened flows on to the child).
    pub fn labels_with_ancestors(&self, session: &Session) -> Vec<Arc<str>> {
        let mut labels = session.labels();
        for link in &session.chain {
            if let Some(a) = self.get(&link.session) {
                labels.extend(a.labels());
            }
        }
        labels.sort();
        labels.dedup();
        labels
    }
}

#[cfg(test)]
mod tests;
