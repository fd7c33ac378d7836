//! `include:`: documents a charter's files name, shared by the charters of a set (principals
//! and roles, the label vocabulary, the context).
//!
//! A charter file's top-level `include: [PATH, ...]` names `.yaml`/`.yml` files relative to
//! the including file. [`read_includes`] reads them (bounded like the charter's own files) and
//! appends them to the charter's sources marked as included; the compiler then merges their
//! sections like the files of a charter directory and refuses in them anything but
//! `authority`, `data` and `context` (an included document cannot include: one level). The
//! charter's hash covers them, and `CompiledCharter.files` lists them.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use warden_core::SourceLocation;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{MAX_FILE_BYTES, MAX_FILES, NodeKind, ParsedFile, Source};

/// The top-level key naming included documents.
pub(crate) const INCLUDE_KEY: &str = "include";
/// The sections an included document may hold.
pub(crate) const INCLUDABLE: [&str; 3] = ["authority", "data", "context"];

/// One `include` entry, resolved.
pub(crate) struct Include {
    /// Where the entry is written.
    pub at: SourceLocation,
    /// The included file's name: the including file's directory joined with the entry,
    /// normalised (`a/b/../c.yaml` is `a/c.yaml`).
    pub name: String,
}

/// The includes of `files` (the charter's own files; included documents are skipped), with an
/// error at every malformed entry: not a list of strings, an absolute path, a file that is not
/// `.yaml`/`.yml`, the including file itself or another file of the charter, a file included
/// twice.
pub(crate) fn resolve(files: &[&ParsedFile]) -> (Vec<Include>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let own: Vec<PathBuf> = files
        .iter()
        .filter(|f| !f.included)
        .map(|f| normalise(Path::new(&*f.name)))
        .collect();
    let mut seen: HashMap<String, SourceLocation> = HashMap::new();
    let mut out = Vec::new();
    for file in files.iter().filter(|f| !f.included) {
        let Some((_, node)) = file.root.get(INCLUDE_KEY) else {
            continue;
        };
        let entries = match &node.kind {
            NodeKind::Seq(items) => items.as_slice(),
            NodeKind::Null => &[],
            _ => {
                diags.push(
                    Diagnostic::error(file.at(node), "`include` must be a list of paths")
                        .with_hint("write `include: [../org.yaml]`, paths relative to this file"),
                );
                continue;
            }
        };
        let dir = Path::new(&*file.name).parent().unwrap_or(Path::new(""));
        for entry in entries {
            let at = file.at(entry);
            let NodeKind::Str(text) = &entry.kind else {
                diags.push(Diagnostic::error(at, "an `include` entry must be a path"));
                continue;
            };
            let path = Path::new(text);
            if text.is_empty() || path.is_absolute() {
                diags.push(
                    Diagnostic::error(at, format!("invalid include `{text}`"))
                        .with_hint("an include is a path relative to the including file"),
                );
                continue;
            }
            let yaml = path
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml"));
            if !yaml {
                diags.push(
                    Diagnostic::error(
                        at,
                        format!("include `{text}` is not a `.yaml` or `.yml` file"),
                    )
                    .with_hint(
                        "an included document is a YAML file of `authority`, `data` and `context`",
                    ),
                );
                continue;
            }
            let resolved = normalise(&dir.join(path));
            let name = resolved.display().to_string();
            if own.contains(&resolved) {
                diags.push(
                    Diagnostic::error(
                        at,
                        format!("include `{text}` is a file of this charter (`{name}`)"),
                    )
                    .with_hint("a charter cannot include itself or one of its own files"),
                );
                continue;
            }
            if let Some(first) = seen.get(&name) {
                diags.push(
                    Diagnostic::error(at, format!("`{name}` is included twice"))
                        .with_hint(format!("first included at {first}")),
                );
                continue;
            }
            seen.insert(name.clone(), at.clone());
            out.push(Include { at, name });
        }
    }
    (out, diags)
}

/// Reads a charter file, or every `*.yaml`/`*.yml` file of a directory in name order, then the
/// documents those files include (`include:`, one level: an included document's own
/// `include` is refused when it is compiled). Each file must be a regular file of at most
/// [`MAX_FILE_BYTES`]; anything else (a FIFO, a device) is refused without blocking on it or
/// reading past the limit; a charter and its includes hold at most [`MAX_FILES`] files. An
/// include that cannot be read is an error at its `include` entry.
pub fn read_sources(path: &Path) -> Result<Vec<Source>, Diagnostics> {
    let mut sources = crate::source::read_charter_files(path)?;
    read_includes(&mut sources)?;
    Ok(sources)
}

/// Reads the documents the charter files in `sources` include and appends them, marked as
/// included. Errors: every malformed entry ([`resolve`]), more than [`MAX_FILES`] files in
/// all, and an included file that cannot be read, is not a regular file or is larger than
/// [`MAX_FILE_BYTES`] (each at its entry). A charter file that is not valid YAML is skipped
/// here: the compiler reports it.
pub(crate) fn read_includes(sources: &mut Vec<Source>) -> Result<(), Diagnostics> {
    let parsed: Vec<ParsedFile> = sources
        .iter()
        .filter_map(|s| ParsedFile::parse(s).ok())
        .collect();
    let refs: Vec<&ParsedFile> = parsed.iter().collect();
    let (includes, mut diags) = resolve(&refs);
    let mut read = Vec::with_capacity(includes.len());
    for (i, include) in includes.into_iter().enumerate() {
        if sources.len().saturating_add(i) >= MAX_FILES {
            diags.push(Diagnostic::error(
                include.at,
                format!("a charter and its includes hold at most {MAX_FILES} files"),
            ));
            break;
        }
        match read_included(&include.name) {
            Ok(text) => read.push(Source::included(Arc::<str>::from(include.name), text)),
            Err(message) => diags.push(Diagnostic::error(include.at, message)),
        }
    }
    if diags.has_errors() {
        diags.sort();
        return Err(diags);
    }
    sources.extend(read);
    Ok(())
}

/// Reads one included document through the bounded reader of `warden_core::small_file`.
fn read_included(name: &str) -> Result<String, String> {
    use warden_core::small_file::{SmallFileError, read_text};
    read_text(Path::new(name), MAX_FILE_BYTES).map_err(|e| match e {
        SmallFileError::Io(e) => format!("cannot read included document `{name}`: {e}"),
        SmallFileError::NotRegular(what) => {
            format!("included document `{name}` is {what}, not a regular file")
        }
        SmallFileError::TooLarge(limit) => {
            format!("included document `{name}` is larger than the limit of {limit} bytes")
        }
        SmallFileError::NotUtf8(at) => {
            format!("included document `{name}` is not UTF-8 (invalid byte at offset {at})")
        }
    })
}

/// `path` with `.` dropped and `..` folded into the component before it (lexically: the name
/// read is the name shown).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The compiler's check that every include of the charter files was read (a charter compiled
/// from sources in memory, without [`read_includes`], would otherwise silently lack the
/// principals and labels it names): an error at each include with no included source.
pub(crate) fn check_read(files: &[&ParsedFile], diags: &mut Diagnostics) {
    let (includes, errors) = resolve(files);
    diags.extend(errors);
    for include in includes {
        let present = files
            .iter()
            .any(|f| f.included && normalise(Path::new(&*f.name)) == Path::new(&include.name));
        if !present {
            diags.push(
                Diagnostic::error(
                    include.at,
                    format!("included document `{}` was not read", include.name),
                )
                .with_hint("load the charter from its files (`warden check PATH`) so its includes are read"),
            );
        }
    }
}
