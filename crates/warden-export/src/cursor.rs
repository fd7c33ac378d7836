//! A sink's cursor: the sequence number of the last record the sink acknowledged, kept in
//! `DIR/export/<sink name>.cursor` as decimal digits and a newline, written atomically (a
//! temporary file, fsynced, renamed over the cursor, then the directory fsynced), so after a
//! crash it holds the old value or the new one, never a mix.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::ExportError;

/// The directory of the cursors, inside the data directory.
pub const CURSOR_DIR: &str = "export";

/// The longest cursor file read (20 digits and a newline, with room to spare).
const MAX_CURSOR_BYTES: u64 = 64;

/// One sink's cursor, as last loaded or stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    path: PathBuf,
    value: u64,
}

impl Cursor {
    /// The cursor file of sink `name` in the data directory `data_dir`.
    pub fn path_of(data_dir: &Path, name: &str) -> PathBuf {
        data_dir.join(CURSOR_DIR).join(format!("{name}.cursor"))
    }

    /// Loads sink `name`'s cursor (0, the start of the ledger, when there is no file yet),
    /// creating `DIR/export` (mode 0700) if missing. A file that does not hold exactly a
    /// sequence number is [`ExportError::CursorGarbage`]: never guessed, never skipped.
    pub fn load(data_dir: &Path, name: &str) -> Result<Cursor, ExportError> {
        let dir = data_dir.join(CURSOR_DIR);
        create_private_dir(&dir)?;
        let path = Cursor::path_of(data_dir, name);
        let value = match std::fs::File::open(&path) {
            Ok(file) => {
                let mut text = String::new();
                let read = file
                    .take(MAX_CURSOR_BYTES + 1)
                    .read_to_string(&mut text)
                    .map_err(|e| ExportError::io("read", &path, e));
                match read {
                    Ok(_) => parse(&text).map_err(|reason| ExportError::CursorGarbage {
                        path: path.clone(),
                        reason,
                    })?,
                    Err(ExportError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::InvalidData =>
                    {
                        return Err(ExportError::CursorGarbage {
                            path,
                            reason: "it is not text".to_owned(),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(ExportError::io("read", &path, e)),
        };
        Ok(Cursor { path, value })
    }

    /// The last acknowledged sequence number (0: none yet).
    pub fn get(&self) -> u64 {
        self.value
    }

    /// The cursor file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `seq` atomically (see the module); blocking, a few small writes and fsyncs.
    pub fn store(&mut self, seq: u64) -> Result<(), ExportError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("cursor.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = open_private(&tmp)?;
            f.write_all(format!("{seq}\n").as_bytes())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| ExportError::io("write", &self.path, e))?;
        self.value = seq;
        Ok(())
    }
}

/// `digits\n` (the newline optional) as a sequence number.
fn parse(text: &str) -> Result<u64, String> {
    let digits = text.strip_suffix('\n').unwrap_or(text);
    if digits.is_empty() {
        return Err("it is empty".to_owned());
    }
    if digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("it is not decimal digits".to_owned());
    }
    digits
        .parse::<u64>()
        .map_err(|_| "the number is too large".to_owned())
}

/// Creates `dir` (and its parents) if missing, mode 0700 on Unix.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), ExportError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| ExportError::io("create", dir, e))
}

/// Opens `path` for writing, truncated, mode 0600 on Unix when created.
pub(crate) fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests;
