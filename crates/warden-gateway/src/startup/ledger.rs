//! Start-up, phase 2: the ledger (in the data directory, or this instance's chain in the
//! shared store), opened with its commits observed, and the charters' load recorded first.

use std::sync::Arc;

use anyhow::Context as _;
use serde_json::json;
use warden_audit::{Ledger, LedgerConfig, NewRecord, RecordKind};
use warden_charter::{CharterSet, CompiledCharter};
use warden_core::Clock;
use warden_session::StateDb;

use crate::config::Config;
use crate::telemetry::LedgerCommits;

/// Phase 2: the data directory (the owner's only; a secret others may read stops the start)
/// and the ledger, with the charter's load recorded first.
pub(super) async fn open_ledger(
    config: &Config,
    db: &StateDb,
    (set, shadow): (&CharterSet, Option<&Arc<CompiledCharter>>),
    clock: &Arc<dyn Clock>,
    telemetry: &Arc<warden_telemetry::Telemetry>,
) -> anyhow::Result<Ledger> {
    let ledger_config = LedgerConfig {
        max_size_bytes: config.ledger_max_bytes,
        ..LedgerConfig::default()
    };
    let commits = Arc::new(LedgerCommits(telemetry.clone()));
    let ledger = match db.postgres() {
        None => Ledger::open_observed(
            &config.data_dir,
            clock.clone(),
            ledger_config,
            Some(commits),
        )
        .await
        .with_context(|| format!("cannot open the ledger in `{}`", config.data_dir.display()))?,
        Some(pool) => {
            let instance = crate::store::instance(config)?;
            Ledger::open_postgres(
                pool.clone(),
                &instance,
                &config.data_dir,
                clock.clone(),
                ledger_config,
                Some(commits),
            )
            .await
            .with_context(|| {
                format!("cannot open the ledger of instance `{instance}` in the shared store")
            })?
        }
    };
    // One `charter_loaded` per agent, in agent order, all in one commit.
    let mut batch = Vec::with_capacity(set.len());
    for charter in set.iter() {
        let mut loaded = json!({
            "charter": charter.hash,
            "agent": charter.identity.id,
            "files": charter.files,
            "rules": charter.rules.len(),
        });
        // The shadow charter's hash, beside the live charter of its agent.
        if let (Some(shadow), Some(obj)) = (
            shadow
                .filter(|s| s.identity.id == charter.identity.id)
                .and_then(|s| crate::governor::shadow::loaded_field(Some(s))),
            loaded.as_object_mut(),
        ) {
            obj.insert("shadow".to_owned(), shadow);
        }
        batch.push(NewRecord {
            session: None,
            kind: RecordKind::CharterLoaded,
            payload: loaded,
        });
    }
    ledger
        .append_batch(batch)
        .await
        .context("cannot write to the ledger")?;
    Ok(ledger)
}
