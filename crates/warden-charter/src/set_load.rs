//! Loading a charter set: every charter of the list compiled, then checked as a whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::{CharterSet, SetError};

/// A compiled charter set, with every charter's warnings.
#[derive(Debug)]
pub struct CompiledSet {
    /// The set.
    pub set: CharterSet,
    /// Warnings of every charter and of the set as a whole.
    pub warnings: Diagnostics,
}

/// Reads and compiles the charters at `paths` (each a charter file or directory) as one set:
/// every charter's errors are reported (each at its own file:line:col), then the set's own
/// (two charters for one agent, a delegation or server `agent` naming an agent not in the
/// set, a server id declared differently by two charters; see `set_check`), with warnings for
/// delegations only one side declares. Nothing is returned unless all compile and the set
/// holds together.
pub fn load_set(paths: &[PathBuf]) -> Result<CompiledSet, Diagnostics> {
    let mut errors = Diagnostics::default();
    let mut warnings = Diagnostics::default();
    let mut charters = Vec::with_capacity(paths.len());
    for path in paths {
        match crate::load(path) {
            Ok(compiled) => {
                warnings.extend(compiled.warnings);
                charters.push(Arc::new(compiled.charter));
            }
            Err(diags) => errors.extend(diags),
        }
    }
    if errors.has_errors() {
        errors.extend(warnings);
        errors.sort();
        return Err(errors);
    }
    warnings.extend(crate::set_check::check(&charters));
    warnings.sort();
    if warnings.has_errors() {
        return Err(warnings);
    }
    match CharterSet::new(charters) {
        Ok(set) => Ok(CompiledSet { set, warnings }),
        Err(SetError::Empty) => Err(Diagnostics::one(Diagnostic::error_at_file(
            &paths_display(paths),
            "no charter to load",
        ))),
        Err(SetError::Duplicate(d)) => Err(Diagnostics::one(Diagnostic::error_at_file(
            &d.second,
            d.to_string(),
        ))),
    }
}

fn paths_display(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The charters of a set directory: every subdirectory of `dir` holds one charter (files
/// directly in `dir` are shared documents that charters include). Sorted by name.
pub fn set_directory(dir: &Path) -> Result<Vec<PathBuf>, Diagnostics> {
    let display = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Diagnostics::one(Diagnostic::error_at_file(
            &display,
            format!("cannot list the charter set directory: {e}"),
        ))
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(Diagnostics::one(Diagnostic::error_at_file(
            &display,
            "a charter set directory holds one subdirectory per agent's charter; this one has none",
        )));
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests;
