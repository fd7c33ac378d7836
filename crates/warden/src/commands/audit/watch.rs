//! `warden audit watch`: a monitor of a gateway's signed checkpoints.

use std::process::ExitCode;

use clap::Args;

use crate::EXIT_USAGE;

/// Arguments of `warden audit watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {}

/// Runs `warden audit watch`.
pub(super) fn execute(_args: &WatchArgs) -> ExitCode {
    eprintln!("error: `warden audit watch` is not built yet");
    ExitCode::from(EXIT_USAGE)
}
