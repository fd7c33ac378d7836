//! `SIGHUP`: one handler reloads the planes' TLS certificates (when a plane serves TLS) and
//! then the charter (`via: "sighup"`).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Via, reload};
use crate::app_state::AppState;
use crate::tls::Tls;

/// Watches `SIGHUP` now (so a signal sent once start-up has returned never takes its default
/// action, which ends the process) and returns the task that, on each one until `stop`,
/// reloads `tls` and then the charter (run it on a task tracker). A failed TLS reload keeps
/// the certificates in use, a refused charter reload keeps the charter in force; both are
/// logged (and the charter's refusal recorded), and neither stops the other. `None` if the
/// signal cannot be watched (logged).
pub fn on_sighup(
    state: Arc<AppState>,
    tls: Tls,
    stop: CancellationToken,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP cannot be watched; certificates and the charter are not reloaded on it.");
            return None;
        }
    };
    Some(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    if tls.any() {
                        tracing::info!("SIGHUP: reloading the TLS certificates.");
                        let _ = tls.reload();
                    }
                    tracing::info!("SIGHUP: reloading the charters.");
                    match reload(&state, Via::Sighup, None, None).await {
                        Ok(loaded) if loaded.unchanged => {
                            tracing::info!("SIGHUP: the charters are unchanged.");
                        }
                        // Logged by the reload itself.
                        Ok(_) | Err(_) => {}
                    }
                }
            }
        }
    })
}
