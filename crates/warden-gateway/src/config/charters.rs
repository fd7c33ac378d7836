//! Where the gateway's charters come from: one charter, a list, or a set directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use warden_charter::Diagnostics;

use super::ConfigError;

/// `charter` as given: one path or a list of paths (each a charter file or directory).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum CharterPaths {
    /// One charter.
    One(PathBuf),
    /// Several charters, one per agent.
    Many(Vec<PathBuf>),
}

impl From<&str> for CharterPaths {
    fn from(path: &str) -> CharterPaths {
        CharterPaths::One(PathBuf::from(path))
    }
}

impl From<PathBuf> for CharterPaths {
    fn from(path: PathBuf) -> CharterPaths {
        CharterPaths::One(path)
    }
}

/// The charters the gateway governs with, as resolved: the paths of each agent's charter, or
/// a set directory (one subdirectory per agent's charter), listed again at every reload so
/// that an agent added or removed there is added or removed from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CharterSource {
    /// Charter paths, one per agent (never empty).
    Paths(Vec<PathBuf>),
    /// A set directory.
    Directory(PathBuf),
}

impl CharterSource {
    /// The source of one charter.
    pub fn one(path: impl Into<PathBuf>) -> CharterSource {
        CharterSource::Paths(vec![path.into()])
    }

    /// The charter paths now (a set directory is listed).
    pub fn paths(&self) -> Result<Vec<PathBuf>, Diagnostics> {
        match self {
            CharterSource::Paths(paths) => Ok(paths.clone()),
            CharterSource::Directory(dir) => warden_charter::set_directory(dir),
        }
    }

    /// The paths or the directory, for messages and records.
    pub fn describe(&self) -> String {
        match self {
            CharterSource::Paths(paths) => paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            CharterSource::Directory(dir) => dir.display().to_string(),
        }
    }

    /// The first charter path given (the set directory for one): where relative paths of the
    /// observer's settings are resolved from.
    pub fn first(&self) -> &Path {
        match self {
            CharterSource::Paths(paths) => paths.first().map_or(Path::new("."), PathBuf::as_path),
            CharterSource::Directory(dir) => dir,
        }
    }

    /// Compiles the charters as one set (every charter's errors at its own file:line:col).
    pub fn load(&self) -> Result<warden_charter::CompiledSet, Diagnostics> {
        warden_charter::load_set(&self.paths()?)
    }
}

/// The source from one precedence layer's `charter` and `charters`: both given is an error.
pub(super) fn source(
    charter: Option<(CharterPaths, &'static str)>,
    charters: Option<(PathBuf, &'static str)>,
) -> Result<CharterSource, ConfigError> {
    match (charter, charters) {
        (Some((_, origin)), Some((dir, _))) => Err(ConfigError::Invalid {
            setting: "charters",
            origin,
            value: dir.display().to_string(),
            reason: "give `charter` (one or a list) or `charters` (a set directory), not both"
                .to_owned(),
        }),
        (Some((CharterPaths::One(path), _)), None) => Ok(CharterSource::Paths(vec![path])),
        (Some((CharterPaths::Many(paths), origin)), None) => {
            if paths.is_empty() {
                Err(ConfigError::Invalid {
                    setting: "charter",
                    origin,
                    value: "[]".to_owned(),
                    reason: "the list of charters is empty".to_owned(),
                })
            } else {
                Ok(CharterSource::Paths(paths))
            }
        }
        (None, Some((dir, _))) => Ok(CharterSource::Directory(dir)),
        (None, None) => Err(ConfigError::NoCharter),
    }
}
