//! Export: one task per configured sink, each following the ledger's committed head (see
//! docs/export.md).

use std::sync::Arc;

use super::{Background, StartError};
use crate::app_state::AppState;
use crate::config::Config;

/// Starts one exporter per configured sink.
pub(super) async fn spawn(
    config: &Config,
    _state: &Arc<AppState>,
    _background: &Background,
) -> Result<(), StartError> {
    if !config.exports.is_empty() {
        tracing::warn!("Export sinks are configured but not built yet.");
    }
    Ok(())
}
