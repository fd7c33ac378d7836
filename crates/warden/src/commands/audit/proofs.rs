//! `warden audit prove` and `warden audit consistency`: Merkle proofs against signed checkpoints.

use std::process::ExitCode;

use clap::Args;

use crate::EXIT_USAGE;

/// Arguments of `warden audit prove`.
#[derive(Debug, Args)]
pub struct ProveArgs {}

/// Runs `warden audit prove`.
pub(super) fn prove(_args: &ProveArgs) -> ExitCode {
    eprintln!("error: `warden audit prove` is not built yet");
    ExitCode::from(EXIT_USAGE)
}

/// Arguments of `warden audit consistency`.
#[derive(Debug, Args)]
pub struct ConsistencyArgs {}

/// Runs `warden audit consistency`.
pub(super) fn consistency(_args: &ConsistencyArgs) -> ExitCode {
    eprintln!("error: `warden audit consistency` is not built yet");
    ExitCode::from(EXIT_USAGE)
}
