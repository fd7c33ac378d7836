//! Lexical path canonicalisation: the one form in which paths are compared with globs.
//!
//! [`canonicalize`] turns an argument as an agent wrote it into the path a file system would
//! see, or refuses it. It rejects control characters, backslashes, Unicode characters that
//! look like `/` or `.` and text not in Unicode NFC, and collapses `.`, `..` and repeated `/`.
//! A `..` that would climb above the start of the path is an error, never silently dropped. The
//! result contains no `.` or `..` segments, so a path that matches `/srv/data/**` is inside
//! `/srv/data`.
//!
//! Percent-escapes are decoded (repeatedly, so `%252e` cannot hide a `.`) only to be refused:
//! some servers decode them and some (the MCP filesystem server) take them literally, so
//! `/ws/a%2fb/../../etc` names `/ws/etc` to one and `/etc` to the other. A path whose meaning
//! depends on who reads it is refused, with what it decodes to in the error. A `%` that does not
//! start an escape is an ordinary character.
//!
//! Text not in NFC is refused rather than normalised: the canonical path keeps the bytes the
//! agent sent, so it names the directory entry a server opens byte for byte, and a name in
//! decomposed form (`cafe` + U+0301) cannot be decided as its composed twin while a server
//! opens a different entry.
//!
//! Symbolic links are not resolved here: that needs the file system, and is the gateway's job
//! for paths it serves locally.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use unicode_normalization::UnicodeNormalization;

/// Percent-decoding deeper than this is refused rather than decoded further.
const MAX_DECODE_ROUNDS: usize = 4;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty.
    #[error("path is empty")]
    Empty,
    /// Percent-decoding produced bytes that are not UTF-8.
    #[error("path is not valid UTF-8 after percent-decoding")]
    NotUtf8,
    /// The path holds percent-escapes, which servers disagree on decoding.
    #[error(
        "path holds percent-escapes (it decodes to `{0}`); servers differ on decoding them, so it is refused"
    )]
    PercentEncoded(String),
    /// The path is percent-encoded more deeply than any honest client does.
    #[error("path is percent-encoded more than {MAX_DECODE_ROUNDS} times")]
    TooDeeplyEncoded,
    /// The path holds a control character (including NUL).
    #[error("path contains control character U+{0:04X}")]
    ControlCharacter(u32),
    /// The path holds a backslash, which some systems treat as a separator.
    #[error("path contains a backslash")]
    Backslash,
    /// The path holds a character that looks like `/` or `.`.
    #[error("path contains U+{0:04X}, which looks like a path separator or dot")]
    LookAlike(u32),
    /// A `..` climbs above the start of the path.
    #[error("path escapes its root with `..`")]
    EscapesRoot,
    /// The path is not in Unicode NFC: another spelling of a name a directory may store
    /// either way.
    #[error(
        "path is not in Unicode NFC (it normalises to `{0}`); a name written in another form can be another file, so it is refused"
    )]
    NotNfc(String),
}

/// Canonicalises `raw` lexically; see the module documentation for the steps.
///
/// Idempotent: `canonicalize(&canonicalize(p)?) == canonicalize(p)`.
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    let decoded = percent_decode_fixpoint(raw)?;
    check_characters(&decoded)?;
    if decoded != raw {
        return Err(PathError::PercentEncoded(decoded.into_owned()));
    }
    if !is_nfc(&decoded) {
        return Err(PathError::NotNfc(nfc(&decoded)));
    }
    collapse(&decoded)
}

fn percent_decode_fixpoint(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let mut current: Cow<'_, str> = Cow::Borrowed(raw);
    for _ in 0..=MAX_DECODE_ROUNDS {
        if !current.contains('%') {
            return Ok(current);
        }
        let next = percent_decode_str(&current)
            .decode_utf8()
            .map_err(|_| PathError::NotUtf8)?;
        if next == current {
            return Ok(current);
        }
        current = Cow::Owned(next.into_owned());
    }
    Err(PathError::TooDeeplyEncoded)
}

fn check_characters(s: &str) -> Result<(), PathError> {
    for c in s.chars() {
        if c.is_control() {
            return Err(PathError::ControlCharacter(u32::from(c)));
        }
        if c == '\\' {
            return Err(PathError::Backslash);
        }
        if !c.is_ascii() && is_look_alike(c) {
            return Err(PathError::LookAlike(u32::from(c)));
        }
    }
    Ok(())
}

/// Characters that render like `/`, `\` or `.`: those whose compatibility decomposition holds
/// one (fullwidth solidus, one-dot leader, small full stop…) and slashes NFKC leaves alone.
fn is_look_alike(c: char) -> bool {
    const EXTRA: [char; 8] = [
        '\u{2215}', // division slash
        '\u{2044}', // fraction slash
        '\u{29F8}', // big solidus
        '\u{29F9}', // big reverse solidus
        '\u{2216}', // set minus
        '\u{FE68}', // small reverse solidus
        '\u{3002}', // ideographic full stop
        '\u{FF61}', // halfwidth ideographic full stop
    ];
    EXTRA.contains(&c)
        || std::iter::once(c)
            .nfkc()
            .any(|d| matches!(d, '/' | '.' | '\\'))
}

fn collapse(s: &str) -> Result<String, PathError> {
    if s.is_empty() {
        return Err(PathError::Empty);
    }
    let absolute = s.starts_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in s.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::EscapesRoot);
                }
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(s.len());
    if absolute {
        out.push('/');
    }
    out.push_str(&segments.join("/"));
    if out.is_empty() {
        out.push('.');
    }
    Ok(out)
}

/// Whether `s` is in Unicode NFC (what [`canonicalize`] requires of a path).
pub fn is_nfc(s: &str) -> bool {
    s.is_ascii() || unicode_normalization::is_nfc(s)
}

/// `s` in Unicode NFC.
pub fn nfc(s: &str) -> String {
    s.nfc().collect()
}

/// The literal directory a glob is anchored at: everything up to the last `/` before the first
/// glob metacharacter (`*`, `?`, `[`, `{`). `/srv/data/**/*.md` is anchored at `/srv/data`.
pub fn glob_root(glob: &str) -> &str {
    let meta = glob.find(['*', '?', '[', '{']).unwrap_or(glob.len());
    let literal = glob.get(..meta).unwrap_or(glob);
    match literal.rfind('/') {
        Some(0) => "/",
        Some(i) => literal.get(..i).unwrap_or(literal),
        None => "",
    }
}

#[cfg(test)]
mod tests;
