//! Output formats shared by the commands.

use clap::ValueEnum;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    #[default]
    Human,
    /// One JSON document, for programs.
    Json,
}
