//! `warden replay`: re-decide the recorded attempts of a ledger under a candidate charter,
//! with the state each original decision saw, and report what would change; never writes to
//! the ledger it reads.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::EXIT_USAGE;
use crate::output::Format;

/// Arguments of `warden replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The candidate charter (file or directory).
    #[arg(long, required_unless_present = "shadow")]
    pub charter: Option<PathBuf>,
    /// The gateway's data directory (its ledger is read, never written).
    #[arg(long)]
    pub data: PathBuf,
    /// Only attempts recorded at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only this session's attempts.
    #[arg(long)]
    pub session: Option<String>,
    /// Summarise the recorded `shadow_decided` records instead of re-deciding.
    #[arg(long)]
    pub shadow: bool,
    /// Exit 0 even when the candidate widens what runs without approval.
    #[arg(long)]
    pub allow_widening: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `warden replay`.
pub fn execute(_a: &ReplayArgs) -> ExitCode {
    eprintln!("error: `warden replay` is not built yet");
    ExitCode::from(EXIT_USAGE)
}
