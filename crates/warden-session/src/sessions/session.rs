//! A live session, as the request path sees it: its identity, revocation, labels and
//! provenance (trusted text and the index of untrusted content read on this instance).

use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Mutex, RwLock};

use time::OffsetDateTime;
use warden_core::TrustedSource;
use warden_provenance::{Limits, Origin, SessionProvenance, TrustError};

use super::{Link, SessionInfo};
use crate::state_db::fmt_time;
use crate::trust::TrustedPiece;

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
    pub(super) revoked: std::sync::atomic::AtomicBool,
    pub(super) labels: Mutex<Vec<Arc<str>>>,
    pub(super) provenance: RwLock<SessionProvenance>,
    /// The last `session_trust` row applied (PostgreSQL: newer rows are added on refresh).
    pub(super) trust_seen: AtomicI64,
    /// Whether this instance noted in the store that it serves the session (PostgreSQL).
    pub(super) served_here: AtomicBool,
}

/// A fresh provenance whose trusted text is `task`. A task longer than the trusted-text bound
/// cannot be (opening refuses it: [`MAX_TASK_BYTES`] is far below the bound).
pub(crate) fn provenance_of(task: &str) -> RwLock<SessionProvenance> {
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
