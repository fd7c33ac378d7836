//! One module per subcommand; each exposes `execute(&Args) -> ExitCode`.

pub mod audit;
pub mod check;
pub mod explain;
