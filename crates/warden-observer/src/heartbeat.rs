//! The heartbeat: `POST /v1/observer/heartbeat` with the last record read, every
//! `interval` (a third of the charter's `heartbeat_deadline`, so two may be lost before the
//! gateway's dead man's switch engages).
//!
//! Sent only while the ledger stream is connected: an observer that cannot read the ledger
//! is not watching, and its silence lets the switch engage — the fail-closed choice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::gateway::{GatewayClient, body_snippet};

/// Sends heartbeats every `interval` until `cancel`.
pub async fn run(
    gateway: GatewayClient,
    interval: Duration,
    last_read: Arc<AtomicU64>,
    connected: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if !connected.load(Ordering::Relaxed) {
            tracing::debug!("No heartbeat: the ledger stream is not connected.");
            continue;
        }
        let head = last_read.load(Ordering::Relaxed);
        let sent = gateway
            .request(reqwest::Method::POST, "/v1/observer/heartbeat")
            .timeout(interval.max(Duration::from_secs(1)))
            .json(&json!({ "head": head }))
            .send()
            .await;
        let problem = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => {
                let status = r.status();
                Some(format!("{status}: {}", body_snippet(r, 256).await))
            }
            Err(e) => Some(e.to_string()),
        };
        tracing::debug!(head, ok = problem.is_none(), "Heartbeat sent.");
        match problem {
            None if failing => {
                failing = false;
                tracing::info!("The gateway takes the observer's heartbeat again.");
            }
            None => {}
            Some(p) => {
                if !failing {
                    tracing::error!(error = %p, "The observer's heartbeat failed; the gateway's dead man's switch may engage.");
                }
                failing = true;
            }
        }
    }
}
