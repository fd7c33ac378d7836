//! The session store as the request path and the operator plane read it on either backend:
//! from memory on SQLite (one instance holds every session), from the shared store on
//! PostgreSQL (see [`postgres`](super::postgres)), so a decision on any instance sees what
//! every instance committed before it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use time::OffsetDateTime;

use super::postgres::{self, MAX_HELD};
use super::{Session, SessionInfo, SessionStore};
use crate::state_db::StoreError;
use crate::state_db::notices::{Channel, Notice};
use crate::tokens::{self, Plane, TokenHash};

/// Longest token looked up; a longer one is refused without a query (a real one is 46
/// bytes).
pub const MAX_TOKEN_BYTES: usize = 256;

impl SessionStore {
    /// The session a presented agent token belongs to, current with the store (revoked and
    /// expired ones included: the caller refuses them). On SQLite the one instance's memory.
    /// On PostgreSQL a session held here is refreshed (revocation, labels, new trusted text,
    /// other instances serving it) with one query; one not held is loaded by its token hash
    /// (one indexed query; an unknown token holds nothing) and held while active.
    ///
    /// A store error is an `Err`: the caller refuses the request (never lets it through).
    pub async fn authenticate_current(
        &self,
        token: &str,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let Some(pg) = self.shared() else {
            return Ok(self.authenticate(token));
        };
        if token.len() > MAX_TOKEN_BYTES || tokens::plane_of(token) != Some(Plane::Agent) {
            return Ok(None);
        }
        let hash = tokens::hash(token);
        let session = match self.authenticate(token) {
            Some(held) => held,
            None => {
                let Some((stored, session, ancestors)) = postgres::load_by_hash(pg, &hash).await?
                else {
                    return Ok(None);
                };
                if !tokens::hashes_equal(&stored, &hash) {
                    return Ok(None);
                }
                let held = self.hold_loaded(stored, session, ancestors)?;
                let Some(session) = held.last().cloned() else {
                    return Ok(None);
                };
                session
            }
        };
        if !session.served_here.load(Ordering::Acquire) {
            // Noted before the first decision here, so another instance's next refresh sees
            // that this one may have read content it has not.
            if postgres::note_served(pg, &self.instance, &session.id).await? {
                // Served here before, but the index built then is not held any more.
                session.mark_provenance_incomplete();
            }
            session.served_here.store(true, Ordering::Release);
        }
        let mut current = self.ancestors_held(&session);
        current.push(session.clone());
        postgres::refresh(pg, &self.instance, &current).await?;
        // A revoked session is not kept (an expired one goes at the next poll).
        if session.is_revoked() {
            self.evict(&hash, &session.id);
        }
        Ok(Some(session))
    }

    /// A session by id, current with the store: on SQLite the one held in memory; on
    /// PostgreSQL the one held here (refreshed), or else the store's (not held, its
    /// provenance incomplete: no index of it is held here).
    pub async fn get_current(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        let Some(pg) = self.shared() else {
            return Ok(self.get(id));
        };
        let session = match self.get(id) {
            Some(held) => held,
            None => match postgres::load_id(pg, id).await? {
                None => return Ok(None),
                Some(s) => {
                    s.mark_provenance_incomplete();
                    Arc::new(s)
                }
            },
        };
        postgres::refresh(pg, &self.instance, std::slice::from_ref(&session)).await?;
        Ok(Some(session))
    }

    /// Every session, newest first, current with the store: on SQLite those held in memory;
    /// on PostgreSQL every instance's (at most [`postgres::MAX_LISTED`]).
    pub async fn list_current(&self, now: OffsetDateTime) -> Result<Vec<SessionInfo>, StoreError> {
        match self.shared() {
            None => Ok(self.list(now)),
            Some(pg) => postgres::list(self, pg, now).await,
        }
    }

    /// Applies a notice of the store (PostgreSQL): a session changed elsewhere
    /// (`Changed(Sessions, id)`) is refreshed if held here; on `Poll` every held session is,
    /// and those revoked or expired are evicted. So a session revoked on another instance is
    /// refused here within a second, even between requests (a waiting call checks
    /// [`Session::is_revoked`]). Nothing on SQLite.
    pub async fn follow(&self, notice: &Notice, now: OffsetDateTime) -> Result<(), StoreError> {
        let Some(pg) = self.shared() else {
            return Ok(());
        };
        match notice {
            Notice::Changed {
                channel: Channel::Sessions,
                id,
            } => {
                if let Some(held) = self.get(id) {
                    postgres::refresh(pg, &self.instance, &[held]).await?;
                }
            }
            Notice::Changed { .. } => {}
            Notice::Poll => {
                let held: Vec<Arc<Session>> = match self.by_id.read() {
                    Ok(m) => m.values().cloned().collect(),
                    Err(_) => return Err(StoreError::Poisoned),
                };
                postgres::refresh(pg, &self.instance, &held).await?;
                self.evict_inactive(now);
            }
        }
        Ok(())
    }

    /// Holds sessions loaded from the store (ancestors, root first, then the session) unless
    /// one with the same id is held already (that one is used). Answers them in that order,
    /// the session last. Past [`MAX_HELD`] nothing more is held: the session is served all
    /// the same, its provenance incomplete (nothing it reads is kept).
    pub(super) fn hold_loaded(
        &self,
        hash: TokenHash,
        session: Session,
        ancestors: Vec<(TokenHash, Session)>,
    ) -> Result<Vec<Arc<Session>>, StoreError> {
        let mut live = self.live.write().map_err(|_| StoreError::Poisoned)?;
        let mut by_id = self.by_id.write().map_err(|_| StoreError::Poisoned)?;
        let mut out = Vec::with_capacity(ancestors.len() + 1);
        for (h, s) in ancestors
            .into_iter()
            .chain(std::iter::once((hash, session)))
        {
            if let Some(held) = by_id.get(&s.id) {
                out.push(held.clone());
                continue;
            }
            let s = Arc::new(s);
            if by_id.len() < MAX_HELD {
                live.insert(h, s.clone());
                by_id.insert(s.id.clone(), s.clone());
            } else {
                s.mark_provenance_incomplete();
            }
            out.push(s);
        }
        Ok(out)
    }

    /// The ancestors of `session` held here (root first).
    fn ancestors_held(&self, session: &Session) -> Vec<Arc<Session>> {
        session
            .chain
            .iter()
            .filter_map(|l| self.get(&l.session))
            .collect()
    }

    /// Forgets a session held here (PostgreSQL: the store keeps it).
    fn evict(&self, hash: &TokenHash, id: &str) {
        if let Ok(mut live) = self.live.write() {
            live.remove(hash);
        }
        if let Ok(mut by_id) = self.by_id.write() {
            by_id.remove(id);
        }
    }

    /// Forgets the sessions held here that are revoked or expired at `now` (PostgreSQL);
    /// returns how many.
    pub(super) fn evict_inactive(&self, now: OffsetDateTime) -> usize {
        let (Ok(mut live), Ok(mut by_id)) = (self.live.write(), self.by_id.write()) else {
            return 0;
        };
        let before = by_id.len();
        live.retain(|_, s| !s.is_revoked() && !s.is_expired(now));
        by_id.retain(|_, s| !s.is_revoked() && !s.is_expired(now));
        before.saturating_sub(by_id.len())
    }

    /// How many sessions are held in memory.
    pub fn held(&self) -> usize {
        self.by_id.read().map_or(0, |m| m.len())
    }
}
