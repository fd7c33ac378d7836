//! `warden init KIND`: write a starter charter for a named kind of agent (coding, support,
//! finance, data) that passes `warden check` and `warden test`, with comments that teach the
//! format.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::EXIT_USAGE;

/// Arguments of `warden init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The kind of agent: coding, support, finance or data.
    pub kind: String,
    /// The directory to write the charter and its tests into (created; never overwritten).
    #[arg(long, default_value = "charter")]
    pub dir: PathBuf,
}

/// Runs `warden init`.
pub fn execute(_a: &InitArgs) -> ExitCode {
    eprintln!("error: `warden init` is not built yet");
    ExitCode::from(EXIT_USAGE)
}
