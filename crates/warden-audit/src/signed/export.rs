//! Reading an exported copy of the ledger: `ledger-<first seq, 20 digits>.jsonl` files, read
//! in name order, each line one record exactly as [`Record::to_json_line`] writes it and a
//! newline.
//!
//! An export sink delivers at least once, so a record may come again: a line whose `seq` is
//! one of the last [`MAX_REPEAT`] records read, and which is that very record (the same hash,
//! linking to the same previous record, its content hashing to it), is skipped. Anything
//! else out of order is fed to the checker, which names it (reordered, removed, ...).
//!
//! Fails closed: a line that is not a record, or the last line of a file without its newline
//! (a torn write), is a [`Finding::Malformed`]; a line longer than [`MAX_LINE`] too.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{Checker, Finding, MAX_REPEAT, OpenNote, Report};
use crate::chain::{GENESIS_HASH, Record, RecordRef, canonical_json, format_time};

/// The longest line read (a record's payload is far smaller).
pub const MAX_LINE: u64 = 16 * 1024 * 1024;
/// At most this many files in an export directory.
const MAX_FILES: usize = 1_000_000;

/// Why an export could not be read (as opposed to read and found wrong).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The path is neither an export file nor a directory holding any.
    #[error("`{}` is not an export: {reason}", path.display())]
    NotExport {
        /// The path given.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file or the directory could not be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Whether `name` is an export file's name: `ledger-` and 20 digits and `.jsonl`.
pub fn is_export_name(name: &str) -> bool {
    name.strip_prefix("ledger-")
        .and_then(|rest| rest.strip_suffix(".jsonl"))
        .is_some_and(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// The name of the export file whose first record is `seq`.
pub fn export_name(seq: u64) -> String {
    format!("ledger-{seq:020}.jsonl")
}

/// The export files `path` names: itself if it is a file, else the export files in the
/// directory, in name order (which is `seq` order).
pub fn export_files(path: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if name.to_str().is_some_and(is_export_name) {
            files.push(entry.path());
            if files.len() > MAX_FILES {
                return Err(ExportError::NotExport {
                    path: path.to_path_buf(),
                    reason: format!("it holds more than {MAX_FILES} export files"),
                });
            }
        }
    }
    if files.is_empty() {
        return Err(ExportError::NotExport {
            path: path.to_path_buf(),
            reason: "it holds no `ledger-<20 digits>.jsonl` file".to_owned(),
        });
    }
    files.sort();
    Ok(files)
}

/// Verifies the export at `path` (a file or a directory of them) against signed checkpoints
/// opened with `key` and the anchor checkpoint `anchor` (its note text), if any.
pub fn verify(
    path: &Path,
    key: &(dyn OpenNote + Sync),
    anchor: Option<&str>,
) -> Result<Report, ExportError> {
    let mut reader = ExportReader::new(Checker::new(key, anchor));
    for file in export_files(path)? {
        if reader.checker.finding().is_some() {
            break;
        }
        reader.read_file(&file)?;
    }
    Ok(reader.checker.finish())
}

/// Feeds an export's lines to a checker, skipping exact repeats.
pub(crate) struct ExportReader<'k> {
    pub(crate) checker: Checker<'k>,
    /// The hashes of the last [`MAX_REPEAT`] records read, by `seq % MAX_REPEAT`.
    recent: Vec<[u8; 32]>,
}

impl<'k> ExportReader<'k> {
    pub(crate) fn new(checker: Checker<'k>) -> ExportReader<'k> {
        ExportReader {
            checker,
            recent: vec![GENESIS_HASH; usize::try_from(MAX_REPEAT).unwrap_or(4096)],
        }
    }

    fn slot(&self, seq: u64) -> Option<&[u8; 32]> {
        self.recent.get(usize::try_from(seq % MAX_REPEAT).ok()?)
    }

    /// Reads one export file; stops at the first finding.
    pub(crate) fn read_file(&mut self, file: &Path) -> Result<(), ExportError> {
        let io = |source| ExportError::Io {
            path: file.to_path_buf(),
            source,
        };
        let mut lines = BufReader::with_capacity(1 << 16, File::open(file).map_err(io)?);
        let mut buf = Vec::new();
        let mut number = 0u64;
        loop {
            buf.clear();
            let read = (&mut lines)
                .take(MAX_LINE.saturating_add(1))
                .read_until(b'\n', &mut buf)
                .map_err(io)?;
            if read == 0 {
                return Ok(());
            }
            number = number.saturating_add(1);
            let at = || format!("`{}` line {number}", file.display());
            let Some(line) = buf.strip_suffix(b"\n") else {
                let why = if read as u64 > MAX_LINE {
                    format!("it is longer than {MAX_LINE} bytes")
                } else {
                    "the file ends in the middle of it (no newline: a torn write?)".to_owned()
                };
                self.malformed(format!("{}: {why}", at()));
                return Ok(());
            };
            let record = match std::str::from_utf8(line)
                .map_err(|e| e.to_string())
                .and_then(|l| Record::from_json_line(l).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(e) => {
                    self.malformed(format!("{}: {e}", at()));
                    return Ok(());
                }
            };
            if self.push(&record).is_err() {
                return Ok(());
            }
        }
    }

    fn malformed(&mut self, detail: String) {
        let next = self.checker.head().map_or(1, |h| h.seq.saturating_add(1));
        self.checker.fail(Finding::Malformed {
            seq: i64::try_from(next).unwrap_or(i64::MAX),
            detail,
        });
    }

    /// Whether `record` is an exact repeat of one of the last [`MAX_REPEAT`] records.
    fn is_repeat(&self, record: &Record) -> bool {
        let Some(head) = self.checker.head() else {
            return false;
        };
        if record.seq > head.seq || head.seq - record.seq >= MAX_REPEAT || record.seq == 0 {
            return false;
        }
        let prev = if record.seq == 1 {
            Some(&GENESIS_HASH)
        } else {
            self.slot(record.seq - 1)
        };
        // The record before it must be in the window too (or be the genesis).
        let prev_known = record.seq == 1 || head.seq - (record.seq - 1) < MAX_REPEAT;
        prev_known
            && self.slot(record.seq) == Some(&record.hash)
            && prev == Some(&record.prev_hash)
            && record.compute_hash().ok() == Some(record.hash)
    }

    fn push(&mut self, record: &Record) -> Result<(), Finding> {
        if self.is_repeat(record) {
            return Ok(());
        }
        let time = match format_time(record.time) {
            Ok(t) => t,
            Err(e) => {
                return Err(self.checker.fail(Finding::Malformed {
                    seq: i64::try_from(record.seq).unwrap_or(i64::MAX),
                    detail: e.to_string(),
                }));
            }
        };
        let payload = canonical_json(&record.payload);
        self.checker.push(&RecordRef {
            seq: record.seq,
            time: &time,
            session: record.session.as_deref(),
            kind: record.kind.as_str(),
            payload: &payload,
            prev_hash: &record.prev_hash,
            hash: &record.hash,
        })?;
        if let Ok(i) = usize::try_from(record.seq % MAX_REPEAT)
            && let Some(slot) = self.recent.get_mut(i)
        {
            *slot = record.hash;
        }
        Ok(())
    }
}
