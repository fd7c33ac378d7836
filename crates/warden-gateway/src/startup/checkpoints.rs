//! Signed checkpoints: the task that signs the ledger's tree head every N records or T seconds,
//! when a key is configured (see docs/checkpoints.md).
//!
//! - The key is loaded once, here, at start-up: a key file that cannot be read, is malformed,
//!   is a link or that its group or others may read stops the start (nothing is signed with a
//!   key that may have leaked).
//! - The signer follows [`Ledger::watch_tree`] on the background tracker, never on the action
//!   path: it signs the published tree head (size and root, consistent by construction) once
//!   `every_records` records were added since the last checkpoint, or at each `every` tick when
//!   any was, and at start-up when the ledger grew since its last checkpoint. Each checkpoint
//!   is appended as a `checkpoint_signed` record (the note, and its origin, size and root).
//! - A checkpoint whose only new record would be the previous `checkpoint_signed` is never
//!   signed, so an idle ledger does not grow by one checkpoint a minute.
//! - A failed append is logged and signed again at the next trigger; nothing waits on it.
//! - At shutdown [`CheckpointSigner::sign_final`] stops the loop and signs the head after the
//!   last records, before the ledger closes: a cleanly stopped ledger ends with a checkpoint
//!   of everything before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use warden_audit::checkpoint::{Checkpoint, SigningKey, default_origin};
use warden_audit::{Ledger, LedgerReader, NewRecord, RecordKind};

use super::{Background, StartError};
use crate::app_state::AppState;
use crate::config::Config;
use crate::governor::Governor;

/// The running signer, as shutdown holds it.
pub(crate) struct CheckpointSigner {
    signer: Arc<Signer>,
    stop: CancellationToken,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key", &self.signer.key)
            .field("origin", &self.signer.origin)
            .finish()
    }
}

impl CheckpointSigner {
    /// Stops the periodic signing and signs the ledger's head if it grew since the last
    /// checkpoint: called after the last records, before the ledger closes. Waits for a
    /// signing in progress to finish first (so the final checkpoint is the last record).
    pub(crate) async fn sign_final(&self) {
        self.stop.cancel();
        self.signer.sign_if_grown("shutdown").await;
    }
}

/// What signs, and what was signed last.
struct Signer {
    key: SigningKey,
    origin: String,
    ledger: Ledger,
    governor: Arc<Governor>,
    /// The tree size past which the ledger "grew": the last checkpoint's size, or the seq of
    /// its own record when that record was the only one added after it.
    baseline: AtomicU64,
    /// Held while signing and appending: one checkpoint at a time, in order.
    signing: Mutex<()>,
}

impl Signer {
    fn grown_by(&self, size: u64) -> u64 {
        size.saturating_sub(self.baseline.load(Ordering::Acquire))
    }

    /// Signs the current tree head and appends it, if the tree grew since the last
    /// checkpoint. A failed append is logged; the next trigger signs again.
    async fn sign_if_grown(&self, trigger: &'static str) {
        let _one_at_a_time = self.signing.lock().await;
        let head = *self.ledger.watch_tree().borrow();
        if head.size == 0 || self.grown_by(head.size) == 0 {
            return;
        }
        let now = self.governor.now();
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: head.size,
            root: head.root,
            time: Some(now.replace_nanosecond(0).unwrap_or(now)),
        };
        let note = self.key.sign(&checkpoint);
        let record = NewRecord {
            session: None,
            kind: RecordKind::CheckpointSigned,
            payload: checkpoint.record_payload(&note),
        };
        match self.ledger.append(record).await {
            Ok(appended) => {
                // Our own record directly after the signed size is not "growth".
                let baseline = if appended.seq == head.size + 1 {
                    appended.seq
                } else {
                    head.size
                };
                self.baseline.store(baseline, Ordering::Release);
                self.governor.telemetry.checkpoint_signed(head.size);
                tracing::debug!(
                    size = head.size,
                    seq = appended.seq,
                    trigger,
                    "Checkpoint signed."
                );
            }
            Err(e) => {
                self.governor.telemetry.checkpoint_failure();
                tracing::warn!(
                    error = %e,
                    size = head.size,
                    trigger,
                    "The signed checkpoint could not be recorded; it is signed again at the next trigger."
                );
            }
        }
    }
}

/// Reads the checkpoint signing key `config` names, if any (phase 1, before anything is
/// opened or bound): a key that cannot be read, is malformed, or that others may read or
/// write refuses the start.
pub(super) fn load_key(config: &Config) -> Result<Option<SigningKey>, StartError> {
    let Some(settings) = &config.checkpoints else {
        return Ok(None);
    };
    let key = SigningKey::load(&settings.key).with_context(|| {
        format!(
            "cannot use the checkpoint signing key `{}` ([checkpoints] key or WARDEN_CHECKPOINT_KEY)",
            settings.key.display()
        )
    })?;
    Ok(Some(key))
}

/// Starts the checkpoint signer with `key` (from [`load_key`]), when `config` names one:
/// finds the last checkpoint in the ledger and spawns the signing loop on the background
/// tracker.
pub(super) async fn spawn(
    config: &Config,
    key: Option<SigningKey>,
    state: &Arc<AppState>,
    background: &Background,
) -> Result<Option<CheckpointSigner>, StartError> {
    let (Some(settings), Some(key)) = (config.checkpoints.clone(), key) else {
        return Ok(None);
    };
    let ledger = state.governor.ledger().clone();
    let origin = settings
        .origin
        .clone()
        .unwrap_or_else(|| default_origin(ledger.id()));
    let baseline = last_checkpoint_baseline(&ledger.source()).await?;
    tracing::info!(
        key = %key.verifier().to_string(),
        origin = %origin,
        every_records = settings.every_records,
        every_seconds = settings.every.as_secs(),
        "Signing checkpoints of the ledger."
    );
    let signer = Arc::new(Signer {
        key,
        origin,
        ledger,
        governor: state.governor.clone(),
        baseline: AtomicU64::new(baseline),
        signing: Mutex::new(()),
    });
    let stop = CancellationToken::new();
    // The loop also ends with the gateway's stop (phase 1): what comes after is signed by
    // `sign_final`.
    let ends = [stop.clone(), background.stop.clone()];
    background.tasks.spawn(run(
        signer.clone(),
        settings.every_records,
        settings.every,
        ends,
    ));
    Ok(Some(CheckpointSigner { signer, stop }))
}

/// The baseline left by the last `checkpoint_signed` record of the ledger (0 when there is
/// none): its size, or its own seq when it directly follows the size it signed.
async fn last_checkpoint_baseline(source: &warden_audit::LedgerSource) -> Result<u64, StartError> {
    let reader = LedgerReader::open_source(source)
        .await
        .context("cannot open the ledger for reading (checkpoints)")?;
    let last = reader
        .newest_of_kinds(&[RecordKind::CheckpointSigned.as_str()], None, 1)
        .await
        .context("cannot read the ledger's last checkpoint")?;
    reader.close().await;
    let Some(record) = last.first() else {
        return Ok(0);
    };
    let size = record
        .payload
        .get("size")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    Ok(if record.seq == size + 1 {
        record.seq
    } else {
        size
    })
}

/// The signing loop: at start, at every `every_records` records, at every tick when the tree
/// grew; until one of `ends` is cancelled.
async fn run(
    signer: Arc<Signer>,
    every_records: u64,
    every: Duration,
    [stop, gateway_stop]: [CancellationToken; 2],
) {
    signer.sign_if_grown("start").await;
    let mut tree = signer.ledger.watch_tree();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = gateway_stop.cancelled() => break,
            changed = tree.changed() => {
                if changed.is_err() {
                    break;
                }
                let size = tree.borrow_and_update().size;
                if signer.grown_by(size) >= every_records {
                    signer.sign_if_grown("records").await;
                }
            }
            _ = tick.tick() => signer.sign_if_grown("interval").await,
        }
    }
}
