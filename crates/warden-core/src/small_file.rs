//! Reading a small text file warden trusts for its configuration or secrets (a charter, the
//! config file, a key or token file) with a hard bound on what it reads.
//!
//! The file must be a regular file: opening a FIFO blocks until a writer appears and a device
//! such as `/dev/zero` yields without end, so the type is checked before the file is opened and
//! again on the opened file, and the size is enforced by the read itself (a device's length in
//! its metadata says nothing about what it yields). Whoever can swap the path for a FIFO between
//! the two checks can already rewrite the file, so that window is left open rather than adding a
//! dependency for `O_NONBLOCK`.

use std::fmt;
use std::fs::{File, FileType, Metadata};
use std::io::{self, Read as _};
use std::path::Path;

/// Why a small file could not be read.
#[derive(Debug)]
pub enum SmallFileError {
    /// Opening, inspecting or reading it failed.
    Io(io::Error),
    /// It is not a regular file; the value says what it is ("a FIFO", "a device", …).
    NotRegular(&'static str),
    /// It holds more than the limit (in bytes).
    TooLarge(u64),
    /// It is not UTF-8; the value is the offset of the first invalid byte.
    NotUtf8(usize),
}

impl fmt::Display for SmallFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot be read: {e}"),
            Self::NotRegular(what) => write!(f, "is {what}, not a regular file"),
            Self::TooLarge(limit) => write!(f, "is larger than the limit of {limit} bytes"),
            Self::NotUtf8(at) => write!(f, "is not UTF-8 (invalid byte at offset {at})"),
        }
    }
}

impl std::error::Error for SmallFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads `path` as UTF-8 text of at most `limit` bytes. Never reads more than `limit + 1`
/// bytes and never blocks on a FIFO.
pub fn read_text(path: &Path, limit: u64) -> Result<String, SmallFileError> {
    let regular = |meta: &Metadata| {
        if meta.is_file() {
            Ok(())
        } else {
            Err(SmallFileError::NotRegular(describe(&meta.file_type())))
        }
    };
    regular(&std::fs::metadata(path).map_err(SmallFileError::Io)?)?;
    let file = File::open(path).map_err(SmallFileError::Io)?;
    regular(&file.metadata().map_err(SmallFileError::Io)?)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(SmallFileError::Io)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(SmallFileError::TooLarge(limit));
    }
    String::from_utf8(bytes).map_err(|e| SmallFileError::NotUtf8(e.utf8_error().valid_up_to()))
}

/// What a file that is not a regular file is, for a message.
fn describe(kind: &FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(read_text(&path, 5).unwrap(), "hello");
    }

    #[test]
    fn refuses_a_file_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "hello!").unwrap();
        let err = read_text(&path, 5).unwrap_err();
        assert!(matches!(err, SmallFileError::TooLarge(5)), "{err}");
    }

    #[test]
    fn a_device_that_never_ends_is_refused_before_reading() {
        let err = read_text(Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(err.to_string(), "is a device, not a regular file");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_text(dir.path(), 1024).unwrap_err();
        assert_eq!(err.to_string(), "is a directory, not a regular file");
    }

    #[test]
    fn invalid_utf8_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"ab\xffcd").unwrap();
        assert_eq!(
            read_text(&path, 10).unwrap_err().to_string(),
            "is not UTF-8 (invalid byte at offset 2)"
        );
    }
}
