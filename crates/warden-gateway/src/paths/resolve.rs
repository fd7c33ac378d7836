//! Resolving a path through symbolic links the way a server on this machine will open it.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use warden_core::path::nfc;

/// Most symbolic links followed while resolving one path (as Linux's `ELOOP` limit).
const MAX_LINK_HOPS: usize = 40;

/// Most entries of one directory compared with a missing name.
const MAX_DIR_ENTRIES: usize = 100_000;

/// Why a path cannot be resolved the way a server would open it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ResolveError {
    /// Too many links: a loop, or a chain longer than the kernel follows.
    #[error("more than {MAX_LINK_HOPS} symbolic links on the way (a loop?)")]
    TooManyLinks,
    /// The directory holds the name in another Unicode form than the path spells it.
    #[error(
        "`{dir}` stores `{stored}` where the path says `{requested}`: the same name in another Unicode form, which a server may open instead, so it is refused"
    )]
    StoredDifferently {
        /// The directory.
        dir: String,
        /// The name as stored.
        stored: String,
        /// The name as the path spells it.
        requested: String,
    },
    /// The path names a regular file with more than one hard link: one of its other names may
    /// lie outside every root (a link made outside warden's view), and neither the gateway
    /// nor the kernel's confinement can tell which name is the file's own.
    #[error(
        "`{0}` is a file with more than one hard link, which may be a file outside the roots under another name, so it is refused"
    )]
    HardLinked(String),
    /// The directory is too large to compare names with.
    #[error("`{0}` has more than {MAX_DIR_ENTRIES} entries to compare a missing name with")]
    DirectoryTooLarge(String),
}

/// `realpath` of an absolute, lexically canonical path, byte for byte, that also follows
/// dangling links (to their target, resolved as far as it exists) and appends what does not
/// exist.
///
/// A name that does not exist as spelled, where its directory stores the same name in another
/// Unicode form (`café` composed against `cafe` + U+0301), is an error: servers such as the MCP
/// filesystem server fall back to the stored form, so the path would be decided as one entry
/// and opened as another. So is a regular file with more than one hard link: a link made
/// inside a root to a file outside it is, to the path and to the kernel, a file of the root.
pub(super) fn resolve(path: &Path) -> Result<PathBuf, ResolveError> {
    let mut pending: Vec<OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut out = PathBuf::from("/");
    let mut hops = 0;
    // Once a name is missing, nothing below it exists either: no more file-system calls.
    let mut missing = false;
    while let Some(name) = pending.pop() {
        if name == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&name);
        if missing {
            out = next;
            continue;
        }
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(ResolveError::TooManyLinks);
                }
                let Ok(target) = std::fs::read_link(&next) else {
                    out = next;
                    continue;
                };
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            Ok(meta) if meta.is_file() && std::os::unix::fs::MetadataExt::nlink(&meta) > 1 => {
                return Err(ResolveError::HardLinked(next.display().to_string()));
            }
            Ok(_) => out = next,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::NotFound {
                    check_no_equivalent(&out, &name)?;
                    missing = true;
                }
                out = next;
            }
        }
    }
    Ok(out)
}

/// Fails when `dir` stores a name that differs from `name` but normalises to the same NFC.
fn check_no_equivalent(dir: &Path, name: &OsString) -> Result<(), ResolveError> {
    let Some(requested) = name.to_str() else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let wanted = nfc(requested);
    for (i, entry) in entries.enumerate() {
        if i >= MAX_DIR_ENTRIES {
            return Err(ResolveError::DirectoryTooLarge(dir.display().to_string()));
        }
        let Ok(entry) = entry else { continue };
        let stored = entry.file_name();
        if let Some(stored) = stored.to_str()
            && stored != requested
            && nfc(stored) == wanted
        {
            return Err(ResolveError::StoredDifferently {
                dir: dir.display().to_string(),
                stored: stored.to_owned(),
                requested: requested.to_owned(),
            });
        }
    }
    Ok(())
}

/// An absolute `path` with `.`, `..` and repeated separators collapsed lexically (a `..` at the root
/// stays at the root, as the kernel has it).
pub(super) fn collapse(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}
