//! The `[checkpoints]` section of the config file: signed checkpoints of the ledger (see
//! docs/checkpoints.md).

use serde::Deserialize;

use super::{ConfigError, ConfigSource};

/// The `[checkpoints]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckpoints {
    /// The signing key file (`warden audit keygen`).
    pub key: Option<std::path::PathBuf>,
}

/// How checkpoints are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// The signing key file.
    pub key: std::path::PathBuf,
}

/// The checkpoint settings: the file's section, else off.
pub(super) fn resolve(
    file: Option<&RawCheckpoints>,
    _env: &dyn ConfigSource,
) -> Result<Option<CheckpointConfig>, ConfigError> {
    Ok(file.and_then(|raw| raw.key.clone().map(|key| CheckpointConfig { key })))
}
