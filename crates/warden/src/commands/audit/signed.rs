//! `warden audit verify --pubkey KEY`: the ledger (or an exported copy) against the signed
//! checkpoints it holds and, with `--checkpoint FILE`, one kept outside it.
//!
//! Exit codes: 0 intact (and every record signed, or an unsigned tail allowed by
//! `--allow-unsigned-tail`), 3 a finding, 64 bad usage (a key or a checkpoint file that cannot
//! be read as one, a path that is not an export), 74 the ledger, the export or a file could
//! not be read.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use warden_audit::chain::hex;
use warden_audit::checkpoint::{MAX_NOTE_BYTES, VerifierKey};
use warden_audit::signed::{self, Finding, Report};

use super::{EXIT_BROKEN, EXIT_IO, VerifyArgs, failure, with_causes};
use crate::EXIT_USAGE;
use crate::output::Format;

/// The key given by `--pubkey`, or the exit code of a bad one.
pub(super) fn key(arg: &str) -> Result<VerifierKey, ExitCode> {
    VerifierKey::from_arg(arg).map_err(|e| {
        eprintln!(
            "error: `--pubkey` is not a verifier key: {}",
            with_causes(&e)
        );
        ExitCode::from(EXIT_USAGE)
    })
}

/// The text of a signed checkpoint file (at most a signed note's size).
pub(super) fn read_checkpoint(path: &Path) -> Result<String, ExitCode> {
    let io = |e: std::io::Error| {
        eprintln!(
            "error: cannot read the checkpoint `{}`: {e}",
            path.display()
        );
        ExitCode::from(EXIT_IO)
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    let limit = u64::try_from(MAX_NOTE_BYTES).unwrap_or(u64::MAX);
    file.take(limit.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() > MAX_NOTE_BYTES {
        eprintln!(
            "error: `{}` is not a signed checkpoint: it is larger than {MAX_NOTE_BYTES} bytes",
            path.display()
        );
        return Err(ExitCode::from(EXIT_USAGE));
    }
    Ok(text)
}

/// Runs `warden audit verify` with `--pubkey`: over the ledger in `dir`, or the export
/// `--file` names.
///
/// `mark` is the last record the gateway recorded as committed in `state.db` (the ledger
/// mark), for the ledger: a ledger that ends before it is truncated even when no checkpoint
/// shows it.
pub(super) fn verify(dir: &Path, args: &VerifyArgs, pubkey: &str, mark: Option<u64>) -> ExitCode {
    let key = match key(pubkey) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let anchor = match args.checkpoint.as_deref().map(read_checkpoint).transpose() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let (report, source) = match &args.file {
        Some(export) => match signed::export::verify(export, &key, anchor.as_deref()) {
            Ok(r) => (r, format!("the export `{}`", export.display())),
            Err(e) => {
                eprintln!("error: {}", with_causes(&e));
                return ExitCode::from(match e {
                    signed::export::ExportError::NotExport { .. } => EXIT_USAGE,
                    signed::export::ExportError::Io { .. } => EXIT_IO,
                });
            }
        },
        None => match signed::verify_ledger(dir, &key, anchor.as_deref()) {
            Ok(r) => (
                r,
                format!("`{}`", dir.join(warden_audit::store::DB_FILE).display()),
            ),
            Err(e) => return failure(&e),
        },
    };
    let mark = mark.filter(|_| args.file.is_none());
    let (finding, warning) = verdict(&report, mark, args.allow_unsigned_tail);
    let line = render(
        args.format,
        None,
        &source,
        &report,
        (finding.as_ref(), warning.as_ref()),
        anchor.is_some(),
    );
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    if finding.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_BROKEN)
    }
}

/// What a report comes to: its finding, or, beyond it, a ledger that ends before `mark` (the
/// last record its writer recorded as committed: truncated even when no checkpoint shows
/// it); and an unsigned tail turned into a warning by `allow_unsigned_tail`.
pub(super) fn verdict(
    report: &Report,
    mark: Option<u64>,
    allow_unsigned_tail: bool,
) -> (Option<Finding>, Option<Finding>) {
    let head = report.head.map_or(0, |h| h.seq);
    let below_mark = mark.filter(|m| *m > head).map(|m| Finding::Truncated {
        records: head,
        checkpoint: m,
    });
    match report.finding.clone() {
        Some(tail @ Finding::UnsignedTail { .. }) if allow_unsigned_tail => {
            (below_mark, Some(tail))
        }
        None => (below_mark, None),
        other => (other, None),
    }
}

/// The report as `format` prints it (human: the warning, if any, goes to stderr), each human
/// line starting with `instance NAME: ` and the JSON object holding `instance` when
/// `instance` names one chain of the shared store.
pub(super) fn render(
    format: Format,
    instance: Option<&str>,
    source: &str,
    report: &Report,
    (finding, warning): (Option<&Finding>, Option<&Finding>),
    anchored: bool,
) -> String {
    match format {
        Format::Human => {
            let prefix = instance
                .map(|i| format!("instance {i}: "))
                .unwrap_or_default();
            if let Some(w) = warning {
                eprintln!("warning: {prefix}{w}");
            }
            human(source, report, finding, anchored)
                .lines()
                .map(|l| format!("{prefix}{l}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Format::Json => {
            let mut v = json(report, finding, warning);
            if let (Some(name), Some(map)) = (instance, v.as_object_mut()) {
                map.insert("instance".to_owned(), name.into());
            }
            v.to_string()
        }
    }
}

fn human(source: &str, report: &Report, finding: Option<&Finding>, anchored: bool) -> String {
    let head = match report.head {
        Some(h) => format!("record {} (hash {})", h.seq, hex(&h.hash)),
        None => "none".to_owned(),
    };
    match finding {
        Some(f) => format!(
            "ledger NOT intact: {f}\nfinding: {}, first record {}; {} records read intact before it, last {head}",
            f.name(),
            f.first_record().map_or_else(
                || "none (the checkpoint itself)".to_owned(),
                |s| s.to_string()
            ),
            report.records,
        ),
        None => format!(
            "ledger intact and signed: {} records verified in {source}; head is {head}; {} signed \
             checkpoints verified, covering {} records{}{}",
            report.records,
            report.checkpoints,
            report.signed,
            report
                .origin
                .as_deref()
                .map(|o| format!(" (origin `{o}`)"))
                .unwrap_or_default(),
            if anchored {
                "; the anchor checkpoint matches"
            } else {
                ""
            },
        ),
    }
}

fn json(
    report: &Report,
    finding: Option<&Finding>,
    warning: Option<&Finding>,
) -> serde_json::Value {
    let described = |f: &Finding| {
        let mut v = serde_json::to_value(f).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert("message".to_owned(), f.to_string().into());
            map.insert("first_record".to_owned(), f.first_record().into());
        }
        v
    };
    serde_json::json!({
        "intact": finding.is_none(),
        "records": report.records,
        "head": report.head,
        "signed": report.signed,
        "checkpoints": report.checkpoints,
        "origin": report.origin,
        "finding": finding.map(described),
        "warning": warning.map(described),
    })
}
