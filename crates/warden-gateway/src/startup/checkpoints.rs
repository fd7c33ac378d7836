//! Signed checkpoints: the task that signs the ledger's tree head every N records or T seconds,
//! when a key is configured (see docs/checkpoints.md).

use std::sync::Arc;

use super::{Background, StartError};
use crate::app_state::AppState;
use crate::config::Config;

/// Starts the checkpoint signer, when `config` names a key.
pub(super) async fn spawn(
    config: &Config,
    _state: &Arc<AppState>,
    _background: &Background,
) -> Result<(), StartError> {
    if config.checkpoints.is_some() {
        tracing::warn!("Signed checkpoints are configured but not built yet.");
    }
    Ok(())
}
