//! The `warden` command line. `main.rs` only calls [`run`]; each subcommand lives in
//! [`commands`] and returns its exit code.
//!
//! Exit codes: 0 success, 1 `check --deny-warnings` found warnings, `test` found a failing case,
//! `replay` found a change that widens what runs without approval (and start-up failures of
//! `serve`/`up` other than the charter, and an `approvals approve|deny` that failed or was
//! refused), 2 a command
//! line clap cannot parse, 3 `audit verify` found a broken chain, 64 (`EX_USAGE`) invalid
//! input (a charter that does not compile or cannot be read, bad argument values, no ledger),
//! 74 (`EX_IOERR`) the ledger cannot be read.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand, ValueEnum};

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
    /// How log lines on stderr are written: `text` (coloured only on a terminal) or `json` (one
    /// object a line). Env `WARDEN_LOG_FORMAT`.
    #[arg(
        long,
        global = true,
        env = "WARDEN_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
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
    /// Run a charter's test cases; non-zero on any failure.
    Test(commands::test::TestArgs),
    /// Re-decide a ledger's recorded attempts under a candidate charter; report what changes.
    Replay(commands::replay::ReplayArgs),
    /// Write a starter charter for a kind of agent (coding, support, finance, data).
    Init(commands::init::InitArgs),
    /// The charter in force on a running gateway; reload it (through the operator plane).
    Charter(commands::charter::CharterArgs),
    /// Verify the ledger's hash chain; print and search ledger records.
    Audit(commands::audit::AuditArgs),
    /// Run the gateway: the agent plane (MCP, decide API) and the operator plane.
    Serve(commands::serve::ServeArgs),
    /// One command: the gateway on a demo charter and folder, a demo session, URLs printed.
    Up(commands::up::UpArgs),
    /// Open, list and revoke sessions (through the operator plane).
    Session(commands::session::SessionArgs),
    /// List, show, approve and deny human approval requests (through the operator plane).
    Approvals(commands::approvals::ApprovalsArgs),
    /// List, set and lift controls (through the operator plane).
    Control(commands::control::ControlArgs),
    /// The agent inventory of a running gateway: every agent, or one in full (through the
    /// operator plane).
    Agents(commands::agents::AgentsArgs),
    /// Bring the store's schema (SQLite or PostgreSQL) to this warden's version.
    Migrate(commands::migrate::MigrateArgs),
    /// Operator credentials.
    Operator(commands::operator::OperatorArgs),
    /// A stdio bridge to the gateway's MCP endpoint, for stdio-only MCP clients.
    Connect(commands::connect::ConnectArgs),
    /// The independent observer: reads the ledger stream, detects, intervenes through the
    /// control API.
    Observe(commands::observe::ObserveArgs),
}

/// The format of the log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields` (with `message`).
    Json,
}

/// The format chosen on the command line, read by [`init_tracing`].
static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let _ = LOG_FORMAT.set(cli.log_format);
    match cli.command {
        Command::Check(args) => commands::check::execute(&args),
        Command::Explain(args) => commands::explain::execute(&args),
        Command::Test(args) => commands::test::execute(&args),
        Command::Replay(args) => commands::replay::execute(&args),
        Command::Init(args) => commands::init::execute(&args),
        Command::Charter(args) => commands::charter::execute(&args),
        Command::Audit(args) => commands::audit::execute(&args),
        Command::Serve(args) => commands::serve::execute(&args),
        Command::Up(args) => commands::up::execute(&args),
        Command::Session(args) => commands::session::execute(&args),
        Command::Approvals(args) => commands::approvals::execute(&args),
        Command::Control(args) => commands::control::execute(&args),
        Command::Agents(args) => commands::agents::execute(&args),
        Command::Migrate(args) => commands::migrate::execute(&args),
        Command::Operator(args) => commands::operator::execute(&args),
        Command::Connect(args) => commands::connect::execute(&args),
        Command::Observe(args) => commands::observe::execute(&args),
    }
}

/// The log format chosen on the command line (text when [`run`] has not parsed one).
pub fn log_format() -> LogFormat {
    LOG_FORMAT.get().copied().unwrap_or_default()
}

/// Logs to stderr; the level comes from `WARDEN_LOG` (default `info`), the format from
/// `--log-format` / `WARDEN_LOG_FORMAT` (default text). Text carries ANSI colour codes only when
/// stderr is a terminal; JSON never does. A second call changes nothing.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log_format() {
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// The environment variable that sets how many async worker threads warden runs (tokio's own
/// name for it, read here so that a bad value is a clear error and exit 64, never tokio's
/// panic). Unset: one per core.
pub const WORKER_THREADS_ENV: &str = "TOKIO_WORKER_THREADS";
/// The most worker threads [`WORKER_THREADS_ENV`] may ask for.
pub const MAX_WORKER_THREADS: usize = 1024;

/// The worker threads a value of [`WORKER_THREADS_ENV`] asks for: `None` when it is unset (one
/// per core); an error unless it is a whole number from 1 to [`MAX_WORKER_THREADS`].
pub fn worker_threads(value: Option<&std::ffi::OsStr>) -> Result<Option<usize>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.to_str().map(|s| s.trim().parse::<usize>()) {
        Some(Ok(n)) if (1..=MAX_WORKER_THREADS).contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "{WORKER_THREADS_ENV} must be a whole number from 1 to {MAX_WORKER_THREADS}, not `{}`",
            warden_core::text::ellipsize(&value.to_string_lossy(), 40)
        )),
    }
}

/// Runs a future on a multi-threaded tokio runtime, with the worker threads
/// [`WORKER_THREADS_ENV`] asks for; a bad value of it (exit 64) or a runtime that cannot start
/// is a failure.
pub fn runtime<F: std::future::Future<Output = ExitCode>>(f: F) -> ExitCode {
    let threads = match worker_threads(std::env::var_os(WORKER_THREADS_ENV).as_deref()) {
        Ok(threads) => threads,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    match builder.build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt as _;

    use super::{MAX_WORKER_THREADS, worker_threads};

    #[test]
    fn worker_threads_are_unset_or_a_whole_number_within_bounds() {
        assert_eq!(worker_threads(None), Ok(None));
        assert_eq!(worker_threads(Some(OsStr::new("1"))), Ok(Some(1)));
        assert_eq!(worker_threads(Some(OsStr::new(" 4\n"))), Ok(Some(4)));
        assert_eq!(
            worker_threads(Some(OsStr::new("1024"))),
            Ok(Some(MAX_WORKER_THREADS))
        );
        let long = "9".repeat(500);
        for bad in ["", "0", "-1", "1025", "two", "1.5", "0x10", &long] {
            let e = worker_threads(Some(OsStr::new(bad))).unwrap_err();
            assert!(
                e.starts_with("TOKIO_WORKER_THREADS must be a whole number from 1 to 1024, not `"),
                "{e}"
            );
            assert!(e.len() < 150, "the value is shortened: {e}");
        }
        let not_utf8 = OsStr::from_bytes(b"\xff2");
        assert!(worker_threads(Some(not_utf8)).is_err());
    }
}
