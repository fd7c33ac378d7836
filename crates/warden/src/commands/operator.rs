//! `warden operator create-token`: an operator credential made offline, by whoever can write
//! the data directory (the first one is written by `warden serve` to `operator.token`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use warden_session::{OperatorCredentials, OperatorRole, StateDb};

/// `warden operator …`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: OperatorCommand,
}

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator token and print it (it is stored only as a hash).
    CreateToken {
        /// A name for the token, kept in the state store and the records.
        #[arg(long)]
        name: String,
        /// Make it an approver's credential, tied to this principal of the charter: it may
        /// read and decide approval requests, and nothing else. Without it the token is an
        /// admin's (sessions, tokens; never deciding approvals).
        #[arg(long)]
        principal: Option<String>,
        /// Data directory. Env `WARDEN_DATA`; default `./warden-data`.
        #[arg(long = "data")]
        data_dir: Option<PathBuf>,
    },
}

/// Runs `warden operator …`.
pub fn execute(args: &OperatorArgs) -> ExitCode {
    let OperatorCommand::CreateToken {
        name,
        principal,
        data_dir,
    } = &args.command;
    let role = principal
        .clone()
        .map_or(OperatorRole::Admin, OperatorRole::Approver);
    let dir = data_dir
        .clone()
        .or_else(|| std::env::var("WARDEN_DATA").ok().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(warden_gateway::config::DEFAULT_DATA_DIR));
    crate::runtime(async move {
        match warden_core::private::private_dir(&dir) {
            Ok(None) => {}
            Ok(Some(t)) => eprintln!("note: the data directory was open to group or others: {t}"),
            Err(e) => {
                eprintln!(
                    "error: cannot create `{}` with mode 0700: {e}",
                    dir.display()
                );
                return ExitCode::FAILURE;
            }
        }
        let db = match StateDb::open(&dir).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let now = time::OffsetDateTime::now_utc();
        // Offline: the ledger is the gateway's; the gateway records this issue before the
        // credential's first use.
        let result = OperatorCredentials::open(&db)
            .create(name, role, now, false)
            .await;
        db.close().await;
        match result {
            Ok(issued) => {
                println!("{}", issued.token);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
