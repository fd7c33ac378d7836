//! The `warden` command line. `main.rs` only calls [`run`]; each subcommand lives in
//! [`commands`] and returns its exit code.
//!
//! Exit codes: 0 success, 1 `check --deny-warnings` found warnings, 2 a command line clap
//! cannot parse, 64 (`EX_USAGE`) invalid input (a charter that does not compile or cannot be
//! read, bad argument values).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod commands;
pub mod output;

/// Invalid input (`EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;
/// Warnings were found and `--deny-warnings` was given.
pub const EXIT_WARNINGS: u8 = 1;

/// warden: a runtime governance layer for AI agents.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// warden's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a charter: every error and warning as file:line:col.
    Check(commands::check::CheckArgs),
    /// Decide one action against a charter and explain why, without running anything.
    Explain(commands::explain::ExplainArgs),
    /// Verify the ledger's hash chain; print ledger records.
    Audit(commands::audit::AuditArgs),
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => commands::check::execute(&args),
        Command::Explain(args) => commands::explain::execute(&args),
        Command::Audit(args) => commands::audit::execute(&args),
    }
}
