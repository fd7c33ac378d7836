//! `warden audit prove` and `warden audit consistency`: Merkle proofs against signed checkpoints.
//!
//! Each proof is built from the ledger's stored tree and checked (RFC 9162's verification
//! algorithms) against the checkpoint's root before it is printed, so a printed proof is one
//! that holds; with `--pubkey` the checkpoint's signature is checked too. The output carries
//! everything an outside verifier needs: the leaf index, the tree sizes, the leaf's input (the
//! record's 32-byte chain hash), the proof hashes in base64 (as C2SP and RFC 9162 tools write
//! them) and the roots.
//!
//! Exit codes: 0 the proof holds, 3 it does not (or the signature does not verify), 64 bad
//! usage (no such record, no checkpoint covering it, an argument that is neither a size nor a
//! checkpoint file), 74 the ledger or a file could not be read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use warden_audit::chain::hex;
use warden_audit::checkpoint::{Checkpoint, VerifierKey};
use warden_audit::merkle::{self, Hash};
use warden_audit::signed::{hash_base64, hash_from_base64};
use warden_audit::{LedgerError, LedgerReader, RecordKind};

use super::signed::{key, read_checkpoint};
use super::{DataArg, EXIT_BROKEN, EXIT_IO, data_dir, failure};
use crate::EXIT_USAGE;
use crate::output::Format;

/// How many `checkpoint_signed` records are searched for one of a given size.
const MAX_CHECKPOINTS_SEARCHED: u64 = 1_000_000;
/// Checkpoint records read per query while searching.
const PAGE: u64 = 1000;

/// Arguments of `warden audit prove`.
#[derive(Debug, Args)]
pub struct ProveArgs {
    /// The record to prove.
    pub seq: u64,
    /// The signed checkpoint to prove it against (a note file) [default: the newest
    /// `checkpoint_signed` record in the ledger, which covers it].
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Check the checkpoint's signature with this verifier key (text or file) too.
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `DataArg`")]
    pub data: DataArg,
}

/// Arguments of `warden audit consistency`.
#[derive(Debug, Args)]
pub struct ConsistencyArgs {
    /// The older checkpoint: a note file, or a size a `checkpoint_signed` record in the ledger
    /// signed.
    pub old: String,
    /// The newer checkpoint: a note file, or a size a `checkpoint_signed` record signed.
    pub new: String,
    /// Check both checkpoints' signatures with this verifier key (text or file) too.
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    #[command(flatten)]
    #[allow(missing_docs, reason = "documented on `DataArg`")]
    pub data: DataArg,
}

/// A checkpoint as read: its size and root, its note, and the record that holds it.
pub(super) struct Head {
    pub(super) size: u64,
    pub(super) root: Hash,
    pub(super) origin: String,
    pub(super) note: String,
    /// The `checkpoint_signed` record it was read from, if any.
    pub(super) seq: Option<u64>,
}

fn b64(hash: &Hash) -> String {
    hash_base64(hash)
}

/// Runs `f` on a single-threaded runtime.
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

/// Reads a checkpoint note: opened with `key` when given (its signature verified), else its
/// body read without a signature check.
fn read_note(note: &str, key: Option<&VerifierKey>) -> Result<Head, ExitCode> {
    let bad = |why: String| {
        eprintln!("error: {why}");
        ExitCode::from(EXIT_BROKEN)
    };
    let (origin, size, root) = match key {
        Some(key) => {
            let cp = Checkpoint::open(note, key)
                .map_err(|e| bad(format!("the checkpoint does not verify with the key: {e}")))?;
            (cp.origin, cp.size, cp.root)
        }
        None => unverified_body(note).ok_or_else(|| {
            eprintln!("error: the checkpoint is not a signed checkpoint note");
            ExitCode::from(EXIT_USAGE)
        })?,
    };
    Ok(Head {
        size,
        root,
        origin,
        note: note.to_owned(),
        seq: None,
    })
}

/// The origin, size and root of a checkpoint note, its signature NOT checked (without
/// `--pubkey`: the proof is still checked against the root it states).
fn unverified_body(note: &str) -> Option<(String, u64, Hash)> {
    let (body, _signatures) = note.split_once("\n\n")?;
    let mut lines = body.split('\n');
    let origin = lines.next()?.to_owned();
    let size = lines.next()?.parse().ok()?;
    let root = hash_from_base64(lines.next()?)?;
    Some((origin, size, root))
}

/// The `checkpoint_signed` records of the ledger, newest first, until `pick` takes one (read
/// with `key` when given: records whose note does not verify are passed over).
pub(super) async fn find_checkpoint(
    reader: &LedgerReader,
    pick: impl Fn(&Head) -> bool,
    key: Option<&VerifierKey>,
) -> Result<Option<Head>, ExitCode> {
    let mut before = None;
    let mut searched = 0u64;
    while searched < MAX_CHECKPOINTS_SEARCHED {
        let page = reader
            .newest_of_kinds(&[RecordKind::CheckpointSigned.as_str()], before, PAGE)
            .await
            .map_err(|e| failure(&e))?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        before = Some(last.seq);
        searched = searched.saturating_add(page.len() as u64);
        for record in &page {
            let Some(note) = record.payload.get("note").and_then(|n| n.as_str()) else {
                continue;
            };
            // Picked by what the note says, then (with a key) opened: only the candidates'
            // signatures are checked, and a note that does not verify is passed over quietly.
            let Some((origin, size, root)) = unverified_body(note) else {
                continue;
            };
            let head = Head {
                size,
                root,
                origin,
                note: note.to_owned(),
                seq: Some(record.seq),
            };
            if !pick(&head) {
                continue;
            }
            if let Some(key) = key {
                match Checkpoint::open(note, key) {
                    Ok(cp) if cp.size == head.size && cp.root == head.root => {}
                    _ => continue,
                }
            }
            if pick(&head) {
                return Ok(Some(head));
            }
        }
    }
    Ok(None)
}

/// Prints a proof failure (exit 3) or a ledger error.
fn proof_error(e: &LedgerError) -> ExitCode {
    match e {
        LedgerError::BeyondHead { .. } => {
            eprintln!(
                "error: {e}: the ledger holds fewer records than the checkpoint signed (truncated or rolled back?); run `warden audit verify --pubkey KEY --checkpoint FILE`"
            );
            ExitCode::from(EXIT_BROKEN)
        }
        LedgerError::NotInTree { .. }
        | LedgerError::EmptyTree
        | LedgerError::Shrinks { .. }
        | LedgerError::Pruned { .. } => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        other => failure(other),
    }
}

/// Runs `warden audit prove`.
pub(super) fn prove(args: &ProveArgs) -> ExitCode {
    let dir = data_dir(args.data.data.as_deref(), std::env::var_os("WARDEN_DATA"));
    let key = match args.pubkey.as_deref().map(key).transpose() {
        Ok(k) => k,
        Err(code) => return code,
    };
    run(prove_in(dir, args, key))
}

async fn prove_in(dir: PathBuf, args: &ProveArgs, key: Option<VerifierKey>) -> ExitCode {
    let seq = args.seq;
    let head = match &args.checkpoint {
        Some(path) => match read_checkpoint(path).and_then(|n| read_note(&n, key.as_ref())) {
            Ok(h) => Some(h),
            Err(code) => return code,
        },
        None => None,
    };
    let reader = match LedgerReader::open(&dir).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    let head = match head {
        Some(h) => h,
        None => match find_checkpoint(&reader, |h| h.size >= seq, key.as_ref()).await {
            Ok(Some(h)) => h,
            Ok(None) => {
                eprintln!(
                    "error: no signed checkpoint in the ledger covers record {seq} yet; give one with `--checkpoint FILE`"
                );
                return ExitCode::from(EXIT_USAGE);
            }
            Err(code) => return code,
        },
    };
    let record = match reader.get(seq).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!(
                "error: the ledger in `{}` has no record {seq}",
                dir.display()
            );
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => return failure(&e),
    };
    let proof = match reader.inclusion_proof(seq, head.size).await {
        Ok(p) => p,
        Err(e) => return proof_error(&e),
    };
    reader.close().await;
    let leaf = merkle::leaf_hash(&record.hash);
    let index = seq.saturating_sub(1);
    if let Err(e) = merkle::verify_inclusion(index, head.size, &leaf, &proof, &head.root) {
        eprintln!(
            "error: record {seq} is not proven in the checkpoint of {} records: {e} (the ledger does not hold what the checkpoint signed; run `warden audit verify --pubkey KEY`)",
            head.size
        );
        return ExitCode::from(EXIT_BROKEN);
    }
    let out = serde_json::json!({
        "seq": seq,
        "leaf_index": index,
        "tree_size": head.size,
        "leaf_input": hex(&record.hash),
        "leaf_hash": b64(&leaf),
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
        "root": b64(&head.root),
        "origin": head.origin,
        "signature_checked": key.is_some(),
        "checkpoint": head.note,
        "record": record.to_json_line(),
    });
    print(args.format, &out, || {
        let mut text = format!(
            "record {seq} is leaf {index} of the tree of {} records (origin `{}`): the proof holds{}\n\
             leaf input (the record's hash, hex): {}\nleaf hash (base64): {}\nroot (base64): {}\nproof ({} hashes, base64, from the leaf up):\n",
            head.size,
            head.origin,
            if key.is_some() {
                ", and the checkpoint's signature verifies"
            } else {
                " (the checkpoint's signature was not checked: give `--pubkey KEY`)"
            },
            hex(&record.hash),
            b64(&leaf),
            b64(&head.root),
            proof.len(),
        );
        for p in &proof {
            text.push_str(&format!("  {}\n", b64(p)));
        }
        text
    })
}

fn print(format: Format, json: &serde_json::Value, human: impl FnOnce() -> String) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = match format {
        Format::Json => writeln!(out, "{json}"),
        Format::Human => write!(out, "{}", human()),
    };
    ExitCode::SUCCESS
}

/// Runs `warden audit consistency`.
pub(super) fn consistency(args: &ConsistencyArgs) -> ExitCode {
    let dir = data_dir(args.data.data.as_deref(), std::env::var_os("WARDEN_DATA"));
    let key = match args.pubkey.as_deref().map(key).transpose() {
        Ok(k) => k,
        Err(code) => return code,
    };
    run(consistency_in(dir, args, key))
}

/// A checkpoint named on the command line: a size signed by a checkpoint record, or a file.
async fn named(
    reader: &LedgerReader,
    arg: &str,
    key: Option<&VerifierKey>,
) -> Result<Head, ExitCode> {
    if let Ok(size) = arg.parse::<u64>() {
        return match find_checkpoint(reader, |h| h.size == size, key).await? {
            Some(h) => Ok(h),
            None => {
                eprintln!(
                    "error: no `checkpoint_signed` record in the ledger signed a tree of {size} records"
                );
                Err(ExitCode::from(EXIT_USAGE))
            }
        };
    }
    let path = Path::new(arg);
    if !path.is_file() {
        eprintln!("error: `{arg}` is neither a tree size nor a checkpoint file");
        return Err(ExitCode::from(EXIT_USAGE));
    }
    read_note(&read_checkpoint(path)?, key)
}

async fn consistency_in(
    dir: PathBuf,
    args: &ConsistencyArgs,
    key: Option<VerifierKey>,
) -> ExitCode {
    let reader = match LedgerReader::open(&dir).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    let (old, new) = match (
        named(&reader, &args.old, key.as_ref()).await,
        named(&reader, &args.new, key.as_ref()).await,
    ) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    if old.origin != new.origin {
        eprintln!(
            "error: the checkpoints are of different logs (`{}` and `{}`)",
            old.origin, new.origin
        );
        return ExitCode::from(EXIT_BROKEN);
    }
    let proof = match reader.consistency_proof(old.size, new.size).await {
        Ok(p) => p,
        Err(e) => return proof_error(&e),
    };
    reader.close().await;
    if let Err(e) = merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof) {
        eprintln!(
            "error: the checkpoint of {} records does not extend the one of {} records: {e} (a fork, or a ledger rewritten between them)",
            new.size, old.size
        );
        return ExitCode::from(EXIT_BROKEN);
    }
    let out = serde_json::json!({
        "old_size": old.size,
        "old_root": b64(&old.root),
        "new_size": new.size,
        "new_root": b64(&new.root),
        "origin": new.origin,
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
        "signature_checked": key.is_some(),
        "old_checkpoint": old.note,
        "new_checkpoint": new.note,
    });
    print(args.format, &out, || {
        let mut text = format!(
            "the tree of {} records extends the tree of {} records (origin `{}`): the proof holds{}\n\
             old root (base64): {}\nnew root (base64): {}\nproof ({} hashes, base64):\n",
            new.size,
            old.size,
            new.origin,
            if key.is_some() {
                ", and both signatures verify"
            } else {
                " (the signatures were not checked: give `--pubkey KEY`)"
            },
            b64(&old.root),
            b64(&new.root),
            proof.len(),
        );
        for p in &proof {
            text.push_str(&format!("  {}\n", b64(p)));
        }
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unverified_body_reads_origin_size_and_root() {
        let root = [7u8; 32];
        let note = format!("o/x\n12\n{}\n\n\u{2014} k abc\n", hash_base64(&root));
        assert_eq!(unverified_body(&note), Some(("o/x".to_owned(), 12, root)));
        assert_eq!(unverified_body("o\n12\n"), None);
        assert_eq!(unverified_body("o\nx\nAAAA\n\n"), None);
    }
}
