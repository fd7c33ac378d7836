//! What can be wrong with the configuration.

use std::path::PathBuf;

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("config file `{path}` {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause: it cannot be read, is not a regular file, is too large or not UTF-8.
        #[source]
        source: warden_core::small_file::SmallFileError,
    },
    /// The config file is not valid TOML for this schema.
    #[error("invalid config file `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A setting has an invalid value.
    #[error("invalid `{setting}` (from {origin}): `{value}`: {reason}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// Where the value came from.
        origin: &'static str,
        /// The value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// No charter was given.
    #[error(
        "no charter given: pass `--charter PATH` (or `--charters DIR` for a set), set `WARDEN_CHARTER` (or `WARDEN_CHARTERS`), or set `charter` (or `charters`) in the config file"
    )]
    NoCharter,
}
