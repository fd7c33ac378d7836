//! Other instances' changes to the controls, applied to this instance (see [`crate::fleet`]).
//!
//! What it guarantees: on PostgreSQL, a control set, lifted, expired or forgotten through any
//! instance is applied to this instance's in-memory snapshot (the one every decision and
//! model call reads) on its notice (`Notice::Changed` on the controls' channel: that row as
//! it is now) and on every poll (`Notice::Poll`, every second and after a reconnect, or a
//! lagged receiver: every row changed since the last look). So it is in force here within
//! about a second, notification or not. A read that fails is logged and made good by the
//! next poll. Nothing runs on SQLite.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_session::{Channel, Controls, Notice, Notices};

use crate::app_state::AppState;

/// Starts following the controls on `tasks` until `stop` (nothing on SQLite).
pub fn spawn(state: &AppState, tasks: &TaskTracker, stop: CancellationToken) {
    let notices = state.state_db.notices();
    if !notices.is_live() {
        return;
    }
    let controls = state.controls.controls.clone();
    tasks.spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = follow(controls, notices) => {}
        }
    });
}

/// Applies the controls' notices to `controls` until the notices end.
pub async fn follow(controls: Arc<Controls>, notices: Notices) {
    let mut rx = notices.subscribe();
    // Whatever changed before subscribing.
    poll(&controls).await;
    loop {
        match rx.recv().await {
            Ok(Notice::Changed {
                channel: Channel::Controls,
                id,
            }) => {
                if let Err(e) = controls.apply_changed(&id).await {
                    tracing::warn!(error = %e, control = %id, "A control changed on another instance could not be read; the next poll reads it.");
                }
            }
            Ok(Notice::Changed { .. }) => {}
            Ok(Notice::Poll) | Err(RecvError::Lagged(_)) => poll(&controls).await,
            Err(RecvError::Closed) => return,
        }
    }
}

async fn poll(controls: &Controls) {
    if let Err(e) = controls.apply_since().await {
        tracing::warn!(error = %e, "The controls changed on other instances could not be read; trying again at the next poll.");
    }
}
