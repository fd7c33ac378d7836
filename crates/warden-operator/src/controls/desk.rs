//! The one write path of controls, shared by the control routes and the gateway's dead man's
//! switch: set (stored, then recorded, then in force), lift (recorded, then stored, then out
//! of force), expire (recorded when first noticed), and the observer's heartbeat.
//!
//! Writes are serialised by one lock, so a set and a lift of the same control, or two lifts,
//! never interleave: each sees the other's outcome.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::Notify;
use warden_core::{Clock, NewRecord, RecordKind, Recorder};
use warden_session::controls::MAX_CONTROLS_IN_FORCE;
use warden_session::{Actor, Control, ControlAction, Controls};

/// Why a control could not be set or lifted.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// As many controls as allowed are in force.
    #[error("{MAX_CONTROLS_IN_FORCE} controls are in force already; lift some first")]
    TooMany,
    /// No control has this id.
    #[error("no control `{0}`")]
    Unknown(String),
    /// The control was lifted or has expired.
    #[error("control `{0}` is not in force (lifted or expired)")]
    NotInForce(String),
    /// The ledger could not record it: nothing changed.
    #[error("the ledger cannot record it, so nothing changed: {0}")]
    Ledger(String),
    /// The state store failed.
    #[error("the state store failed: {0}")]
    Store(#[from] warden_session::StoreError),
}

/// The controls, with the recorder and the lock their writes go through, and the observer's
/// last heartbeat.
#[derive(Debug)]
pub struct ControlDesk {
    /// The controls (read on every decision).
    pub controls: Arc<Controls>,
    recorder: Arc<dyn Recorder>,
    clock: Arc<dyn Clock>,
    writes: tokio::sync::Mutex<()>,
    heard: Mutex<Option<tokio::time::Instant>>,
    beat: Notify,
}

impl ControlDesk {
    /// A desk over `controls`, recording through `recorder`.
    pub fn new(
        controls: Arc<Controls>,
        recorder: Arc<dyn Recorder>,
        clock: Arc<dyn Clock>,
    ) -> ControlDesk {
        ControlDesk {
            controls,
            recorder,
            clock,
            writes: tokio::sync::Mutex::new(()),
            heard: Mutex::new(None),
            beat: Notify::new(),
        }
    }

    /// The time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Sets `control`: stored, then recorded (`control_set` with `also` in the same commit),
    /// then in force. An alert is stored and recorded as `observer_alert`, and put in force
    /// never. If the ledger cannot record it, it is forgotten and nothing changes.
    pub async fn set(&self, control: Control, also: Vec<NewRecord>) -> Result<Control, DeskError> {
        let _writing = self.writes.lock().await;
        let alert = control.action == ControlAction::Alert;
        // Expired controls still held do not count: sweep them first when at the bound.
        if !alert
            && self.controls.held() >= MAX_CONTROLS_IN_FORCE
            && (self.sweep_held().await == 0 || self.controls.held() >= MAX_CONTROLS_IN_FORCE)
        {
            return Err(DeskError::TooMany);
        }
        self.commit(control, also, alert).await
    }

    async fn commit(
        &self,
        control: Control,
        also: Vec<NewRecord>,
        alert: bool,
    ) -> Result<Control, DeskError> {
        self.controls.store(&control).await?;
        let kind = if alert {
            RecordKind::ObserverAlert
        } else {
            RecordKind::ControlSet
        };
        let session = session_of(&control);
        let mut batch = vec![NewRecord::new(
            session.as_deref(),
            kind,
            serde_json::to_value(&control).unwrap_or_default(),
        )];
        batch.extend(also);
        if let Err(e) = self.recorder.append_batch(batch).await {
            if let Err(se) = self.controls.unstore(&control.id).await {
                tracing::error!(error = %se, "A control the ledger could not record stays stored; it will be reloaded at start-up.");
            }
            return Err(DeskError::Ledger(e.to_string()));
        }
        if !alert {
            self.controls.install(control.clone())?;
        }
        Ok(control)
    }

    /// Lifts control `id`: `control_lifted` (with `also`) recorded first, then stored, then
    /// out of force. If the store fails after the record, it stays in force (fail closed).
    pub async fn lift(
        &self,
        id: &str,
        by: Actor,
        reason: &str,
        also: Vec<NewRecord>,
    ) -> Result<Control, DeskError> {
        let _writing = self.writes.lock().await;
        let now = self.clock.now();
        let Some(mut control) = self.controls.get(id) else {
            return Err(match self.known(id).await? {
                true => DeskError::NotInForce(id.to_owned()),
                false => DeskError::Unknown(id.to_owned()),
            });
        };
        if !control.in_force(now) {
            return Err(DeskError::NotInForce(id.to_owned()));
        }
        let payload = json!({ "id": id, "by": by, "reason": reason });
        let mut batch = vec![NewRecord::new(
            session_of(&control).as_deref(),
            RecordKind::ControlLifted,
            payload,
        )];
        batch.extend(also);
        self.recorder
            .append_batch(batch)
            .await
            .map_err(|e| DeskError::Ledger(e.to_string()))?;
        control.lifted_at = Some(now);
        control.lifted_by = Some(by);
        control.lift_reason = Some(reason.to_owned());
        self.controls.lift(&control).await?;
        Ok(control)
    }

    async fn known(&self, id: &str) -> Result<bool, DeskError> {
        Ok(self.controls.list_all().await?.iter().any(|c| c.id == id))
    }

    /// Records `control_expired` for every control whose expiry passed, and forgets them.
    /// Returns how many. One the ledger cannot record is tried again on the next sweep (it
    /// no longer applies either way). On PostgreSQL each expiry is recorded by one instance
    /// of the fleet (see `Controls::claim_expiry`).
    pub async fn sweep(&self) -> usize {
        let _writing = self.writes.lock().await;
        self.sweep_held().await
    }

    /// [`ControlDesk::sweep`], with the write lock held.
    async fn sweep_held(&self) -> usize {
        let due = self.controls.due(self.clock.now());
        let mut swept = 0;
        for control in due {
            // On PostgreSQL one instance of the fleet records each expiry: the one whose
            // conditional state change succeeds; the others only forget it.
            match self.controls.claim_expiry(&control).await {
                Ok(true) => {}
                Ok(false) => {
                    if self.controls.forget(&control.id).is_ok() {
                        swept += 1;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "An expired control could not be claimed in the state store; trying again later.");
                    break;
                }
            }
            let record = NewRecord::new(
                session_of(&control).as_deref(),
                RecordKind::ControlExpired,
                json!({ "id": control.id }),
            );
            if let Err(e) = self.recorder.append(record).await {
                tracing::warn!(error = %e, "The ledger cannot record an expired control; trying again later.");
                if let Err(e) = self.controls.unclaim_expiry(&control).await {
                    tracing::warn!(error = %e, "An expired control could not be given back for recording.");
                }
                break;
            }
            if let Err(e) = self.controls.expire(&control).await {
                tracing::warn!(error = %e, "An expired control could not be written to the state store.");
                break;
            }
            swept += 1;
        }
        swept
    }

    /// The observer was heard (its credential's heartbeat).
    pub fn observer_heard(&self) {
        *self.heard.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(tokio::time::Instant::now());
        self.beat.notify_waiters();
    }

    /// When the observer was last heard, if ever since start-up.
    pub fn last_heard(&self) -> Option<tokio::time::Instant> {
        *self.heard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the next heartbeat of the observer.
    pub async fn next_beat(&self) {
        self.beat.notified().await;
    }
}

/// The session a control's records belong to: its target, for a session-scoped one.
fn session_of(control: &Control) -> Option<String> {
    match control.scope {
        warden_session::ControlScope::Session => control.target.clone(),
        _ => None,
    }
}
