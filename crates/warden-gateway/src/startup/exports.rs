//! Export: one task per configured sink, each following the ledger's committed head with a
//! read-only reader of its own (see docs/export.md).
//!
//! Every sink is opened before the gateway serves: a cursor that is garbage or past the
//! ledger's head, or a file export that does not continue this ledger, stops the start (fail
//! closed: a sink never skips records). The tasks run on the background tracker until its
//! token, which shutdown cancels in its last phase, after the ledger's final records; each
//! sink then sends what is left within `warden_export::exporter::FINAL_FLUSH` (3 s).

use std::sync::Arc;

use anyhow::Context as _;
use warden_audit::LedgerReader;
use warden_export::Exporter;

use super::{Background, StartError};
use crate::app_state::AppState;
use crate::config::Config;

/// Opens every configured sink, then starts one exporter task per sink.
pub(super) async fn spawn(
    config: &Config,
    state: &Arc<AppState>,
    background: &Background,
) -> Result<(), StartError> {
    if config.exports.is_empty() {
        return Ok(());
    }
    let ledger = state.governor.ledger();
    // The ledger's identity the sinks send (`{"ledger": ..}`, the OTLP resource's
    // `warden.ledger`): the id made with the ledger, the one its checkpoints' origin names.
    let ledger_id = ledger.id().to_owned();
    let mut opened = Vec::new();
    for sink in &config.exports {
        let reader = LedgerReader::open_source(&ledger.source())
            .await
            .context("cannot open the ledger for reading (export)")?;
        let exporter = Exporter::open(sink.clone(), &config.data_dir, &reader, &ledger_id)
            .await
            .with_context(|| format!("cannot start the export sink `{}`", sink.name))?;
        opened.push((exporter, reader));
    }
    for (exporter, reader) in opened {
        background.tasks.spawn(exporter.run(
            reader,
            ledger.watch_head(),
            ledger.clone(),
            state.governor.telemetry.clone(),
            background.cancel.clone(),
        ));
    }
    Ok(())
}
