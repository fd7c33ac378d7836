//! The `[checkpoints]` section of the config file: signed checkpoints of the ledger (see
//! docs/checkpoints.md).
//!
//! ```toml
//! [checkpoints]
//! key = "/etc/warden/checkpoint.key"   # `warden audit keygen --out …`; required
//! every_records = 1000                  # default
//! every = "60s"                         # default
//! origin = "warden/ledger/<ledger id>"  # default
//! ```
//!
//! | setting | environment | file key | default |
//! |---|---|---|---|
//! | signing key file | `WARDEN_CHECKPOINT_KEY` | `checkpoints.key` | none: no checkpoints |
//! | records between checkpoints | | `checkpoints.every_records` | `1000` |
//! | time between checkpoints | | `checkpoints.every` | `60s` |
//! | origin (first line of each checkpoint) | | `checkpoints.origin` | `warden/ledger/<ledger id>` |
//!
//! `WARDEN_CHECKPOINT_KEY` wins over the file's `key` (as the environment wins over the file
//! for every setting) and turns signing on by itself, with the file's other settings or the
//! defaults. The key file itself is read at start-up (see `startup/checkpoints.rs`): one that
//! cannot be read, is malformed or that others may read stops the start.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use warden_audit::checkpoint::{MAX_ORIGIN_BYTES, valid_origin};

use super::parse::{duration, pick};
use super::{ConfigError, ConfigSource};

/// Default records between two checkpoints.
pub const DEFAULT_EVERY_RECORDS: u64 = 1000;
/// Default time between two checkpoints (when the tree grew).
pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);
/// The most records allowed between two checkpoints.
pub const MAX_EVERY_RECORDS: u64 = 10_000_000;
/// The shortest time allowed between two checkpoints.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

/// The `[checkpoints]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckpoints {
    /// The signing key file (`warden audit keygen`).
    pub key: Option<PathBuf>,
    /// Sign once this many records were added since the last checkpoint (default 1000).
    pub every_records: Option<u64>,
    /// Sign this often when records were added (default `60s`).
    pub every: Option<String>,
    /// The checkpoints' origin line (default `warden/ledger/<ledger id>`).
    pub origin: Option<String>,
}

/// How checkpoints are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// The signing key file (mode 0600 or stricter).
    pub key: PathBuf,
    /// Sign once this many records were added since the last checkpoint (1 to 10,000,000).
    pub every_records: u64,
    /// Sign this often when records were added since the last checkpoint (at least 1 s).
    pub every: Duration,
    /// The origin line; `None`: `warden/ledger/<ledger id>`.
    pub origin: Option<String>,
}

impl CheckpointConfig {
    /// Signing with `key` and the defaults.
    pub fn with_key(key: PathBuf) -> CheckpointConfig {
        CheckpointConfig {
            key,
            every_records: DEFAULT_EVERY_RECORDS,
            every: DEFAULT_EVERY,
            origin: None,
        }
    }
}

/// The checkpoint settings: the key from `WARDEN_CHECKPOINT_KEY`, else the file's section;
/// without a key, off. A section without a key is an error (it asks for signing but cannot).
pub(super) fn resolve(
    file: Option<&RawCheckpoints>,
    env: &dyn ConfigSource,
) -> Result<Option<CheckpointConfig>, ConfigError> {
    let raw = file.cloned().unwrap_or_default();
    let key = match pick(
        &None,
        env.var("WARDEN_CHECKPOINT_KEY").map(PathBuf::from),
        &raw.key,
    ) {
        Some((key, _)) => key,
        None if file.is_some() => {
            return Err(ConfigError::Invalid {
                setting: "checkpoints.key",
                origin: "config file",
                value: String::new(),
                reason: "the `[checkpoints]` section needs the signing key file (`warden audit keygen --out FILE`)".to_owned(),
            });
        }
        None => return Ok(None),
    };
    let every_records = match raw.every_records {
        None => DEFAULT_EVERY_RECORDS,
        Some(n) if (1..=MAX_EVERY_RECORDS).contains(&n) => n,
        Some(n) => {
            return Err(ConfigError::Invalid {
                setting: "checkpoints.every_records",
                origin: "config file",
                value: n.to_string(),
                reason: format!("a whole number of records from 1 to {MAX_EVERY_RECORDS}"),
            });
        }
    };
    let every = duration(
        "checkpoints.every",
        raw.every.map(|v| (v, "config file")),
        DEFAULT_EVERY,
    )?;
    if every < MIN_EVERY {
        return Err(ConfigError::Invalid {
            setting: "checkpoints.every",
            origin: "config file",
            value: format!("{}ms", every.as_millis()),
            reason: "at least one second".to_owned(),
        });
    }
    if let Some(origin) = &raw.origin
        && !valid_origin(origin)
    {
        return Err(ConfigError::Invalid {
            setting: "checkpoints.origin",
            origin: "config file",
            value: origin.escape_debug().to_string(),
            reason: format!("1 to {MAX_ORIGIN_BYTES} printable ASCII characters"),
        });
    }
    Ok(Some(CheckpointConfig {
        key,
        every_records,
        every,
        origin: raw.origin,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn off_without_a_key_and_defaults_with_one() {
        assert_eq!(resolve(None, &env(&[])).unwrap(), None);
        let raw = RawCheckpoints {
            key: Some("/k".into()),
            ..RawCheckpoints::default()
        };
        assert_eq!(
            resolve(Some(&raw), &env(&[])).unwrap(),
            Some(CheckpointConfig::with_key("/k".into()))
        );
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let raw = RawCheckpoints {
            key: Some("/file".into()),
            every_records: Some(5),
            ..RawCheckpoints::default()
        };
        let resolved = resolve(Some(&raw), &env(&[("WARDEN_CHECKPOINT_KEY", "/env")]))
            .unwrap()
            .unwrap();
        assert_eq!(resolved.key, PathBuf::from("/env"));
        assert_eq!(resolved.every_records, 5);
        let only_env = resolve(None, &env(&[("WARDEN_CHECKPOINT_KEY", "/env")])).unwrap();
        assert_eq!(only_env, Some(CheckpointConfig::with_key("/env".into())));
    }

    #[test]
    fn bad_values_are_refused() {
        let with = |f: fn(&mut RawCheckpoints)| {
            let mut raw = RawCheckpoints {
                key: Some("/k".into()),
                ..RawCheckpoints::default()
            };
            f(&mut raw);
            resolve(Some(&raw), &env(&[])).unwrap_err().to_string()
        };
        assert!(with(|r| r.every_records = Some(0)).contains("every_records"));
        assert!(with(|r| r.every = Some("soon".into())).contains("checkpoints.every"));
        assert!(with(|r| r.origin = Some("two\nlines".into())).contains("checkpoints.origin"));
        assert!(with(|r| r.origin = Some(String::new())).contains("checkpoints.origin"));
        assert!(with(|r| r.key = None).contains("checkpoints.key"));
    }
}
