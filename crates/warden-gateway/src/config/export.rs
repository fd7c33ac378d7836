//! The `[[export]]` sections of the config file: where the ledger's records are copied (see
//! docs/export.md).

use serde::Deserialize;

use super::{ConfigError, ConfigSource};

/// One export sink.
pub type ExportSink = warden_export::SinkConfig;

/// One `[[export]]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExportSink {
    /// The sink's name.
    pub name: String,
}

/// The export sinks.
pub(super) fn resolve(
    file: &[RawExportSink],
    _env: &dyn ConfigSource,
) -> Result<Vec<ExportSink>, ConfigError> {
    Ok(file
        .iter()
        .map(|raw| ExportSink {
            name: raw.name.clone(),
        })
        .collect())
}
