//! The C2SP signed-note format: a text ending in a newline, a blank line, and signature lines
//! `— <key name> <base64(key id || signature)>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::keys::{SigningKey, VerifierKey, valid_key_name};
use super::{Checkpoint, CheckpointError};

/// The largest signed note accepted, in bytes (a checkpoint with its signature is ~200).
pub const MAX_NOTE_BYTES: usize = 16 * 1024;

/// The most lines a signed note may have, text and signatures together.
pub const MAX_NOTE_LINES: usize = 100;

/// The signature line prefix: an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Checks `note` and returns its text (with its final newline) once the one signature by
/// `key` verifies. Signatures by other keys are ignored but must be well formed; a second
/// signature by `key` is refused; anything over [`MAX_NOTE_BYTES`] or [`MAX_NOTE_LINES`] is
/// refused before any signature is checked.
pub fn open_note<'a>(note: &'a str, key: &VerifierKey) -> Result<&'a str, CheckpointError> {
    let malformed = |reason: &'static str| CheckpointError::Malformed { reason };
    if note.len() > MAX_NOTE_BYTES {
        return Err(CheckpointError::TooLarge {
            limit: MAX_NOTE_BYTES,
        });
    }
    if note.bytes().filter(|b| *b == b'\n').count() > MAX_NOTE_LINES {
        return Err(CheckpointError::TooManyLines {
            limit: MAX_NOTE_LINES,
        });
    }
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(malformed("it holds a control character"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(malformed("no blank line before the signatures"))?;
    let text = note
        .get(..=split)
        .ok_or(malformed("no blank line before the signatures"))?;
    let sigs = note
        .get(split + 2..)
        .ok_or(malformed("no signature lines"))?;
    let sigs = sigs.strip_suffix('\n').ok_or(malformed(
        "the last signature line does not end with a newline",
    ))?;
    if sigs.is_empty() {
        return Err(malformed("no signature lines"));
    }

    let mut ours = None;
    for line in sigs.split('\n') {
        let (name, id, signature) = parse_signature_line(line)?;
        if name != key.name() || id != key.id() {
            continue;
        }
        if ours.is_some() {
            return Err(CheckpointError::DuplicateSignature { key: key.label() });
        }
        ours = Some(signature);
    }
    let signature = ours.ok_or_else(|| CheckpointError::NoSignature { key: key.label() })?;
    if !key.verify(text.as_bytes(), &signature) {
        return Err(CheckpointError::BadSignature { key: key.label() });
    }
    Ok(text)
}

/// One signature line: the key name, the key id and the signature bytes after it.
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), CheckpointError> {
    let malformed = |reason: &'static str| CheckpointError::Malformed { reason };
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(malformed("a line after the blank line is not a signature"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or(malformed("a signature line has no signature"))?;
    if !valid_key_name(name) {
        return Err(malformed("a signature line has an invalid key name"));
    }
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| malformed("a signature is not canonical base64"))?;
    let (id, signature) = raw
        .split_first_chunk::<4>()
        .filter(|(_, sig)| !sig.is_empty())
        .ok_or(malformed("a signature is too short"))?;
    Ok((name, u32::from_be_bytes(*id), signature.to_vec()))
}

/// Checks that `text` can be the text of a signed note: it ends with a newline, is not only
/// a newline, has no control character but newlines, and fits with a signature in the
/// bounds [`open_note`] applies.
pub(super) fn check_text(text: &str) -> Result<(), CheckpointError> {
    let unsignable = |reason: &'static str| CheckpointError::Unsignable { reason };
    if !text.ends_with('\n') || text == "\n" {
        return Err(unsignable(
            "the text must be non-empty and end with a newline",
        ));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(unsignable("the text holds a control character"));
    }
    // One signature line of ~100 bytes plus the blank line must still fit.
    if text.len() + 2 * super::keys::MAX_KEY_NAME_BYTES > MAX_NOTE_BYTES
        || text.bytes().filter(|b| *b == b'\n').count() + 2 > MAX_NOTE_LINES
    {
        return Err(unsignable("the text is too long for a signed note"));
    }
    Ok(())
}

/// The signed note: `text`, a blank line, and the signature line by `name`.
pub(super) fn assemble(text: &str, name: &str, id: u32, signature: &[u8]) -> String {
    let mut raw = Vec::with_capacity(4 + signature.len());
    raw.extend_from_slice(&id.to_be_bytes());
    raw.extend_from_slice(signature);
    format!("{text}\n{SIG_PREFIX}{name} {}\n", STANDARD.encode(raw))
}

/// Signing: kept beside the note format (the key file's concerns stay in `keys.rs`).
impl SigningKey {
    /// The whole signed note of `checkpoint`: its [`Checkpoint::body`], a blank line and this
    /// key's signature line. The origin must be a [`super::valid_origin`] (configuration
    /// checks it), or nobody can open the note.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.pair.sign(body.as_bytes());
        assemble(&body, &self.name, self.id, signature.as_ref())
    }

    /// Signs any note `text` (not only checkpoints): the text must end with a newline and
    /// hold no control character but newlines.
    pub fn sign_text(&self, text: &str) -> Result<String, CheckpointError> {
        check_text(text)?;
        let signature = self.pair.sign(text.as_bytes());
        Ok(assemble(text, &self.name, self.id, signature.as_ref()))
    }
}
