//! Controls: interventions in force, each scoped to the whole gateway, an agent, a principal or
//! a session — the conservative or frozen posture, a frozen tool, a revoked session. Set by an
//! admin, the observer or the gateway's dead man's switch; lifted by an admin (or the switch,
//! for its own); persisted in `state.db` and reloaded at start-up; they may expire.
//!
//! What it guarantees: every decision of the governor and every call of the model proxy asks
//! [`Controls::applying`] which controls apply to its session (and tool), and the strictest
//! wins. That read is an in-memory snapshot (an `Arc` swapped under a lock when a control is
//! set, lifted or expires): no database read per decision. A poisoned lock reads as the frozen
//! posture (fail closed). A control whose expiry has passed no longer applies, whether or not
//! the sweeper has recorded it yet.
//!
//! On PostgreSQL (a fleet) the controls are stored in the shared database, each write bumping
//! the row's `changed` and announcing it (`NOTIFY`) in its transaction; every instance's
//! snapshot follows what any instance set, lifted or expired (see [`shared`]).

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row, SqlitePool};
use time::OffsetDateTime;
use warden_core::{Posture, Reason};

use crate::sessions::Session;
use crate::state_db::{Backend, StateDb, StoreError};

pub mod shared;

/// Most controls in force at once; setting one more is refused (`409 too_many_controls`).
pub const MAX_CONTROLS_IN_FORCE: usize = 10_000;

/// Most controls a list of all (lifted and expired included) returns: the newest.
pub const MAX_CONTROLS_LISTED: u32 = 1000;

/// What a control does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlAction {
    /// Autonomous and preapproved actions need approval.
    Conservative,
    /// Every action and model call is refused.
    Frozen,
    /// One tool is refused.
    FreezeTool,
    /// Every action of the sessions in scope is refused.
    RevokeSession,
    /// Nothing is put in force: the observer's alert, recorded.
    Alert,
}

impl ControlAction {
    /// The action's stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlAction::Conservative => "conservative",
            ControlAction::Frozen => "frozen",
            ControlAction::FreezeTool => "freeze_tool",
            ControlAction::RevokeSession => "revoke_session",
            ControlAction::Alert => "alert",
        }
    }
}

/// What a control applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlScope {
    /// Every session.
    Gateway,
    /// The sessions of one agent (the target).
    Agent,
    /// The sessions acting for one principal (the target).
    Principal,
    /// One session (the target).
    Session,
}

/// Who set or lifted a control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The credential's id (`gateway` for the dead man's switch).
    pub id: String,
    /// The credential's name.
    pub name: String,
    /// `admin`, `observer` or `gateway`.
    pub role: String,
}

/// One control, as the API answers it and as `control_set` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// Id (UUID v7).
    pub id: String,
    /// What it does.
    pub action: ControlAction,
    /// What it applies to.
    pub scope: ControlScope,
    /// The agent, principal or session id; `None` for the gateway scope.
    pub target: Option<String>,
    /// The tool (`server.tool`) of a `freeze_tool`.
    pub tool: Option<String>,
    /// Why: shown to the agent in every refusal the control causes.
    pub reason: String,
    /// The ledger sequence numbers that led to it.
    pub evidence: Vec<u64>,
    /// The charter detector or correlation that asked for it.
    pub detector: Option<String>,
    /// Who set it.
    pub set_by: Actor,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub set_at: OffsetDateTime,
    /// When it stops applying by itself.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was lifted (for an alert: when it was sent).
    #[serde(with = "time::serde::rfc3339::option")]
    pub lifted_at: Option<OffsetDateTime>,
    /// Who lifted it.
    pub lifted_by: Option<Actor>,
    /// Why it was lifted.
    pub lift_reason: Option<String>,
}

impl Control {
    /// Whether it applies at `now`: not an alert, not lifted, not expired.
    pub fn in_force(&self, now: OffsetDateTime) -> bool {
        self.action != ControlAction::Alert
            && self.lifted_at.is_none()
            && self.expires_at.is_none_or(|e| now < e)
    }

    /// Whether it applies to `session`. A control whose scope is a session applies to that
    /// session's descendants too (a session on whose delegation chain it stands).
    fn covers(&self, session: &Session) -> bool {
        let target = self.target.as_deref();
        match self.scope {
            ControlScope::Gateway => true,
            ControlScope::Agent => target == Some(session.agent.as_str()),
            ControlScope::Principal => target == Some(session.principal.as_str()),
            ControlScope::Session => {
                target == Some(session.id.as_str())
                    || session
                        .chain
                        .iter()
                        .any(|l| target == Some(l.session.as_str()))
            }
        }
    }
}

/// The controls that apply to one decision, strictest first. A field is `Some` with the
/// control that decided it; the posture may be frozen with no control (a poisoned lock).
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The posture in force for the session.
    pub posture: Posture,
    /// The control that set that posture (none: normal, or fail closed).
    pub posture_control: Option<Arc<Control>>,
    /// The control freezing the tool.
    pub tool_frozen: Option<Arc<Control>>,
    /// The control refusing the session.
    pub session_revoked: Option<Arc<Control>>,
}

impl Applied {
    /// What the policy decision point needs (besides the session's own revocation).
    pub fn pdp(&self, session_revoked: bool) -> warden_pdp::Controls {
        warden_pdp::Controls {
            posture: self.posture,
            session_revoked: session_revoked || self.session_revoked.is_some(),
            tool_frozen: self.tool_frozen.is_some(),
        }
    }

    /// The control that made a decision come out with `reason`, if a control did.
    pub fn changed(&self, reason: Reason) -> Option<&Control> {
        let control = match reason {
            Reason::ConservativePosture | Reason::PostureFrozen => self.posture_control.as_ref(),
            Reason::ToolFrozen => self.tool_frozen.as_ref(),
            Reason::SessionRevoked => self.session_revoked.as_ref(),
            Reason::Rule
            | Reason::DefaultPosture
            | Reason::ScopeExceeded
            | Reason::PrincipalAuthority
            | Reason::EvaluationError => None,
        };
        control.map(|c| &**c)
    }

    /// Why nothing of the session may run now, if a control says so (frozen, or refused).
    pub fn stopped(&self) -> Option<String> {
        if let Some(c) = &self.session_revoked {
            return Some(format!(
                "control `{}` refuses the session: {}",
                c.id, c.reason
            ));
        }
        if self.posture == Posture::Frozen {
            return Some(match &self.posture_control {
                Some(c) => format!("the posture is frozen by control `{}`: {}", c.id, c.reason),
                None => "the posture is frozen (the controls cannot be read)".to_owned(),
            });
        }
        None
    }
}

/// The controls in force: an in-memory snapshot read on every decision, and their table in
/// `state.db`. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Controls {
    pool: Option<SqlitePool>,
    /// On PostgreSQL: the shared store, and the last `changed` this instance has applied.
    shared: Option<(PgPool, std::sync::atomic::AtomicI64)>,
    snapshot: RwLock<Arc<Vec<Arc<Control>>>>,
}

impl Controls {
    /// No controls and no store (tests, and stores that never persist).
    pub fn in_memory() -> Controls {
        Controls {
            pool: None,
            shared: None,
            snapshot: RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// Opens the controls kept in `db` and reloads those not lifted (expired ones included:
    /// they no longer apply, and the sweeper records their expiry).
    pub async fn open(db: &StateDb) -> Result<Controls, StoreError> {
        let pool = match db.backend() {
            Backend::Sqlite(pool) => pool.clone(),
            Backend::Postgres(pool) => return shared::open(pool).await,
        };
        let rows = sqlx::query("SELECT body FROM controls WHERE state = 'in_force' ORDER BY id")
            .fetch_all(&pool)
            .await?;
        let mut loaded = Vec::with_capacity(rows.len());
        for row in rows {
            let body: String = row.try_get("body")?;
            let control: Control =
                serde_json::from_str(&body).map_err(|_| StoreError::Corrupt("controls.body"))?;
            loaded.push(Arc::new(control));
        }
        Ok(Controls {
            pool: Some(pool),
            shared: None,
            snapshot: RwLock::new(Arc::new(loaded)),
        })
    }

    fn current(&self) -> Option<Arc<Vec<Arc<Control>>>> {
        self.snapshot.read().ok().map(|s| s.clone())
    }

    fn swap(&self, f: impl FnOnce(&mut Vec<Arc<Control>>)) -> Result<(), StoreError> {
        let mut guard = self.snapshot.write().map_err(|_| StoreError::Poisoned)?;
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
        Ok(())
    }

    /// Which controls apply to `session` (and `tool`, when the call is a tool's) at `now`:
    /// the strictest posture, the first control freezing the tool, the first refusing the
    /// session. A poisoned lock reads as the frozen posture.
    pub fn applying(&self, session: &Session, tool: Option<&str>, now: OffsetDateTime) -> Applied {
        let Some(all) = self.current() else {
            return Applied {
                posture: Posture::Frozen,
                ..Applied::default()
            };
        };
        let mut applied = Applied::default();
        for c in all.iter().filter(|c| c.in_force(now) && c.covers(session)) {
            match c.action {
                ControlAction::Frozen => {
                    if applied.posture != Posture::Frozen {
                        applied.posture = Posture::Frozen;
                        applied.posture_control = Some(c.clone());
                    }
                }
                ControlAction::Conservative => {
                    if applied.posture == Posture::Normal {
                        applied.posture = Posture::Conservative;
                        applied.posture_control = Some(c.clone());
                    }
                }
                ControlAction::FreezeTool => {
                    if applied.tool_frozen.is_none() && tool.is_some() && c.tool.as_deref() == tool
                    {
                        applied.tool_frozen = Some(c.clone());
                    }
                }
                ControlAction::RevokeSession => {
                    if applied.session_revoked.is_none() {
                        applied.session_revoked = Some(c.clone());
                    }
                }
                ControlAction::Alert => {}
            }
        }
        applied
    }

    /// The controls in force at `now`, oldest first.
    pub fn in_force(&self, now: OffsetDateTime) -> Vec<Control> {
        self.current()
            .map(|all| {
                all.iter()
                    .filter(|c| c.in_force(now))
                    .map(|c| (**c).clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many controls are held in memory (in force, or expired and not yet swept).
    pub fn held(&self) -> usize {
        self.current().map_or(0, |all| all.len())
    }

    /// The control `id` held in memory.
    pub fn get(&self, id: &str) -> Option<Control> {
        self.current()?
            .iter()
            .find(|c| c.id == id)
            .map(|c| (**c).clone())
    }

    /// Every control stored, lifted, expired and alerts included: the newest
    /// [`MAX_CONTROLS_LISTED`], newest first.
    pub async fn list_all(&self) -> Result<Vec<Control>, StoreError> {
        if let Some((pool, _)) = &self.shared {
            return shared::list_all(pool).await;
        }
        let Some(pool) = &self.pool else {
            let mut all = self.current().ok_or(StoreError::Poisoned)?.to_vec();
            all.reverse();
            return Ok(all.into_iter().map(|c| (*c).clone()).collect());
        };
        let rows = sqlx::query("SELECT body FROM controls ORDER BY id DESC LIMIT ?")
            .bind(MAX_CONTROLS_LISTED)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| {
                let body: String = r.try_get("body")?;
                serde_json::from_str(&body).map_err(|_| StoreError::Corrupt("controls.body"))
            })
            .collect()
    }

    /// Stores a new control (an alert as `alert`, anything else as in force) without putting
    /// it in force: [`Controls::install`] does, once it is recorded.
    pub async fn store(&self, control: &Control) -> Result<(), StoreError> {
        let state = if control.action == ControlAction::Alert {
            "alert"
        } else {
            "in_force"
        };
        if let Some((pool, _)) = &self.shared {
            return shared::store(pool, control, state).await;
        }
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        sqlx::query("INSERT INTO controls (id, state, body) VALUES (?, ?, ?)")
            .bind(&control.id)
            .bind(state)
            .bind(body(control)?)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Forgets a stored control that could not be recorded (it never took effect).
    pub async fn unstore(&self, id: &str) -> Result<(), StoreError> {
        if let Some((pool, _)) = &self.shared {
            shared::unstore(pool, id).await?;
            return self.swap(|all| all.retain(|c| c.id != id));
        }
        if let Some(pool) = &self.pool {
            sqlx::query("DELETE FROM controls WHERE id = ?")
                .bind(id)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Puts a stored, recorded control in force: the next decision sees it.
    pub fn install(&self, control: Control) -> Result<(), StoreError> {
        // Replacing the same id: on PostgreSQL the follower may have put it in force already.
        self.swap(|all| {
            all.retain(|c| c.id != control.id);
            all.push(Arc::new(control));
        })
    }

    /// Writes a lifted control (`lifted_at`, `lifted_by` and `lift_reason` set) and takes it
    /// out of force. If the write fails the control stays in force (fail closed).
    pub async fn lift(&self, lifted: &Control) -> Result<(), StoreError> {
        self.finish(lifted, "lifted").await
    }

    /// Writes a control whose expiry passed and forgets it in memory.
    pub async fn expire(&self, expired: &Control) -> Result<(), StoreError> {
        self.finish(expired, "expired").await
    }

    async fn finish(&self, control: &Control, state: &str) -> Result<(), StoreError> {
        if let Some((pool, _)) = &self.shared {
            shared::finish(pool, control, state).await?;
        } else if let Some(pool) = &self.pool {
            sqlx::query("UPDATE controls SET state = ?, body = ? WHERE id = ?")
                .bind(state)
                .bind(body(control)?)
                .bind(&control.id)
                .execute(pool)
                .await?;
        }
        self.swap(|all| all.retain(|c| c.id != control.id))
    }

    /// The controls held in memory whose expiry passed at `now` (to record and forget).
    pub fn due(&self, now: OffsetDateTime) -> Vec<Control> {
        self.current()
            .map(|all| {
                all.iter()
                    .filter(|c| c.lifted_at.is_none() && c.expires_at.is_some_and(|e| now >= e))
                    .map(|c| (**c).clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn body(control: &Control) -> Result<String, StoreError> {
    serde_json::to_string(control).map_err(|_| StoreError::Corrupt("controls.body"))
}

#[cfg(test)]
mod tests;
