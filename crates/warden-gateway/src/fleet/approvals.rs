//! Other instances' changes to the approvals, applied to this instance (see [`crate::fleet`]).
//!
//! On PostgreSQL every instance decides every request: a vote, a denial, the use of a grant
//! or a timeout is committed by whichever instance made it, with a notification
//! (`Channel::Approvals`, the request id). This follower applies them to the requests this
//! instance holds in memory, so a call waiting here is released (or refused) by a decision
//! made through any instance:
//!
//! - `Changed(Approvals, id)`: the request is re-read from the store and its entry brought up
//!   to date (its watch channel wakes the waiting calls); a request another instance raised
//!   is loaded, so this instance can join, decide and time it out too.
//! - `Poll` (every second, after a reconnect, and when notices were missed): every request
//!   held is compared with the store by its row version, and the open ones other instances
//!   raised are loaded ([`ApprovalStore::reconcile`](warden_approval::ApprovalStore::reconcile)).
//!
//! A store error is logged and the next poll tries again: a call waiting meanwhile keeps
//! waiting (bounded by its deadline), and nothing is decided from memory alone: every change
//! locks and re-reads the request's row first. On SQLite nothing is followed.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_approval::Approvals;
use warden_session::{Channel, Notice, Notices};

use crate::AppState;

/// The longest request id a notification may name (ours are UUIDs); a longer payload is
/// ignored.
const MAX_ID_BYTES: usize = 128;

/// Starts following other instances' changes to the approvals of `state` on `tasks`, until
/// `stop` (nothing on SQLite).
pub fn spawn(state: &AppState, tasks: &TaskTracker, stop: CancellationToken) {
    follow(
        state.governor.approvals().clone(),
        &state.state_db.notices(),
        tasks,
        stop,
    );
}

/// Applies the approval notices of `notices` to `approvals`' store on a task of `tasks` until
/// `stop`. Returns whether anything is followed (false on SQLite, or without notices).
pub fn follow(
    approvals: Arc<Approvals>,
    notices: &Notices,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> bool {
    if !notices.is_live() || !approvals.store().is_shared() {
        return false;
    }
    let mut rx = notices.subscribe();
    tasks.spawn(async move {
        loop {
            let notice = tokio::select! {
                () = stop.cancelled() => break,
                n = rx.recv() => n,
            };
            match notice {
                Ok(Notice::Changed {
                    channel: Channel::Approvals,
                    id,
                }) => {
                    if id.is_empty() || id.len() > MAX_ID_BYTES {
                        continue;
                    }
                    if let Err(e) = approvals.store().refresh(&id, approvals.now()).await {
                        tracing::warn!(error = %e, approval = %id, "Another instance's change to an approval could not be read; the next poll tries again.");
                    }
                }
                Ok(Notice::Changed { .. }) => {}
                Ok(Notice::Poll) | Err(RecvError::Lagged(_)) => {
                    if let Err(e) = approvals.store().reconcile(approvals.now()).await {
                        tracing::warn!(error = %e, "The approvals could not be compared with the store; the next poll tries again.");
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
    true
}
