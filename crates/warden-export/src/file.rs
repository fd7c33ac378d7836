//! The file sink: rotating JSON-lines files in a directory, `ledger-<first seq, 20 digits>.jsonl`,
//! each line exactly `Record::to_json_line()` and a newline. A file is started when the current
//! one holds `max_file_bytes` (a batch may cross files); every batch is written, then the file
//! is fsynced (and the directory, when a file was created) before the sink acknowledges it.
//!
//! After a crash the newest file may end in a torn line: [`FileSink::open`] cuts it and resumes
//! exactly after the last complete line, so a file export never holds a repeat. A failed write
//! (a full disk) is recovered the same way before the next try.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use warden_audit::Record;

use crate::ExportError;
use crate::batch::Batch;
use crate::cursor::create_private_dir;

/// The longest line looked for at the end of a file (a longer one is an error, not a guess).
const MAX_LINE: u64 = 256 * 1024 * 1024;

/// What a file export already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The last record written (0: none).
    pub seq: u64,
    /// Its hash (hex), when its line was read.
    pub hash: Option<String>,
}

/// The file a file export writes to now.
#[derive(Debug)]
struct Current {
    path: PathBuf,
    file: File,
    size: u64,
}

/// A file export in one directory.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    max_file_bytes: u64,
    current: Option<Current>,
    written: u64,
}

/// The name of the file whose first record is `seq`.
pub fn file_name(seq: u64) -> String {
    format!("ledger-{seq:020}.jsonl")
}

/// The first record of a file named by [`file_name`].
fn first_seq(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("ledger-")?.strip_suffix(".jsonl")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl FileSink {
    /// Opens the export in `dir` (created, mode 0700, when missing): finds its newest file,
    /// cuts a torn last line, and says what it holds. Blocking.
    /// `None` when the directory holds no export file yet.
    pub fn open(
        dir: &Path,
        max_file_bytes: u64,
    ) -> Result<(FileSink, Option<Written>), ExportError> {
        create_private_dir(dir)?;
        let mut sink = FileSink {
            dir: dir.to_path_buf(),
            max_file_bytes: max_file_bytes.max(1),
            current: None,
            written: 0,
        };
        let written = sink.recover()?;
        Ok((sink, written))
    }

    /// The last record the files hold.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes the records of `batch` the files do not hold yet, in order, and fsyncs. On an
    /// error, the newest file is cut back to its last complete line, so trying again writes
    /// each record once. Blocking.
    pub fn write(&mut self, batch: &Batch) -> Result<(), ExportError> {
        let result = self.write_inner(batch);
        if result.is_err() {
            self.current = None;
            if let Err(e) = self.recover() {
                tracing::warn!(error = %e, "The file export could not be read back after a failed write; it tries again.");
            }
        }
        result
    }

    fn write_inner(&mut self, batch: &Batch) -> Result<(), ExportError> {
        let mut pending: Vec<u8> = Vec::new();
        let done = self.written;
        for item in batch.items.iter().filter(|i| i.seq > done) {
            let line_len = u64::try_from(item.line.len())
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            let full = self.current.as_ref().is_some_and(|c| {
                let size = c
                    .size
                    .saturating_add(u64::try_from(pending.len()).unwrap_or(0));
                size > 0 && size.saturating_add(line_len) > self.max_file_bytes
            });
            if full {
                self.flush(&mut pending)?;
                self.current = None;
            }
            if self.current.is_none() {
                self.create(item.seq)?;
            }
            pending.extend_from_slice(item.line.as_bytes());
            pending.push(b'\n');
            self.written = item.seq;
        }
        self.flush(&mut pending)
    }

    /// Appends `pending` to the current file and fsyncs it.
    fn flush(&mut self, pending: &mut Vec<u8>) -> Result<(), ExportError> {
        let Some(c) = self.current.as_mut() else {
            return Ok(());
        };
        if !pending.is_empty() {
            c.file
                .write_all(pending)
                .map_err(|e| ExportError::io("write", &c.path, e))?;
            c.size = c
                .size
                .saturating_add(u64::try_from(pending.len()).unwrap_or(u64::MAX));
            pending.clear();
        }
        c.file
            .sync_data()
            .map_err(|e| ExportError::io("fsync", &c.path, e))
    }

    /// Creates the file whose first record is `seq`, and fsyncs the directory.
    fn create(&mut self, seq: u64) -> Result<(), ExportError> {
        let path = self.dir.join(file_name(seq));
        let mut options = OpenOptions::new();
        options.append(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options
            .open(&path)
            .map_err(|e| ExportError::io("create", &path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ExportError::io("fsync", &self.dir, e))?;
        self.current = Some(Current {
            path,
            file,
            size: 0,
        });
        Ok(())
    }

    /// Reads the newest file's end: cuts a torn last line, reads the last record, and makes
    /// that file the current one.
    fn recover(&mut self) -> Result<Option<Written>, ExportError> {
        let mut newest: Option<(u64, PathBuf)> = None;
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| ExportError::io("read", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ExportError::io("read", &self.dir, e))?;
            let name = entry.file_name();
            if let Some(first) = name.to_str().and_then(first_seq)
                && newest.as_ref().is_none_or(|(n, _)| first > *n)
            {
                newest = Some((first, entry.path()));
            }
        }
        let Some((first, path)) = newest else {
            self.written = 0;
            return Ok(None);
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| ExportError::io("open", &path, e))?;
        let io = |e| ExportError::io("read", &path, e);
        let len = file.metadata().map_err(io)?.len();
        let last_newline = newline_before(&mut file, len).map_err(io)?;
        let cut = last_newline.map_or(0, |p| p.saturating_add(1));
        if cut < len {
            tracing::warn!(file = %path.display(), bytes = len - cut, "The export file ended in a torn line; it was cut.");
            file.set_len(cut)
                .map_err(|e| ExportError::io("cut", &path, e))?;
            file.sync_all()
                .map_err(|e| ExportError::io("fsync", &path, e))?;
        }
        let written = match last_newline {
            None => Written {
                seq: first.saturating_sub(1),
                hash: None,
            },
            Some(end) => {
                let start = newline_before(&mut file, end)
                    .map_err(io)?
                    .map_or(0, |p| p.saturating_add(1));
                let mut line = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
                file.seek(SeekFrom::Start(start)).map_err(io)?;
                file.read_exact(&mut line).map_err(io)?;
                let record = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| Record::from_json_line(l).ok())
                    .ok_or_else(|| ExportError::Mismatch {
                        dir: self.dir.clone(),
                        reason: format!(
                            "the last line of `{}` is not a ledger record",
                            path.display()
                        ),
                    })?;
                Written {
                    seq: record.seq,
                    hash: Some(warden_core::canonical::hex(&record.hash)),
                }
            }
        };
        self.written = written.seq;
        self.current = Some(Current {
            path,
            file,
            size: cut,
        });
        Ok(Some(written))
    }
}

/// The position of the last `\n` before `end`, reading backwards (at most [`MAX_LINE`]).
fn newline_before(file: &mut File, end: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = end;
    while pos > 0 {
        let n = pos.min(buf.len() as u64);
        pos -= n;
        let chunk = buf
            .get_mut(..usize::try_from(n).unwrap_or(0))
            .unwrap_or_default();
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(pos + i as u64));
        }
        if end - pos > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "its last line is longer than 256 MiB",
            ));
        }
    }
    Ok(None)
}
