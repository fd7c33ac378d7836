//! Stopping the gateway in phases, and waiting for the signal that asks for it.

use std::time::Duration;

use serde_json::json;
use warden_audit::{NewRecord, RecordKind};
use warden_session::LedgerMark;

use crate::startup::RunningGateway;

/// How long shutdown waits for the final checkpoint to be signed and recorded.
const FINAL_CHECKPOINT_WAIT: Duration = Duration::from_secs(5);

impl RunningGateway {
    /// Stops the gateway, in phases:
    /// 1. stop accepting connections, and
    /// 2. answer every call waiting for approval at once (refused for now; its request stays
    ///    open in the state store, decidable after a restart), and stop the sweeper and the
    ///    webhook (the governor's token), so that
    /// 3. in-flight requests drain, within the shutdown grace;
    /// 4. record every forwarded action whose result never came as `unknown`, record the stop,
    ///    sign the final checkpoint (when a key is configured: it covers every record before
    ///    it), flush the ledger and write its head to `state.db` (the ledger mark);
    /// 5. disconnect the upstream servers and close the stores.
    pub async fn shutdown(self) {
        // Phases 1 and 2: one token stops the listeners and answers the calls waiting for approval.
        self.stop.cancel();
        // Phase 3.
        if tokio::time::timeout(self.grace, self.servers.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_seconds = self.grace.as_secs(),
                "Shutdown grace expired; in-flight requests were cut off."
            );
        }
        self.mcp_cancel.cancel();
        // Model calls still relaying or recording finish before the ledger closes.
        self.model_tasks.close();
        if tokio::time::timeout(self.grace, self.model_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Model calls were still being recorded when the grace expired.");
        }
        // Phase 4. Every forwarded action still without a recorded result ends in the ledger
        // as `unknown` before the stop is recorded.
        self.state.governor.record_cut_off_at_shutdown().await;
        let ledger = self.state.governor.ledger().clone();
        let _ = ledger
            .append(NewRecord {
                session: None,
                kind: RecordKind::GatewayStopped,
                payload: json!({}),
            })
            .await;
        // The last record of a cleanly stopped ledger: a checkpoint of everything before it.
        if let Some(signer) = &self.checkpoints
            && tokio::time::timeout(FINAL_CHECKPOINT_WAIT, signer.sign_final())
                .await
                .is_err()
        {
            tracing::warn!(
                "The final checkpoint was not recorded within 5s; the ledger closes without it."
            );
        }
        if let Err(e) = ledger.shutdown().await {
            tracing::error!(error = %e, "The ledger did not flush cleanly.");
        }
        // The ledger's final head, for `warden audit verify` to compare (see `LedgerMark`).
        if let Err(e) = LedgerMark::new(&self.state.state_db)
            .record(ledger.committed_head())
            .await
        {
            tracing::warn!(error = %e, "The ledger mark could not be written to the state store.");
        }
        // Phase 5.
        self.background_cancel.cancel();
        self.background.close();
        if tokio::time::timeout(Duration::from_secs(5), self.background.wait())
            .await
            .is_err()
        {
            tracing::warn!("Upstream servers did not disconnect within 5s.");
        }
        self.state.state_db.close().await;
        tracing::info!("Gateway stopped.");
    }

    /// Serves until `signals` delivers SIGINT or SIGTERM, then shuts down.
    pub async fn run_until_signal(self, mut signals: StopSignals) {
        signals.recv().await;
        tracing::info!("Signal received; shutting down.");
        self.shutdown().await;
    }
}

/// SIGINT and SIGTERM, watched from the moment [`StopSignals::watch`] returns: from then on
/// neither takes its default action (ending the process at once, before the ledger records the
/// stop); each asks [`RunningGateway::run_until_signal`] for a clean shutdown. Watch them before
/// the gateway starts, so a signal that arrives as soon as the planes answer is never lost.
#[derive(Debug)]
pub struct StopSignals {
    #[cfg(unix)]
    watched: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    /// Watches SIGINT and SIGTERM now (call it inside the runtime). If they cannot be watched
    /// (logged), Ctrl-C is awaited the portable way instead.
    pub fn watch() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let watched = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some((int, term)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "SIGINT/SIGTERM cannot be watched; only Ctrl-C stops the gateway cleanly.");
                    None
                }
            };
            StopSignals { watched }
        }
        #[cfg(not(unix))]
        {
            StopSignals {}
        }
    }

    /// Waits for the next SIGINT or SIGTERM.
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.watched {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
