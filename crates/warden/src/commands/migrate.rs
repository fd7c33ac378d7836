//! `warden migrate`: brings the store's schema to this warden's version, then exits. The
//! gateway migrates at start-up too; this runs it ahead of a rolling upgrade, once for the
//! fleet. A schema of a newer warden is refused (exit 64), never changed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use warden_core::StoreLocation;
use warden_session::state_db::postgres;
use warden_session::{PoolBounds, StateDb, StoreError};

use crate::EXIT_USAGE;

/// Arguments of `warden migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store: `sqlite` (the data directory's `state.db`) or a PostgreSQL URL. Env
    /// `WARDEN_STORE`; default `sqlite`.
    #[arg(long, env = "WARDEN_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// The data directory (SQLite). Env `WARDEN_DATA`; default `./warden-data`.
    #[arg(long = "data", env = "WARDEN_DATA")]
    pub data_dir: Option<PathBuf>,
}

/// Runs `warden migrate`.
pub fn execute(args: &MigrateArgs) -> ExitCode {
    let location = match args.store.as_deref().map(StoreLocation::parse) {
        None => StoreLocation::Sqlite,
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(warden_gateway::config::DEFAULT_DATA_DIR));
    crate::runtime(async move {
        let result = match &location {
            StoreLocation::Sqlite => StateDb::open(&dir).await.map(|db| (db, Vec::new())),
            StoreLocation::Postgres(url) => {
                match postgres::connect(url, PoolBounds::default()).await {
                    Ok(pool) => postgres::migrate(&pool)
                        .await
                        .map(|applied| (StateDb::from_postgres_pool(pool), applied)),
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok((db, applied)) => {
                db.close().await;
                match (&location, applied.as_slice()) {
                    (StoreLocation::Sqlite, _) => println!(
                        "`{}` is at schema version {}",
                        dir.join(warden_session::state_db::STATE_DB_FILE).display(),
                        warden_session::state_db::SCHEMA_VERSION
                    ),
                    (_, []) => println!(
                        "{location} is at schema version {}; nothing to do",
                        postgres::schema_version()
                    ),
                    (_, applied) => println!(
                        "{location}: applied {}; now at schema version {}",
                        applied
                            .iter()
                            .map(|v| format!("migration {v}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        postgres::schema_version()
                    ),
                }
                ExitCode::SUCCESS
            }
            Err(e @ StoreError::NewerSchema { .. }) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_USAGE)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
