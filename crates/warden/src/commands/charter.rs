//! `warden charter show|reload`: the charter in force on a running gateway, and a live reload
//! of it (through the operator plane, with an admin's token).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::EXIT_USAGE;

/// Arguments of `warden charter`.
#[derive(Debug, Args)]
pub struct CharterArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: CharterCommand,
}

/// `warden charter` subcommands.
#[derive(Debug, Subcommand)]
pub enum CharterCommand {
    /// The charter in force: hash, agent, files, when and how it was loaded.
    Show,
    /// Compile the charter files again and put them in force (errors leave the old one).
    Reload,
}

/// Runs `warden charter`.
pub fn execute(_a: &CharterArgs) -> ExitCode {
    eprintln!("error: `warden charter` is not built yet");
    ExitCode::from(EXIT_USAGE)
}
