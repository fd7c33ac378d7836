//! `warden test PATH`: run a charter's test cases (YAML beside the charter) and report every
//! failure with the file:line of the case and of the rules involved; non-zero on any failure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::EXIT_USAGE;
use crate::output::Format;

/// Arguments of `warden test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The charter (file or directory) whose tests to run.
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `warden test`.
pub fn execute(_a: &TestArgs) -> ExitCode {
    eprintln!("error: `warden test` is not built yet");
    ExitCode::from(EXIT_USAGE)
}
