//! The dead man's switch, and the sweeper of expired controls: one task on the gateway's
//! tracker.
//!
//! When the charter says the observer is required (`observer.required`) and no heartbeat of
//! an observer credential arrived within `observer.heartbeat_deadline` (counted from start-up,
//! then from the last heartbeat), the gateway sets a gateway-scoped `conservative` control of
//! its own (`set_by.role = "gateway"`) and records `observer_heartbeat_missed` with it; when
//! the observer is heard again, it lifts that control (only the switch's own, never one an
//! operator or the observer set) and records `observer_heartbeat_restored`. So the agent
//! cannot keep the gateway permissive by killing the observer.
//!
//! The switch's control survives a restart like any other; the switch adopts it at start-up
//! (and lifts it at the observer's next heartbeat, or at once if the charter no longer
//! requires an observer). If an admin lifts it by hand, a new deadline starts from then.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use warden_charter::ObserverSettings;
use warden_core::{NewRecord, RecordKind};
use warden_operator::controls::ControlDesk;
use warden_session::{Actor, Control, ControlAction, ControlScope};

/// How often expiries and the deadline are checked (a heartbeat wakes the task at once).
const TICK: Duration = Duration::from_millis(250);

/// The switch's own identity, as its controls name it.
fn gateway() -> Actor {
    Actor {
        id: "gateway".to_owned(),
        name: "dead man's switch".to_owned(),
        role: "gateway".to_owned(),
    }
}

/// `10s`, `2m`: a deadline as the switch's reason says it.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Runs until `stop`: sweeps expired controls, and (when required) keeps the switch.
pub(crate) async fn run(
    desk: Arc<ControlDesk>,
    settings: ObserverSettings,
    stop: CancellationToken,
) {
    let deadline = settings.heartbeat_deadline;
    // The switch's control in force, if any: adopted from before a restart.
    let mut switched: Option<String> = desk
        .controls
        .in_force(desk.now())
        .into_iter()
        .find(|c| c.set_by.role == "gateway")
        .map(|c| c.id);
    let mut since = Instant::now();
    // The last heartbeat already taken into account: only a newer one is "heard" (the same
    // one, seen again at the next tick, must not lift the switch it failed to prevent).
    let mut accounted: Option<Instant> = None;
    loop {
        desk.sweep().await;
        let heard = desk
            .last_heard()
            .filter(|h| *h >= since && Some(*h) != accounted);
        if let Some(h) = heard {
            since = h;
            accounted = Some(h);
        }
        if let Some(id) = switched.clone() {
            if desk.controls.get(&id).is_none() {
                // Lifted by an admin (or expired): a new deadline starts now.
                switched = None;
                since = Instant::now();
            } else if !settings.required || heard.is_some() {
                let why = if settings.required {
                    "the observer was heard again"
                } else {
                    "the charter no longer requires an observer"
                };
                let restored = NewRecord::new(
                    None,
                    RecordKind::ObserverHeartbeatRestored,
                    json!({ "control": id, "deadline_secs": deadline.as_secs() }),
                );
                match desk.lift(&id, gateway(), why, vec![restored]).await {
                    Ok(_) => switched = None,
                    Err(e) => {
                        tracing::error!(error = %e, "The dead man's switch could not lift its control; it stays in force.")
                    }
                }
            }
        } else if settings.required && since.elapsed() >= deadline {
            let reason = format!(
                "the observer has not been heard from within {}",
                human(deadline)
            );
            let control = Control {
                id: uuid::Uuid::now_v7().to_string(),
                action: ControlAction::Conservative,
                scope: ControlScope::Gateway,
                target: None,
                tool: None,
                reason,
                evidence: Vec::new(),
                detector: None,
                set_by: gateway(),
                set_at: desk.now(),
                expires_at: None,
                lifted_at: None,
                lifted_by: None,
                lift_reason: None,
            };
            let missed = NewRecord::new(
                None,
                RecordKind::ObserverHeartbeatMissed,
                json!({ "control": control.id, "deadline_secs": deadline.as_secs() }),
            );
            match desk.set(control, vec![missed]).await {
                Ok(c) => {
                    tracing::warn!(control = %c.id, "The observer has not been heard from within its deadline; the gateway is in the conservative posture.");
                    switched = Some(c.id);
                }
                // Retried on the next tick.
                Err(e) => {
                    tracing::error!(error = %e, "The dead man's switch could not set its control.")
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = desk.next_beat() => {}
            () = stop.cancelled() => break,
        }
    }
}
