//! `warden audit archive` and `warden audit prune`: retention with the signed checkpoints standing for what was pruned.

use std::process::ExitCode;

use clap::Args;

use crate::EXIT_USAGE;

/// Arguments of `warden audit archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {}

/// Runs `warden audit archive`.
pub(super) fn archive(_args: &ArchiveArgs) -> ExitCode {
    eprintln!("error: `warden audit archive` is not built yet");
    ExitCode::from(EXIT_USAGE)
}

/// Arguments of `warden audit prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {}

/// Runs `warden audit prune`.
pub(super) fn prune(_args: &PruneArgs) -> ExitCode {
    eprintln!("error: `warden audit prune` is not built yet");
    ExitCode::from(EXIT_USAGE)
}
