//! Other instances' changes to the sessions, applied to this instance (see [`crate::fleet`]).
//!
//! On PostgreSQL each instance holds the sessions it serves in memory. This follower applies
//! what other instances commit — a revocation, labels, trusted text — to those held here: on
//! `Changed(Sessions, id)` the session `id` (if held) is read again, and on `Poll` (every
//! second, and after the listener reconnects) every held session is, and those revoked or
//! expired are evicted. So a session revoked anywhere is refused here within a second, even
//! between requests: a call waiting for an approval, or a long call, checks
//! `Session::is_revoked`. On SQLite nothing comes and nothing runs.
//!
//! A store error is logged and retried at the next notice; meanwhile each request still reads
//! its session current from the store (or is refused when it cannot).

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_session::{Notice, Notices, SessionStore};

use crate::AppState;

/// Starts the follower on `tasks` until `stop` (nothing on SQLite).
pub fn spawn(state: &Arc<AppState>, tasks: &TaskTracker, stop: CancellationToken) {
    let governor = state.governor.clone();
    follow(
        state.sessions.clone(),
        &state.state_db.notices(),
        move || governor.now(),
        tasks,
        stop,
    );
}

/// Applies `notices` to `sessions` on `tasks` until `stop`, with `now` for expiry (nothing
/// when the notices never come: SQLite).
pub fn follow(
    sessions: SessionStore,
    notices: &Notices,
    now: impl Fn() -> OffsetDateTime + Send + 'static,
    tasks: &TaskTracker,
    stop: CancellationToken,
) {
    if !notices.is_live() {
        return;
    }
    let mut rx = notices.subscribe();
    tasks.spawn(async move {
        loop {
            let notice = tokio::select! {
                () = stop.cancelled() => break,
                got = rx.recv() => match got {
                    Ok(n) => n,
                    // Missed some: read everything again.
                    Err(RecvError::Lagged(_)) => Notice::Poll,
                    Err(RecvError::Closed) => break,
                },
            };
            if let Err(e) = sessions.follow(&notice, now()).await {
                tracing::warn!(error = %e, "Other instances' session changes could not be read; retrying at the next notice.");
            }
        }
    });
}
