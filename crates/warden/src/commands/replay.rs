//! `warden replay`: re-decide the recorded attempts of a ledger under a candidate charter,
//! with the state each original decision saw, and report what would change; never writes to
//! the ledger it reads. `--shadow` summarises the decisions a shadow charter recorded instead.
//!
//! Exit codes: 0 nothing widens (or `--allow-widening`), 1 ([`EXIT_WIDENING`]) the candidate
//! (or the shadow charter) would let run without approval an attempt recorded as denied or
//! asking, 64 bad input (a candidate that does not compile: its diagnostics are printed; no
//! ledger in `--data`; a bad `--since`), 74 the ledger cannot be read.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use warden_audit::{LedgerError, LedgerReader};

use crate::EXIT_USAGE;
use crate::commands::audit::EXIT_IO;
use crate::output::Format;

/// The candidate widens what runs without approval.
pub const EXIT_WIDENING: u8 = 1;

/// Arguments of `warden replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The candidate charter (file or directory).
    #[arg(long, required_unless_present = "shadow", conflicts_with = "shadow")]
    pub charter: Option<PathBuf>,
    /// The gateway's data directory (its ledger is read, never written).
    #[arg(long)]
    pub data: PathBuf,
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
    let data = a.data.clone();
    crate::runtime(async move {
        let reader = match LedgerReader::open(&data).await {
            Ok(r) => r,
            Err(e) => return failure(&e),
        };
        let report = match &candidate {
            Some(c) => warden_replay::replay(&reader, c, &options).await,
            None => warden_replay::shadow(&reader, &options).await,
        };
        reader.close().await;
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

/// Prints `e` with its causes and picks the exit code: no ledger (or not one) is bad input.
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
        LedgerError::NotFound { .. } | LedgerError::Format { .. } => ExitCode::from(EXIT_USAGE),
        _ => ExitCode::from(EXIT_IO),
    }
}
