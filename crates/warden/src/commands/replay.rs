//! `warden replay`: re-decide the recorded attempts of a ledger under a candidate charter,
//! with the state each original decision saw, and report what would change; never writes to
//! the ledger it reads. `--shadow` summarises the decisions a shadow charter recorded instead.
//!
//! Exit codes: 0 nothing widens (or `--allow-widening`), 1 ([`EXIT_WIDENING`]) the candidate
//! (or the shadow charter) would let run without approval an attempt recorded as denied or
//! asking, 64 bad input (a candidate that does not compile: its diagnostics are printed; no
//! ledger in `--data`, or no chain of `--instance` in the store; a bad `--since`), 74 the
//! ledger cannot be read (or the store cannot be reached).
//!
//! The ledger is a data directory's (`--data DIR`) or, for a fleet on PostgreSQL, one
//! instance's chain in the shared store (`--store URL --instance ID`, as `warden audit`
//! names it); either is only read.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use warden_audit::{LedgerError, LedgerReader};

use crate::EXIT_USAGE;
use crate::commands::audit::EXIT_IO;
use crate::commands::audit::store::{Source, StoreArg};
use crate::output::Format;

/// The candidate widens what runs without approval.
pub const EXIT_WIDENING: u8 = 1;

/// Arguments of `warden replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The candidate charter (file or directory).
    #[arg(long, required_unless_present = "shadow", conflicts_with = "shadow")]
    pub charter: Option<PathBuf>,
    /// The gateway's data directory (its ledger is read, never written). Not with a
    /// PostgreSQL `--store`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Read the ledger from the fleet's shared store instead, a PostgreSQL URL (`sqlite`:
    /// the data directory, as without it); needs `--instance`. Env `WARDEN_STORE`. Give it
    /// through the environment: the command line is visible to other users.
    #[arg(long, env = "WARDEN_STORE", hide_env_values = true, value_name = "URL")]
    pub store: Option<String>,
    /// With `--store`: the instance whose chain is replayed (its id, as `warden audit tail
    /// --store` names it).
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// Only attempts recorded at or after this RFC 3339 time (the state before it still
    /// counts).
    #[arg(long)]
    pub since: Option<String>,
    /// Only this session's attempts (the other sessions' still count for day scopes and
    /// gateway-wide controls).
    #[arg(long)]
    pub session: Option<String>,
    /// Summarise the recorded `shadow_decided` records instead of re-deciding.
    #[arg(long)]
    pub shadow: bool,
    /// Exit 0 even when the candidate widens what runs without approval.
    #[arg(long)]
    pub allow_widening: bool,
    /// Most example actions shown per group.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub examples: u16,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `warden replay`.
pub fn execute(a: &ReplayArgs) -> ExitCode {
    let since = match a.since.as_deref() {
        None => None,
        Some(s) => match warden_core::text::parse_rfc3339(s) {
            Some(t) => Some(t),
            None => {
                eprintln!(
                    "error: `--since` `{s}` is not an RFC 3339 time such as `2026-12-01T00:00:00Z`"
                );
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    let options = warden_replay::Options {
        since,
        session: a.session.clone(),
        examples: usize::from(a.examples),
    };
    let candidate = match (&a.charter, a.shadow) {
        (_, true) => None,
        (Some(path), false) => match warden_charter::load(path) {
            Ok(compiled) => Some(compiled.charter),
            Err(diagnostics) => {
                eprint!("{diagnostics}");
                eprintln!(
                    "error: the candidate charter `{}` does not compile",
                    path.display()
                );
                return ExitCode::from(EXIT_USAGE);
            }
        },
        (None, false) => {
            eprintln!("error: `--charter` is required (or `--shadow`)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let store = StoreArg {
        store: a.store.clone(),
        instance: a.instance.clone(),
    };
    crate::runtime(async move {
        let (reader, pool) = match open(a.data.as_deref(), &store).await {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        let report = match &candidate {
            Some(c) => warden_replay::replay(&reader, c, &options).await,
            None => warden_replay::shadow(&reader, &options).await,
        };
        reader.close().await;
        if let Some(pool) = pool {
            pool.close().await;
        }
        let report = match report {
            Ok(r) => r,
            Err(e) => return failure(&e),
        };
        let mut out = std::io::stdout().lock();
        let printed = match a.format {
            Format::Human => write!(out, "{report}"),
            Format::Json => match serde_json::to_string_pretty(&report) {
                Ok(doc) => writeln!(out, "{doc}"),
                Err(e) => {
                    eprintln!("error: the report cannot be written as JSON: {e}");
                    return ExitCode::from(EXIT_IO);
                }
            },
        };
        if printed.is_err() {
            return ExitCode::from(EXIT_IO);
        }
        if report.widens() && !a.allow_widening {
            ExitCode::from(EXIT_WIDENING)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Opens the ledger to replay, read-only: `dir`'s, or the chain of `--instance` in a
/// PostgreSQL `--store` (with the pool to close after). Exactly one of the two must be named:
/// a store without `--instance`, `--data` beside a store, or neither is bad input (64).
async fn open(
    dir: Option<&std::path::Path>,
    store: &StoreArg,
) -> Result<(LedgerReader, Option<sqlx::PgPool>), ExitCode> {
    let usage = |message: &str| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_USAGE)
    };
    match store.source().await? {
        Source::Dir => {
            let Some(dir) = dir else {
                return Err(usage(
                    "name the ledger: `--data DIR`, or `--store URL --instance ID` for a fleet's",
                ));
            };
            LedgerReader::open(dir)
                .await
                .map(|r| (r, None))
                .map_err(|e| failure(&e))
        }
        Source::Store(pool, instance) => {
            let refused = match (dir, &instance) {
                (Some(_), _) => Some(
                    "`--data` and `--store` name two ledgers: give one (`--store` is also read \
                     from WARDEN_STORE)",
                ),
                (None, None) => Some(
                    "a replay re-decides one instance's chain: give `--instance ID` with \
                     `--store` (`warden audit tail --store URL` names each record's instance)",
                ),
                (None, Some(_)) => None,
            };
            if let Some(message) = refused {
                pool.close().await;
                return Err(usage(message));
            }
            match LedgerReader::open_postgres(pool.clone(), instance).await {
                Ok(reader) => Ok((reader, Some(pool))),
                Err(e) => {
                    pool.close().await;
                    Err(failure(&e))
                }
            }
        }
    }
}

/// Prints `e` with its causes and picks the exit code: no ledger (or not one, or no chain of
/// the instance named) is bad input.
fn failure(e: &LedgerError) -> ExitCode {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    eprintln!("error: {message}");
    match e {
        LedgerError::NotFound { .. }
        | LedgerError::Format { .. }
        | LedgerError::UnknownInstance { .. } => ExitCode::from(EXIT_USAGE),
        _ => ExitCode::from(EXIT_IO),
    }
}
