//! `warden audit`: verify the ledger's hash chain, print records as JSON lines, and search
//! the text of model calls, approval requests and attempted actions.
//!
//! Exit codes: 0 success (for `verify`: the chain is intact; for `search`: with or without
//! hits), 3 the chain is not intact (the first bad record is named), 64 (`EX_USAGE`) no ledger
//! in the data directory, no such record, or a `search.db` that is not a search index, 74
//! (`EX_IOERR`) the ledger or the search index could not be read (or the index written).

use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use warden_audit::chain::hex;
use warden_audit::{Hit, LedgerError, LedgerReader, SearchError, SearchIndex, VerifyReport};

use crate::EXIT_USAGE;
use crate::output::Format;

pub mod keys;
pub mod proofs;
pub mod retention;
mod signed;
pub mod store;
pub mod watch;

/// `warden audit verify` found a record that was changed, removed or reordered.
pub const EXIT_BROKEN: u8 = 3;
/// The ledger could not be read (`EX_IOERR`).
pub const EXIT_IO: u8 = 74;

/// The data directory when neither `--data` nor `WARDEN_DATA` names one.
pub const DEFAULT_DATA_DIR: &str = "warden-data";

/// Arguments of `warden audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// What to do with the ledger.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// `warden audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and name the first record that was changed, removed or
    /// reordered (exit 3). With `--pubkey`, also the Merkle tree against every signed
    /// checkpoint: a rewritten range, a truncated, rolled back or emptied ledger, an unsigned
    /// tail or a bad checkpoint is named too.
    Verify(VerifyArgs),
    /// Print the last records as JSON lines, oldest first.
    Tail(TailArgs),
    /// Print one record as a JSON line.
    Show(ShowArgs),
    /// Search the text of model calls, approval requests and attempted actions, newest first.
    ///
    /// Finds the records whose text contains TEXT. Searches every string in the payloads of `model_*`, `approval_requested` and
    /// `action_attempted` records. TEXT is one literal phrase: its words, in this order
    /// (case, accents and punctuation between words do not matter); quotes, `*`, `AND`, `OR`,
    /// `NEAR`, parentheses are plain text, never search syntax.
    ///
    /// The index is `DIR/search.db`, beside the ledger: derived data, brought up to date with
    /// the ledger (read-only) before each search, rebuilt when it does not match the ledger,
    /// safe to delete. Hits come from the index and are not verified: `warden audit show SEQ`
    /// prints a record as it is, `warden audit verify` says whether it can be trusted.
    ///
    /// Prints one line per hit: `SEQ  TIME  SESSION  KIND  SNIPPET`, the matched words in
    /// `[` `]` (control characters in the snippet shown as spaces).
    Search(SearchArgs),
    /// Make a checkpoint signing key (Ed25519) in its own 0600 file, and print its public key.
    Keygen(keys::KeygenArgs),
    /// Print the inclusion proof of one record against a checkpoint.
    Prove(proofs::ProveArgs),
    /// Prove that a later checkpoint extends an earlier one (append-only).
    Consistency(proofs::ConsistencyArgs),
    /// Follow a gateway's signed checkpoints and alert on a fork or a rollback.
    Watch(watch::WatchArgs),
    /// Copy the records a signed checkpoint covers to an export directory, verified.
    Archive(retention::ArchiveArgs),
    /// Remove archived records from the local ledger; their checkpoint stands for them.
    Prune(retention::PruneArgs),
}

/// Where the ledger is.
#[derive(Debug, Args)]
pub struct DataArg {
    /// The data directory holding `ledger.db` [default: `$WARDEN_DATA`, else `./warden-data`].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// Arguments of `warden audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `DataArg`")]
    pub data: DataArg,
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `StoreArg`")]
    pub store: store::StoreArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Verify against signed checkpoints too, with this verifier key (the
    /// `<name>+<id>+<key>` text `warden audit keygen` printed, or a file holding it).
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
    /// A signed checkpoint kept outside the ledger (a note file): the ledger must hold at
    /// least its records, and exactly the ones it signed. Needs `--pubkey`.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Verify an exported copy instead of the ledger: a `ledger-<seq>.jsonl` file or a
    /// directory of them. Needs `--pubkey`.
    #[arg(long, value_name = "EXPORT")]
    pub file: Option<PathBuf>,
    /// Records after the last signed checkpoint (a gateway still running) are a warning, not
    /// a failure. Needs `--pubkey`.
    #[arg(long)]
    pub allow_unsigned_tail: bool,
}

/// Arguments of `warden audit tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `DataArg`")]
    pub data: DataArg,
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `StoreArg`")]
    pub store: store::StoreArg,
    /// How many records.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
    pub lines: u64,
}

/// Arguments of `warden audit show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The record's sequence number.
    pub seq: u64,
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `DataArg`")]
    pub data: DataArg,
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `StoreArg`")]
    pub store: store::StoreArg,
}

/// Arguments of `warden audit search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The phrase to find (several words are one phrase).
    #[arg(value_name = "TEXT", required = true)]
    pub text: Vec<String>,
    /// Only records of this session.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// At most this many hits (the newest).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: u64,
    /// One JSON object per hit and line: `{"seq","time","session","kind","snippet"}`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `DataArg`")]
    pub data: DataArg,
    /// Refused with a PostgreSQL URL: the search index is built from a data directory's
    /// ledger only.
    #[command(flatten)]
    pub store: store::StoreArg,
}

/// The data directory: `--data`, else the `WARDEN_DATA` environment variable, else
/// `./warden-data`.
pub fn data_dir(flag: Option<&Path>, env: Option<OsString>) -> PathBuf {
    match (flag, env) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(dir)) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_DATA_DIR),
    }
}

/// Runs `warden audit`.
pub fn execute(args: &AuditArgs) -> ExitCode {
    let data = |d: &DataArg| data_dir(d.data.as_deref(), std::env::var_os("WARDEN_DATA"));
    if let AuditCommand::Search(a) = &args.command {
        if let Err(code) = a.store.refuse_postgres(
            "`search` indexes a data directory's ledger; it does not search the chains in the \
             shared store (read them with `warden audit tail --store URL [--instance ID]`)",
        ) {
            return code;
        }
        // SQLite through `rusqlite`, blocking: no runtime needed.
        return search(&data(&a.data), a);
    }
    match &args.command {
        AuditCommand::Keygen(a) => return keys::execute(a),
        AuditCommand::Prove(a) => return proofs::prove(a),
        AuditCommand::Consistency(a) => return proofs::consistency(a),
        AuditCommand::Watch(a) => return watch::execute(a),
        AuditCommand::Archive(a) => return retention::archive(a),
        AuditCommand::Prune(a) => return retention::prune(a),
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_IO);
        }
    };
    runtime.block_on(async {
        let store = match &args.command {
            AuditCommand::Verify(a) => Some(&a.store),
            AuditCommand::Tail(a) => Some(&a.store),
            AuditCommand::Show(a) => Some(&a.store),
            _ => None,
        };
        let source = match store {
            Some(store) => match store.source().await {
                Ok(source) => source,
                Err(code) => return code,
            },
            None => store::Source::Dir,
        };
        if let store::Source::Store(pool, instance) = source {
            return match &args.command {
                AuditCommand::Verify(a) => match &a.pubkey {
                    Some(pubkey) => store::verify_signed(pool, instance, a, pubkey).await,
                    None if a.checkpoint.is_some() || a.file.is_some() || a.allow_unsigned_tail => {
                        eprintln!(
                            "error: `--checkpoint`, `--file` and `--allow-unsigned-tail` need `--pubkey KEY`"
                        );
                        ExitCode::from(EXIT_USAGE)
                    }
                    None => store::verify(pool, instance, a.format).await,
                },
                AuditCommand::Tail(a) => store::tail(pool, instance, a.lines).await,
                AuditCommand::Show(a) => store::show(pool, instance, a.seq).await,
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
        match &args.command {
            AuditCommand::Verify(a) => verify(&data(&a.data), a).await,
            AuditCommand::Tail(a) => tail(&data(&a.data), a.lines).await,
            AuditCommand::Show(a) => show(&data(&a.data), a.seq).await,
            AuditCommand::Search(a) => search(&data(&a.data), a),
            AuditCommand::Keygen(_)
            | AuditCommand::Prove(_)
            | AuditCommand::Consistency(_)
            | AuditCommand::Watch(_)
            | AuditCommand::Archive(_)
            | AuditCommand::Prune(_) => ExitCode::from(EXIT_USAGE),
        }
    })
}

async fn open(dir: &Path) -> Result<LedgerReader, ExitCode> {
    LedgerReader::open(dir).await.map_err(|e| failure(&e))
}

/// Prints `e` with its causes and picks the exit code.
fn failure(e: &LedgerError) -> ExitCode {
    eprintln!("error: {}", with_causes(e));
    match e {
        LedgerError::NotFound { .. }
        | LedgerError::Format { .. }
        | LedgerError::UnknownInstance { .. } => ExitCode::from(EXIT_USAGE),
        _ => ExitCode::from(EXIT_IO),
    }
}

/// `e`'s message followed by its causes'.
fn with_causes(e: &dyn Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

async fn verify(dir: &Path, args: &VerifyArgs) -> ExitCode {
    let format = args.format;
    let Some(pubkey) = &args.pubkey else {
        if args.checkpoint.is_some() || args.file.is_some() || args.allow_unsigned_tail {
            eprintln!(
                "error: `--checkpoint`, `--file` and `--allow-unsigned-tail` need `--pubkey KEY`"
            );
            return ExitCode::from(EXIT_USAGE);
        }
        return verify_chain(dir, format).await;
    };
    let mark = if args.file.is_some() {
        None
    } else {
        match warden_session::LedgerMark::read(dir).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!(
                    "error: cannot read the ledger mark in `{}`: {}",
                    dir.join(warden_session::state_db::STATE_DB_FILE).display(),
                    with_causes(&e)
                );
                return ExitCode::from(EXIT_IO);
            }
        }
    };
    // Blocking, on the command's own single-threaded runtime: nothing else runs on it.
    signed::verify(dir, args, pubkey, mark)
}

async fn verify_chain(dir: &Path, format: Format) -> ExitCode {
    let reader = match open(dir).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = match reader.verify().await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    let first = match reader.get(1).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    reader.close().await;
    let mark = match warden_session::LedgerMark::read(dir).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "error: cannot read the ledger mark in `{}`: {}",
                dir.join(warden_session::state_db::STATE_DB_FILE).display(),
                with_causes(&e)
            );
            return ExitCode::from(EXIT_IO);
        }
    };
    // A pruned ledger starts after its `pruned` row: its first record is not record 1.
    let pruned = report.head.is_some_and(|h| h.seq > report.records);
    let beyond = if report.is_intact() {
        (!pruned)
            .then(|| missing_start(first.as_ref()))
            .flatten()
            .map(|why| ("missing_start", why))
            .or_else(|| truncated_tail(&report, mark).map(|why| ("truncated_tail", why)))
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    let _ = match (format, &beyond) {
        (Format::Human, None) => writeln!(out, "{}", human(dir, &report)),
        (Format::Json, None) => writeln!(out, "{}", json(&report)),
        (Format::Human, Some((_, why))) => writeln!(out, "ledger NOT intact: {why}"),
        (Format::Json, Some((kind, why))) => writeln!(
            out,
            "{}",
            serde_json::json!({
                "intact": false,
                "records": report.records,
                "head": report.head,
                "problem": { "kind": kind, "message": why },
            })
        ),
    };
    if report.is_intact() && beyond.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_BROKEN)
    }
}

/// Beyond an intact chain, what every ledger warden wrote has: a first record, the
/// `charter_loaded` of its first start. An emptied ledger, or one whose start was cut off and
/// the chain recomputed, fails here. (A cut tail is caught by [`truncated_tail`].)
fn missing_start(first: Option<&warden_audit::Record>) -> Option<String> {
    match first {
        None => Some(
            "the ledger holds no records, but every ledger warden writes starts with `charter_loaded` (an emptied ledger?)"
                .to_owned(),
        ),
        Some(r) if r.kind != warden_audit::RecordKind::CharterLoaded => Some(format!(
            "record 1 is `{}`, not the `charter_loaded` every ledger warden writes starts with (its start was removed?)",
            r.kind
        )),
        Some(_) => None,
    }
}

/// Beyond an intact chain: the ledger's head is not older than the last sequence number the
/// gateway recorded in `state.db` as committed (the ledger mark). A ledger whose last records
/// were removed, the chain still intact, fails here.
fn truncated_tail(report: &VerifyReport, mark: Option<u64>) -> Option<String> {
    let mark = mark?;
    let head = report.head.map_or(0, |h| h.seq);
    (head < mark).then(|| {
        format!(
            "truncated tail: the ledger ends at record {head}, but the gateway recorded in `state.db` that record {mark} was committed (records after {head} were removed?)"
        )
    })
}

fn human(dir: &Path, report: &VerifyReport) -> String {
    let db = dir.join(warden_audit::store::DB_FILE);
    let head = |r: &VerifyReport| match r.head {
        Some(h) => format!("last intact record {} (hash {})", h.seq, hex(&h.hash)),
        None => "no record before it".to_owned(),
    };
    match &report.first_problem {
        None => match report.head {
            Some(h) => format!(
                "ledger intact: {} records verified in `{}`; head is record {} (hash {}){}",
                report.records,
                db.display(),
                h.seq,
                hex(&h.hash),
                match h.seq.saturating_sub(report.records) {
                    0 => String::new(),
                    pruned => format!(
                        "; records 1 to {pruned} were pruned (`--pubkey KEY` checks the \
                         pruned row against its signed checkpoint)"
                    ),
                }
            ),
            None => format!("ledger intact: `{}` holds no records", db.display()),
        },
        Some(problem) => format!(
            "ledger NOT intact: {problem}\n{} records verified before it; {}",
            report.records,
            head(report)
        ),
    }
}

fn json(report: &VerifyReport) -> serde_json::Value {
    let problem = report.first_problem.as_ref().map(|p| {
        let mut v = serde_json::to_value(p).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert("message".to_owned(), p.to_string().into());
        }
        v
    });
    serde_json::json!({
        "intact": report.is_intact(),
        "records": report.records,
        "head": report.head,
        "problem": problem,
    })
}

async fn tail(dir: &Path, n: u64) -> ExitCode {
    let reader = match open(dir).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let records = match reader.tail(n).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    reader.close().await;
    let mut out = std::io::stdout().lock();
    for r in records {
        // A closed pipe (`| head`) ends the output; it is not an error.
        if writeln!(out, "{}", r.to_json_line()).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

async fn show(dir: &Path, seq: u64) -> ExitCode {
    let reader = match open(dir).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let record = reader.get(seq).await;
    reader.close().await;
    match record {
        Ok(Some(r)) => {
            let _ = writeln!(std::io::stdout().lock(), "{}", r.to_json_line());
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!(
                "error: the ledger in `{}` has no record {seq}",
                dir.display()
            );
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => failure(&e),
    }
}

/// Brings the index up to date, then searches it.
fn search(dir: &Path, args: &SearchArgs) -> ExitCode {
    let found = SearchIndex::open(dir).and_then(|mut index| {
        let update = index.update()?;
        if update.rebuilt {
            eprintln!(
                "note: the search index `{}` did not match the ledger; rebuilt it",
                index.path().display()
            );
        }
        index.search(&args.text.join(" "), args.session.as_deref(), args.limit)
    });
    let hits = match found {
        Ok(hits) => hits,
        Err(SearchError::Ledger(e)) => return failure(&e),
        Err(e) => {
            eprintln!("error: {}", with_causes(&e));
            return match e {
                SearchError::Format { .. } => ExitCode::from(EXIT_USAGE),
                _ => ExitCode::from(EXIT_IO),
            };
        }
    };
    let mut out = std::io::stdout().lock();
    for hit in &hits {
        let line = if args.json {
            serde_json::to_string(hit).unwrap_or_default()
        } else {
            hit_line(hit)
        };
        // A closed pipe (`| head`) ends the output; it is not an error.
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// `SEQ  TIME  SESSION  KIND  SNIPPET` on one line: `-` for no session; control characters
/// (the newlines between a payload's strings, a model's escape sequences) as spaces.
fn hit_line(hit: &Hit) -> String {
    let snippet: String = hit
        .snippet
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let session: String = hit
        .session
        .as_deref()
        .unwrap_or("-")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "{}  {}  {session}  {}  {snippet}",
        hit.seq, hit.time, hit.kind
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_comes_from_the_flag_then_the_environment() {
        let flag = Path::new("/a");
        assert_eq!(data_dir(Some(flag), Some("/b".into())), PathBuf::from("/a"));
        assert_eq!(data_dir(None, Some("/b".into())), PathBuf::from("/b"));
        assert_eq!(
            data_dir(None, Some("".into())),
            PathBuf::from("warden-data")
        );
        assert_eq!(data_dir(None, None), PathBuf::from("warden-data"));
    }

    #[test]
    fn a_hit_is_one_line_without_control_characters() {
        let hit = Hit {
            seq: 7,
            time: "2026-11-21T06:00:01.500000000Z".to_owned(),
            session: None,
            kind: "model_completed".to_owned(),
            snippet: "[Paris]\nnext\u{1b}[2J".to_owned(),
        };
        assert_eq!(
            hit_line(&hit),
            "7  2026-11-21T06:00:01.500000000Z  -  model_completed  [Paris] next [2J"
        );
    }
}
