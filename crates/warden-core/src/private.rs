//! Files only their owner may read (Unix modes). The data directory holds every prompt,
//! argument and result, and the secrets: it is created 0700, and what warden keeps in it
//! 0600, whatever the umask. This is the one module of this crate that touches the
//! filesystem; every store creates its files through it.
//!
//! Race-free by construction: a file is created with its final mode in the same `open(2)`
//! (`O_CREAT | O_EXCL`, mode 0600) and a directory in the same `mkdir(2)` (mode 0700), so
//! neither ever exists with a looser mode (the umask can only take bits away; the exact mode
//! is set right after, on the open descriptor for a file). SQLite creates a database's
//! `-wal`, `-shm` and `-journal` files with the database file's own permission bits (setting
//! them on the new file, past the umask), so a database file created here before SQLite opens
//! it has private companions from their first instant. Changing modes after SQLite has
//! created a file instead would leave a window in which another user could open it — and
//! permissions are checked only at `open`, so the descriptor would keep working after the
//! `chmod`.
//!
//! An existing file or directory that group or others may use is tightened (their bits
//! removed) and reported, so the caller can say so; one that cannot be tightened is an error.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The data directory's mode: the owner only.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file warden keeps in the data directory: the owner reads and writes.
pub const FILE_MODE: u32 = 0o600;
/// The permission bits of group and others.
pub const SHARED_BITS: u32 = 0o077;
/// The files SQLite keeps beside a database `x`: `x-wal`, `x-shm`, `x-journal`.
pub const SQLITE_COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// The sticky bit: set on shared directories such as `/tmp`.
const STICKY: u32 = 0o1000;

/// A file or directory whose mode was tightened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tightened {
    /// The file or directory.
    pub path: PathBuf,
    /// Its permission bits before.
    pub was: u32,
    /// Its permission bits now.
    pub now: u32,
}

impl fmt::Display for Tightened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` was mode {:04o}, now {:04o}",
            self.path.display(),
            self.was,
            self.now
        )
    }
}

/// The permission bits of `path` (following symbolic links).
pub fn mode_of(path: &Path) -> io::Result<u32> {
    Ok(fs::metadata(path)?.permissions().mode() & 0o7777)
}

/// Creates the directory `dir` with mode 0700 exactly (its missing parents with the usual
/// modes). An existing directory that group or others may use is tightened and reported; a
/// shared directory (sticky bit, such as `/tmp`) is refused rather than changed, and so is
/// one whose mode cannot be changed.
pub fn private_dir(dir: &Path) -> io::Result<Option<Tightened>> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {
            fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))?;
            Ok(None)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if !fs::metadata(dir)?.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("`{}` exists and is not a directory", dir.display()),
                ));
            }
            let was = mode_of(dir)?;
            if was & SHARED_BITS != 0 && was & STICKY != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "`{}` is a shared directory (mode {was:04o}, sticky); give warden a directory of its own",
                        dir.display()
                    ),
                ));
            }
            tighten(dir, was)
        }
        Err(e) => Err(e),
    }
}

/// Creates the file `path`, empty, with mode 0600 exactly, unless it exists; it is never
/// truncated. An existing file that group or others may use is tightened and reported.
pub fn private_file(path: &Path) -> io::Result<Option<Tightened>> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(file) => {
            file.set_permissions(Permissions::from_mode(FILE_MODE))?;
            Ok(None)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten_existing(path),
        Err(e) => Err(e),
    }
}

/// Creates the SQLite database file `path` as [`private_file`] does, before SQLite opens it
/// (so SQLite gives its companions the same mode), and tightens those of its companions that
/// already exist (left by an earlier version). Everything tightened is reported.
pub fn private_database(path: &Path) -> io::Result<Vec<Tightened>> {
    let mut tightened: Vec<Tightened> = private_file(path)?.into_iter().collect();
    for companion in companions(path) {
        tightened.extend(tighten_existing(&companion)?);
    }
    Ok(tightened)
}

/// The companions SQLite may keep beside the database `path` ([`SQLITE_COMPANIONS`]).
pub fn companions(path: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    SQLITE_COMPANIONS.iter().map(move |suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Removes the bits of group and others from an existing file or directory, and reports it;
/// nothing when there is no such file or it is already private.
pub fn tighten_existing(path: &Path) -> io::Result<Option<Tightened>> {
    match mode_of(path) {
        Ok(was) => tighten(path, was),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn tighten(path: &Path, was: u32) -> io::Result<Option<Tightened>> {
    if was & SHARED_BITS == 0 {
        return Ok(None);
    }
    let now = was & !SHARED_BITS;
    fs::set_permissions(path, Permissions::from_mode(now))?;
    Ok(Some(Tightened {
        path: path.to_path_buf(),
        was,
        now,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "test code"
    )]

    use super::*;

    fn set(path: &Path, mode: u32) {
        fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_new_directory_and_file_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/data");
        assert_eq!(private_dir(&dir).unwrap(), None);
        assert_eq!(mode_of(&dir).unwrap(), 0o700);
        let file = dir.join("ledger.db");
        assert_eq!(private_database(&file).unwrap(), []);
        assert_eq!(mode_of(&file).unwrap(), 0o600);
        assert_eq!(fs::read(&file).unwrap(), b"");
    }

    #[test]
    fn existing_loose_modes_are_tightened_and_reported_and_content_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        fs::create_dir(&dir).unwrap();
        set(&dir, 0o755);
        let db = dir.join("state.db");
        fs::write(&db, b"kept").unwrap();
        set(&db, 0o644);
        let wal = dir.join("state.db-wal");
        fs::write(&wal, b"").unwrap();
        set(&wal, 0o664);

        let t = private_dir(&dir).unwrap().unwrap();
        assert_eq!((t.was, t.now), (0o755, 0o700));
        assert!(t.to_string().contains("was mode 0755, now 0700"), "{t}");
        let t = private_database(&db).unwrap();
        let seen: Vec<_> = t.iter().map(|t| (t.path.clone(), t.was, t.now)).collect();
        assert_eq!(
            seen,
            [(db.clone(), 0o644, 0o600), (wal.clone(), 0o664, 0o600)]
        );
        assert_eq!(fs::read(&db).unwrap(), b"kept");
        // A second time, nothing is left to tighten.
        assert_eq!(private_dir(&dir).unwrap(), None);
        assert_eq!(private_database(&db).unwrap(), []);
    }

    #[test]
    fn a_shared_directory_or_a_file_in_the_way_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        fs::create_dir(&shared).unwrap();
        set(&shared, 0o1777);
        let err = private_dir(&shared).unwrap_err();
        assert!(err.to_string().contains("shared directory"), "{err}");
        assert_eq!(mode_of(&shared).unwrap(), 0o1777, "left as it was");
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        let err = private_dir(&file).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
