//! `warden audit keygen`: a checkpoint signing key in its own 0600 file.

use std::process::ExitCode;

use clap::Args;

use crate::EXIT_USAGE;

/// Arguments of `warden audit keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {}

/// Runs `warden audit keygen`.
pub(super) fn execute(_args: &KeygenArgs) -> ExitCode {
    eprintln!("error: `warden audit keygen` is not built yet");
    ExitCode::from(EXIT_USAGE)
}
