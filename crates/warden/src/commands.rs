//! One module per subcommand; each exposes `execute(&Args) -> ExitCode`.

pub mod agents;
pub mod approvals;
pub mod audit;
pub mod charter;
pub mod check;
pub mod connect;
pub mod control;
pub mod explain;
pub mod init;
pub mod migrate;
pub mod observe;
pub mod operator;
pub mod replay;
pub mod serve;
pub mod session;
pub mod test;
pub mod up;
