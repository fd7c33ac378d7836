//! The verify scan: every record in `seq` order, read on the calling (blocking) thread with
//! each column borrowed straight from SQLite, fed to the [`Verifier`].
//!
//! Nothing is copied out of SQLite and no row crosses to another thread: a record costs one
//! `sqlite3_step` and its hash. (A driver that copies every column of every row and hands the
//! row to the reading task through a channel cost about 4.7 µs of CPU per record, five times
//! the hashing itself.)

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use super::error::LedgerError;
use super::resume::Resume;
use super::schema::{self, COLUMNS};
use crate::chain::{GENESIS_HASH, Head, Problem, Verifier};
use crate::signed::{Finding, OpenNote, Report, TreeChecker};
use serde::Serialize;

/// Ledgers shorter than this many records per part are not split.
const MIN_PART: u64 = 50_000;
/// At most this many parts (threads), whatever the machine has.
const MAX_PARTS: usize = 8;

fn read_error(e: rusqlite::Error) -> LedgerError {
    LedgerError::Read(Arc::new(e))
}

/// What [`LedgerReader::verify`](super::LedgerReader::verify) found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// How many records were verified intact (all of them when there is no problem; those
    /// before the problem otherwise).
    pub records: u64,
    /// The last record verified intact.
    pub head: Option<Head>,
    /// The first problem, if the ledger is not intact.
    pub first_problem: Option<Problem>,
}

impl VerifyReport {
    /// Whether the ledger verified intact.
    pub fn is_intact(&self) -> bool {
        self.first_problem.is_none()
    }
}

/// Verifies the whole ledger in `path`, in parts on as many threads as the machine has
/// cores (a ledger of under 2 × 50,000 records in one part). A pruned ledger is verified from
/// the record after its `pruned` row's last record, linking to that record's hash.
pub(super) fn verify(path: &Path) -> Result<VerifyReport, LedgerError> {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    verify_in_parts(path, cores.min(MAX_PARTS), MIN_PART)
}

/// Splits the sequence numbers into up to `max_parts` ranges of at least `min_part`, verifies
/// each on its own thread and connection, and stitches the results at the seams, so the report
/// is the one a single pass in `seq` order would give.
///
/// Each part reads in one read transaction. Records are only ever appended, so parts read at
/// slightly different moments differ only in records appended meanwhile, which the last part
/// (unbounded above) may or may not include.
pub(super) fn verify_in_parts(
    path: &Path,
    max_parts: usize,
    min_part: u64,
) -> Result<VerifyReport, LedgerError> {
    let conn = open(path)?;
    let last = last_seq(&conn)?;
    // A pruned ledger's chain continues from its `pruned` row (trusted here: only a signed
    // verification checks the row against its checkpoint).
    let after = super::resume::read_pruned(&conn)?.map(|row| Head {
        seq: row.through,
        hash: row.head_hash,
    });
    chain_in_parts(path, &conn, last, (max_parts, min_part), after, i64::MAX)
}

/// The largest `seq` stored (0 for none).
fn last_seq(conn: &Connection) -> Result<u64, LedgerError> {
    let last: Option<i64> = conn
        .query_row("SELECT max(seq) FROM records", [], |row| row.get(0))
        .map_err(read_error)?;
    Ok(last.and_then(|l| u64::try_from(l).ok()).unwrap_or(0))
}

/// The chain of the records below `top`, in parts (see [`verify_in_parts`]); the first part
/// resumes after `after` (a pruned ledger's last pruned record) when given.
fn chain_in_parts(
    path: &Path,
    conn: &Connection,
    last: u64,
    (max_parts, min_part): (usize, u64),
    after: Option<Head>,
    top: i64,
) -> Result<VerifyReport, LedgerError> {
    let parts = usize::try_from(last / min_part.max(1))
        .unwrap_or(usize::MAX)
        .clamp(1, max_parts.max(1));
    // Part `i` holds `bounds[i] <= seq < bounds[i + 1]`; the first part also holds any
    // sequence number below 1 (a malformed row), the last everything above.
    let mut bounds = vec![i64::MIN];
    for i in 1..parts {
        let at = (last / parts as u64)
            .saturating_mul(i as u64)
            .saturating_add(1);
        bounds.push(i64::try_from(at).unwrap_or(i64::MAX));
    }
    bounds.push(top);
    let ranges: Vec<(i64, i64)> = bounds
        .windows(2)
        .filter_map(|w| Some((*w.first()?, *w.get(1)?)))
        .collect();
    let Some((&first, rest)) = ranges.split_first() else {
        return Err(read_error(rusqlite::Error::InvalidQuery));
    };
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = rest
            .iter()
            .map(|&range| scope.spawn(move || open(path).and_then(|c| scan(&c, range, None))))
            .collect();
        let mut results = vec![scan(conn, first, Some(after))];
        for handle in handles {
            results.push(handle.join().unwrap_or_else(|_| {
                Err(LedgerError::Read(Arc::new(std::io::Error::other(
                    "a verify thread stopped",
                ))))
            }));
        }
        results
    });
    stitch(results, after)
}

/// What one part found: the first row's `seq` and `prev_hash` (for the seam before it), and
/// the part's verifier, which checked everything else.
struct Part {
    first: Option<(u64, Vec<u8>)>,
    verifier: Verifier,
}

/// Joins the parts in order: each part's first record must follow the previous part's last.
fn stitch(
    parts: Vec<Result<Part, LedgerError>>,
    after: Option<Head>,
) -> Result<VerifyReport, LedgerError> {
    let mut report = VerifyReport {
        records: 0,
        head: after,
        first_problem: None,
    };
    for part in parts {
        let part = part?;
        if report.first_problem.is_some() {
            continue;
        }
        if let Some((seq, prev)) = &part.first {
            let expected = report.head.map_or(1, |h| h.seq.saturating_add(1));
            let linked = report.head.map_or(GENESIS_HASH, |h| h.hash);
            let seam = if *seq > expected {
                Some(Problem::Removed {
                    seq: expected,
                    next: *seq,
                })
            } else if *seq < expected {
                Some(Problem::Reordered {
                    seq: *seq,
                    after: expected.saturating_sub(1),
                })
            } else if prev.as_slice() != linked.as_slice() {
                Some(Problem::ChainBroken { seq: *seq })
            } else {
                None
            };
            if seam.is_some() {
                report.first_problem = seam;
                continue;
            }
        }
        report.records = report.records.saturating_add(part.verifier.records());
        if part.verifier.records() > 0 {
            report.head = part.verifier.head();
        }
        report.first_problem = part.verifier.problem().cloned();
    }
    Ok(report)
}

/// A read-only connection for one part; the reader checked the ledger's format when it opened.
fn open(path: &Path) -> Result<Connection, LedgerError> {
    schema::open_read_only(path).map_err(read_error)
}

/// Verifies the records with `range.0 <= seq < range.1` in `seq` order. The part that
/// starts the ledger (`start` is `Some`) expects record 1 after the genesis hash, or the
/// record after the given head; any other part trusts its first row's `seq` and `prev_hash`
/// (checked at the seam by [`stitch`]) and checks the rest.
fn scan(
    conn: &Connection,
    range: (i64, i64),
    start: Option<Option<Head>>,
) -> Result<Part, LedgerError> {
    let mut statement = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM records WHERE seq >= ?1 AND seq < ?2 ORDER BY seq"
        ))
        .map_err(read_error)?;
    let mut rows = statement.query([range.0, range.1]).map_err(read_error)?;
    let from_genesis = start.is_some();
    let mut part = Part {
        first: None,
        verifier: start.flatten().map_or_else(Verifier::new, Verifier::resume),
    };
    while let Some(row) = rows.next().map_err(read_error)? {
        let record = match schema::record_ref(row) {
            Ok(r) => r,
            Err(problem) => {
                part.verifier.fail(problem);
                break;
            }
        };
        if part.first.is_none() {
            part.first = Some((record.seq, record.prev_hash.to_vec()));
            if !from_genesis {
                part.verifier = Verifier::resume(Head {
                    seq: record.seq.saturating_sub(1),
                    hash: record.prev_hash.try_into().unwrap_or(GENESIS_HASH),
                });
            }
        }
        if part.verifier.push(&record).is_err() {
            break;
        }
    }
    Ok(part)
}

/// Verifies the ledger in `path` against signed checkpoints: the chain in parts on one thread
/// fewer than the machine has cores (at least one), and beside them the tree and the
/// checkpoints in one pass over the records' hashes (and the payloads of the checkpoint
/// records) on a thread of its own; the findings are ordered as one pass in `seq` order
/// would find them. Every pass reads only the records up to the last one stored when it
/// started, so records appended meanwhile are left out of all of them alike.
pub(crate) fn verify_signed(
    path: &Path,
    key: &(dyn OpenNote + Sync),
    anchor: Option<&str>,
    resume: Resume,
) -> Result<Report, LedgerError> {
    // The tree pass takes a core of its own: the chain gets the others (at least one part).
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let chain_parts = cores.saturating_sub(1).clamp(1, MAX_PARTS);
    verify_signed_in_parts(path, key, anchor, resume, (chain_parts, MIN_PART))
}

pub(crate) fn verify_signed_in_parts(
    path: &Path,
    key: &(dyn OpenNote + Sync),
    anchor: Option<&str>,
    resume: Resume,
    parts: (usize, u64),
) -> Result<Report, LedgerError> {
    let conn = open(path)?;
    let last = last_seq(&conn)?;
    let top = i64::try_from(last).unwrap_or(i64::MAX).saturating_add(1);
    let Resume { head, start } = resume;
    let mut tree = TreeChecker::new(key, anchor, start);
    let (chain, tree_pass) = std::thread::scope(|scope| {
        let tree = &mut tree;
        let tree_pass = scope.spawn(move || open(path).and_then(|c| tree_scan(&c, tree, top)));
        let chain = chain_in_parts(path, &conn, last, parts, head, top);
        let tree_pass = tree_pass.join().unwrap_or_else(|_| {
            Err(LedgerError::Read(Arc::new(std::io::Error::other(
                "the tree verify thread stopped",
            ))))
        });
        (chain, tree_pass)
    });
    let (chain, stopped_at) = (chain?, tree_pass?);
    let chain_finding = chain.first_problem.clone().map(Finding::from);
    let finding = match (chain_finding, tree.finding().cloned()) {
        (Some(c), Some(t)) if t.found_at() < c.found_at() => Some(t),
        (Some(c), _) => Some(c),
        (None, Some(t)) => Some(t),
        (None, None) => match stopped_at {
            // The chain found nothing where the tree pass stopped: the passes did not read the
            // same records (the file was changed while it was verified). Fail closed.
            Some(seq) => Some(Finding::Malformed {
                seq: i64::try_from(seq).unwrap_or(i64::MAX),
                detail: "the ledger changed while it was verified; verify it again".to_owned(),
            }),
            None => tree.finish(),
        },
    };
    // As one pass in order would: the records read up to (and including) the one where the
    // tree found something, when it did before the end.
    let (mut records, mut head_read) = (chain.records, chain.head);
    if let Some(at) = tree
        .finding()
        .filter(|f| Some(*f) == finding.as_ref())
        .map(Finding::found_at)
        .filter(|at| *at != u64::MAX && *at > 0)
    {
        let before = head.map_or(0, |h| h.seq);
        records = records.min(at.saturating_sub(before));
        head_read = record_head(&conn, at)?;
    }
    Ok(Report {
        records,
        head: head_read,
        signed: tree.signed(),
        checkpoints: tree.checkpoints(),
        origin: tree.origin().map(str::to_owned),
        finding,
    })
}

/// The `seq` and stored hash of record `seq`, if it is there with a 32-byte hash.
fn record_head(conn: &Connection, seq: u64) -> Result<Option<Head>, LedgerError> {
    let hash: Option<Vec<u8>> = conn
        .query_row(
            "SELECT hash FROM records WHERE seq = ?1",
            [i64::try_from(seq).unwrap_or(i64::MAX)],
            |row| row.get(0),
        )
        .optional()
        .map_err(read_error)?;
    Ok(hash
        .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
        .map(|hash| Head { seq, hash }))
}

/// The tree pass: the records' `seq`, `hash` and `kind` (and the payload of checkpoint
/// records) in `seq` order below `top`, fed to `tree`. Stops at a finding, or (returning its
/// `seq`) at the first row that is not the next record with a 32-byte hash: the chain passes
/// name what is wrong there.
fn tree_scan(
    conn: &Connection,
    tree: &mut TreeChecker<'_>,
    top: i64,
) -> Result<Option<u64>, LedgerError> {
    let mut statement = conn
        .prepare(
            "SELECT seq, hash, kind, CASE WHEN kind IN ('checkpoint_signed', 'ledger_pruned') THEN payload END \
             FROM records WHERE seq < ?1 ORDER BY seq",
        )
        .map_err(read_error)?;
    let mut rows = statement.query([top]).map_err(read_error)?;
    while let Some(row) = rows.next().map_err(read_error)? {
        let expected = tree.size().saturating_add(1);
        let seq = match row.get_ref(0) {
            Ok(ValueRef::Integer(seq)) => u64::try_from(seq).unwrap_or(0),
            _ => 0,
        };
        let hash = match row.get_ref(1) {
            Ok(ValueRef::Blob(bytes)) => <&[u8; 32]>::try_from(bytes).ok(),
            _ => None,
        };
        let kind = match row.get_ref(2) {
            Ok(ValueRef::Text(bytes)) => std::str::from_utf8(bytes).ok(),
            _ => None,
        };
        let payload = match row.get_ref(3) {
            Ok(ValueRef::Text(bytes)) => std::str::from_utf8(bytes).ok(),
            _ => None,
        };
        let (Some(hash), Some(kind)) = (hash, kind) else {
            return Ok(Some(expected));
        };
        if seq != expected {
            return Ok(Some(expected));
        }
        if tree.push(seq, hash, kind, payload.unwrap_or("")).is_err() {
            return Ok(None);
        }
    }
    Ok(None)
}
