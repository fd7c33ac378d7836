//! `warden audit archive` and `warden audit prune`: retention with the signed checkpoints standing for what was pruned.
//!
//! `archive` copies the records through a signed checkpoint record to an export directory, in
//! the export format (`ledger-<first seq, 20 digits>.jsonl`), fsynced, and reads the copy back
//! against the ledger. `prune` (the gateway stopped) checks that the archive verifies against
//! the key and holds the ledger's records, then deletes the records the archive's newest
//! checkpoint covers, in whole chunks of 256, leaving the `pruned` row (that checkpoint, the
//! inclusion proof of the last pruned record, the tree of the pruned records) and a
//! `ledger_pruned` record. `docs/verification.md` walks through both.
//!
//! Exit codes: 0 done (or nothing to do), 3 the archive or the ledger does not verify, or does
//! not match, 64 bad usage, 74 IO, 75 (`EX_TEMPFAIL`) the ledger is open in a running gateway.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use warden_audit::chain::Record;
use warden_audit::merkle;
use warden_audit::signed::export::{ExportError, export_files, export_name};
use warden_audit::signed::pruned::{PRUNE_ALIGN, PrunedRow, frontier_from_proof};
use warden_audit::signed::{self, Finding};
use warden_audit::store::prune_ledger;
use warden_audit::{LedgerError, LedgerReader, LedgerSource};

use super::proofs::find_checkpoint;
use super::signed::key;
use super::store::{Source, StoreArg};
use super::{DataArg, EXIT_BROKEN, EXIT_IO, data_dir, failure, with_causes};
use crate::EXIT_USAGE;

/// The ledger is open in a running gateway (`EX_TEMPFAIL`).
pub const EXIT_IN_USE: u8 = 75;
/// Records read from the ledger per query while archiving.
const PAGE: u64 = 1000;

/// Arguments of `warden audit archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The export directory to copy the records to (created, 0700, if missing).
    #[arg(long, value_name = "EXPORT_DIR")]
    pub to: PathBuf,
    /// Archive at most through this record: through the newest `checkpoint_signed` record
    /// whose checkpoint covers no more than SEQ records [default: the newest].
    #[arg(long, value_name = "SEQ")]
    pub through: Option<u64>,
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `DataArg`")]
    pub data: DataArg,
    /// With `--store URL --instance ID`: archive that instance's chain in the shared store
    /// (each instance to an export directory of its own).
    #[command(flatten)]
    pub store: StoreArg,
}

/// Arguments of `warden audit prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The export directory `warden audit archive` wrote.
    #[arg(long, value_name = "EXPORT_DIR")]
    pub archive: PathBuf,
    /// The verifier key of the gateway's checkpoints (text or file).
    #[arg(long, value_name = "KEY")]
    pub pubkey: String,
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `DataArg`")]
    pub data: DataArg,
    /// Refused with a PostgreSQL URL: the chains in the shared store are not pruned.
    #[command(flatten)]
    pub store: StoreArg,
}

fn run<F: std::future::Future<Output = ExitCode>>(f: F) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_IO)
        }
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> ExitCode {
    eprintln!("error: cannot {what} `{}`: {e}", path.display());
    ExitCode::from(EXIT_IO)
}

/// The last record of the export in `dir`, if it holds any export file.
fn last_archived(dir: &Path) -> Result<Option<Record>, ExitCode> {
    let files = match export_files(dir) {
        Ok(f) => f,
        Err(ExportError::NotExport { .. }) => return Ok(None),
        Err(ExportError::Io { path, source }) => return Err(io_error("read", &path, &source)),
    };
    let Some(last) = files.last() else {
        return Ok(None);
    };
    let file = std::fs::File::open(last).map_err(|e| io_error("read", last, &e))?;
    let mut record = None;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| io_error("read", last, &e))?;
        match Record::from_json_line(&line) {
            Ok(r) => record = Some(r),
            Err(e) => {
                eprintln!(
                    "error: `{}` is not an export file: {e}; verify it with `warden audit verify --file`",
                    last.display()
                );
                return Err(ExitCode::from(EXIT_BROKEN));
            }
        }
    }
    Ok(record)
}

/// Runs `warden audit archive`.
pub(super) fn archive(args: &ArchiveArgs) -> ExitCode {
    let dir = data_dir(args.data.data.as_deref(), std::env::var_os("WARDEN_DATA"));
    run(async {
        let source = match args.store.source().await {
            Ok(Source::Dir) => LedgerSource::Dir(dir),
            Ok(Source::Store(pool, Some(instance))) => LedgerSource::Postgres {
                pool,
                instance: Some(instance),
            },
            Ok(Source::Store(pool, None)) => {
                pool.close().await;
                eprintln!(
                    "error: `archive` copies one instance's chain: give `--instance ID` (each \
                     instance's chain to an export directory of its own)"
                );
                return ExitCode::from(EXIT_USAGE);
            }
            Err(code) => return code,
        };
        let code = archive_in(&source, args).await;
        if let LedgerSource::Postgres { pool, .. } = &source {
            pool.close().await;
        }
        code
    })
}

async fn archive_in(source: &LedgerSource, args: &ArchiveArgs) -> ExitCode {
    let reader = match LedgerReader::open_source(source).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    let limit = args.through.unwrap_or(u64::MAX);
    // The newest checkpoint record covering at most `limit` records: the archive ends on it.
    let checkpoint = match find_checkpoint(&reader, |h| h.size <= limit, None).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            eprintln!(
                "error: the ledger holds no `checkpoint_signed` record covering at most {limit} records: nothing can be archived so that it verifies"
            );
            return ExitCode::from(EXIT_USAGE);
        }
        Err(code) => return code,
    };
    let Some(end) = checkpoint.seq else {
        return ExitCode::from(EXIT_IO);
    };
    let first = match reader.range(0, 1).await {
        Ok(r) => r.first().map_or(1, |r| r.seq),
        Err(e) => return failure(&e),
    };
    if let Err(e) = warden_core::private::private_dir(&args.to) {
        return io_error("create", &args.to, &e);
    }
    let start = match last_archived(&args.to) {
        Ok(Some(r)) => {
            if let Err(code) = continues(&reader, &r, first, &args.to).await {
                return code;
            }
            r.seq.saturating_add(1).max(first)
        }
        Ok(None) => first,
        Err(code) => return code,
    };
    if start > end {
        println!(
            "nothing to archive: records through {end} (the checkpoint of {} records) are in `{}` already",
            checkpoint.size,
            args.to.display()
        );
        return ExitCode::SUCCESS;
    }
    let name = export_name(start);
    let target = args.to.join(&name);
    let partial = args.to.join(format!(".{name}.partial"));
    if target.exists() {
        eprintln!(
            "error: `{}` exists already; not overwritten",
            target.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let written = copy(&reader, &partial, start, end).await;
    reader.close().await;
    if let Err(code) = written {
        let _ = std::fs::remove_file(&partial);
        return code;
    }
    if let Err(e) = std::fs::rename(&partial, &target) {
        return io_error("rename into", &target, &e);
    }
    if let Err(e) = std::fs::File::open(&args.to).and_then(|d| d.sync_all()) {
        return io_error("sync", &args.to, &e);
    }
    // Read the copy back against the ledger: every line the record it stands for.
    let reader = match LedgerReader::open_source(source).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    let checked = check_copy(&reader, &target, start, end).await;
    reader.close().await;
    if let Err(code) = checked {
        return code;
    }
    println!(
        "archived records {start} to {end} (through the checkpoint record {end}, of {} records) to `{}`, fsynced and read back; check the archive with `warden audit verify --file {} --pubkey KEY`",
        checkpoint.size,
        target.display(),
        args.to.display()
    );
    ExitCode::SUCCESS
}

/// The export in `dir` ends with `last`, which the ledger (whose first record is `first`)
/// holds as that very record, unless it was pruned since: an export of another ledger
/// (another instance's chain), or one ahead of this ledger, is never continued with this
/// one's records.
async fn continues(
    reader: &LedgerReader,
    last: &Record,
    first: u64,
    dir: &Path,
) -> Result<(), ExitCode> {
    if last.seq < first {
        // Pruned from the ledger since: the pruned row stands for it.
        return Ok(());
    }
    match reader.get(last.seq).await {
        Ok(held) if held.as_ref().is_none_or(|h| h.hash != last.hash) => {
            eprintln!(
                "error: the export `{}` does not continue this ledger: its last record {} is not \
                 the ledger's record {} (the archive of another ledger or instance?); nothing \
                 was written",
                dir.display(),
                last.seq,
                last.seq
            );
            Err(ExitCode::from(EXIT_BROKEN))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(failure(&e)),
    }
}

/// Writes records `start..=end` to `path` (created 0600, new), one line each, and fsyncs it.
async fn copy(reader: &LedgerReader, path: &Path, start: u64, end: u64) -> Result<(), ExitCode> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error("create", path, &e))?;
    let mut out = std::io::BufWriter::new(file);
    let mut next = start;
    while next <= end {
        let page = reader
            .range(next, PAGE.min(end - next + 1))
            .await
            .map_err(|e| failure(&e))?;
        for r in &page {
            if r.seq != next {
                eprintln!(
                    "error: record {next} is missing from the ledger; run `warden audit verify`"
                );
                return Err(ExitCode::from(EXIT_BROKEN));
            }
            writeln!(out, "{}", r.to_json_line()).map_err(|e| io_error("write", path, &e))?;
            next += 1;
        }
        if page.is_empty() {
            eprintln!("error: the ledger ends before record {next}");
            return Err(ExitCode::from(EXIT_BROKEN));
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| io_error("write", path, e.error()))?;
    file.sync_all().map_err(|e| io_error("sync", path, &e))
}

/// Every line of the copy is the ledger's record, in order, and nothing else.
async fn check_copy(
    reader: &LedgerReader,
    path: &Path,
    start: u64,
    end: u64,
) -> Result<(), ExitCode> {
    let file = std::fs::File::open(path).map_err(|e| io_error("read", path, &e))?;
    let mut lines = BufReader::new(file).lines();
    let mut next = start;
    while next <= end {
        let page = reader
            .range(next, PAGE.min(end - next + 1))
            .await
            .map_err(|e| failure(&e))?;
        for r in &page {
            let line = lines
                .next()
                .transpose()
                .map_err(|e| io_error("read", path, &e))?;
            if line.as_deref() != Some(r.to_json_line().as_str()) {
                eprintln!(
                    "error: the copy `{}` does not hold record {} as the ledger does",
                    path.display(),
                    r.seq
                );
                return Err(ExitCode::from(EXIT_BROKEN));
            }
            next += 1;
        }
        if page.is_empty() {
            break;
        }
    }
    if lines.next().is_some() {
        eprintln!(
            "error: the copy `{}` holds more than records {start} to {end}",
            path.display()
        );
        return Err(ExitCode::from(EXIT_BROKEN));
    }
    Ok(())
}

/// Runs `warden audit prune`.
pub(super) fn prune(args: &PruneArgs) -> ExitCode {
    if let Err(code) = args.store.refuse_postgres(
        "`prune` removes records from a data directory's ledger; the chains in the shared \
         store are not pruned (archive an instance's chain with `warden audit archive --store \
         URL --instance ID`)",
    ) {
        return code;
    }
    let dir = data_dir(args.data.data.as_deref(), std::env::var_os("WARDEN_DATA"));
    run(prune_in(dir, args))
}

/// A verification that found nothing but (perhaps) records not signed yet.
fn clean(what: &str, report: &signed::Report) -> Result<(), ExitCode> {
    match &report.finding {
        None | Some(Finding::UnsignedTail { .. }) => Ok(()),
        Some(f) => {
            eprintln!("error: {what} does not verify: {f}; nothing was pruned");
            Err(ExitCode::from(EXIT_BROKEN))
        }
    }
}

async fn prune_in(dir: PathBuf, args: &PruneArgs) -> ExitCode {
    let key = match key(&args.pubkey) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let archived = match signed::export::verify(&args.archive, &key, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}", with_causes(&e));
            return ExitCode::from(match e {
                ExportError::NotExport { .. } => EXIT_USAGE,
                ExportError::Io { .. } => EXIT_IO,
            });
        }
    };
    if let Err(code) = clean(
        &format!("the archive `{}`", args.archive.display()),
        &archived,
    ) {
        return code;
    }
    let ledger = match signed::verify_ledger(&dir, &key, None) {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    if let Err(code) = clean("the ledger", &ledger) {
        return code;
    }
    let p = archived.signed;
    let q = p / PRUNE_ALIGN * PRUNE_ALIGN;
    let already = ledger
        .head
        .map_or(0, |h| h.seq.saturating_sub(ledger.records));
    if q <= already {
        println!(
            "nothing to prune: the archive's newest checkpoint covers {p} records, and records are pruned in whole chunks of {PRUNE_ALIGN} (records 1 to {already} are pruned already)"
        );
        return ExitCode::SUCCESS;
    }
    let reader = match LedgerReader::open(&dir).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    let planned = plan(&reader, &archived, &key, q, p).await;
    reader.close().await;
    let row = match planned {
        Ok(row) => row,
        Err(code) => return code,
    };
    let archive = args.archive.display().to_string();
    match prune_ledger(&dir, &row, p, &archive) {
        Ok(done) => {
            println!(
                "pruned records 1 to {} (archived in `{archive}`; the checkpoint of {p} records stands for them); record {} says so",
                done.through, done.record
            );
            ExitCode::SUCCESS
        }
        Err(LedgerError::Locked { path }) => {
            eprintln!(
                "error: the ledger in `{}` is open in a running gateway (its lock `ledger.lock` is held); stop the gateway, then prune",
                path.display()
            );
            ExitCode::from(EXIT_IN_USE)
        }
        Err(e) => failure(&e),
    }
}

/// The `pruned` row for pruning through `q` with the checkpoint of `p` records, after
/// checking that the ledger holds the archive's records.
async fn plan(
    reader: &LedgerReader,
    archived: &signed::Report,
    key: &warden_audit::checkpoint::VerifierKey,
    q: u64,
    p: u64,
) -> Result<PrunedRow, ExitCode> {
    let Some(archive_head) = archived.head else {
        eprintln!("error: the archive holds no records");
        return Err(ExitCode::from(EXIT_USAGE));
    };
    match reader.get(archive_head.seq).await {
        Ok(Some(r)) if r.hash == archive_head.hash => {}
        Ok(_) => {
            eprintln!(
                "error: the ledger does not hold the archive's last record {} as the archive does (another ledger's archive?); nothing was pruned",
                archive_head.seq
            );
            return Err(ExitCode::from(EXIT_BROKEN));
        }
        Err(e) => return Err(failure(&e)),
    }
    let checkpoint = find_checkpoint(reader, |h| h.size == p, Some(key))
        .await?
        .ok_or_else(|| {
            eprintln!("error: the ledger holds no `checkpoint_signed` record of {p} records");
            ExitCode::from(EXIT_BROKEN)
        })?;
    let last = match reader.get(q).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!("error: the ledger has no record {q}");
            return Err(ExitCode::from(EXIT_BROKEN));
        }
        Err(e) => return Err(failure(&e)),
    };
    let proof = reader
        .inclusion_proof(q, p)
        .await
        .map_err(|e| failure(&e))?;
    let leaf = merkle::leaf_hash(&last.hash);
    let frontier = merkle::verify_inclusion(q - 1, p, &leaf, &proof, &checkpoint.root)
        .ok()
        .and_then(|()| frontier_from_proof(q, p, &leaf, &proof))
        .ok_or_else(|| {
            eprintln!("error: record {q} is not proven in the checkpoint of {p} records; run `warden audit verify --pubkey KEY`");
            ExitCode::from(EXIT_BROKEN)
        })?;
    Ok(PrunedRow {
        through: q,
        head_hash: last.hash,
        checkpoint: checkpoint.note,
        proof,
        frontier: frontier.nodes().to_vec(),
    })
}
