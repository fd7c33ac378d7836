//! Signed checkpoints of the ledger's Merkle tree: the C2SP `tlog-checkpoint` body in a C2SP
//! `signed-note`, signed with Ed25519.
//!
//! - A [`Checkpoint`] is the tree head the ledger's writer published (`size` records, `root`
//!   the RFC 9162 root of their leaves, see [`crate::merkle`]) under an `origin` (by default
//!   `warden/ledger/<ledger id>`), and optionally the `time` it was signed. Its note body is the
//!   three lines of `c2sp.org/tlog-checkpoint` (origin, decimal size, base64 root) and at most
//!   one extension line `time <RFC 3339 UTC>`.
//! - A signed note is the body, a blank line and one signature line per key: `— <key name>
//!   <base64(4-byte key id || 64-byte Ed25519 signature)>` (`c2sp.org/signed-note`), exactly
//!   what `golang.org/x/mod/sumdb/note` signs and opens, so outside witnesses and verifiers
//!   read warden's checkpoints as they are (the Go package's test vectors pin it).
//! - Keys ([`SigningKey`], [`VerifierKey`]) use the Go text formats: `PRIVATE+KEY+<name>+<key
//!   id>+<base64(0x01 || seed)>` and `<name>+<key id>+<base64(0x01 || public key)>`, the key
//!   id being the first four bytes of `SHA-256(name || "\n" || 0x01 || public key)`.
//!
//! Opening is strict and bounded: a note over [`MAX_NOTE_BYTES`] or [`MAX_NOTE_LINES`] is
//! refused before anything is hashed; the body must be exactly what [`Checkpoint::body`]
//! writes (canonical size, canonical base64, a UTC time written as `time` writes it, no other
//! extension line); a second signature by the same key is refused; signatures by other keys
//! are ignored, as the signed-note spec requires, but must be well formed.

mod keys;
mod note;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::merkle;
use warden_core::canonical::hex;

pub use keys::{KeyError, MAX_KEY_FILE_BYTES, MAX_KEY_NAME_BYTES, SigningKey, VerifierKey};
pub use note::{MAX_NOTE_BYTES, MAX_NOTE_LINES, open_note};

/// The default origin of a ledger's checkpoints: `warden/ledger/<ledger id>`.
pub fn default_origin(ledger_id: &str) -> String {
    format!("warden/ledger/{ledger_id}")
}

/// The longest origin accepted, in bytes.
pub const MAX_ORIGIN_BYTES: usize = 256;

/// Whether `origin` can be a checkpoint's first line: 1 to [`MAX_ORIGIN_BYTES`] bytes of
/// printable ASCII (space to `~`). Configuration checks this before anything is signed.
pub fn valid_origin(origin: &str) -> bool {
    !origin.is_empty()
        && origin.len() <= MAX_ORIGIN_BYTES
        && origin.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// A tree head to sign, or one read from a verified note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Who issued it: the log's identity (printable ASCII, see [`valid_origin`]).
    pub origin: String,
    /// The number of records (leaves) the tree holds.
    pub size: u64,
    /// The RFC 9162 root of the first `size` leaves.
    pub root: merkle::Hash,
    /// When it was signed (written in UTC), if the signer says so.
    pub time: Option<OffsetDateTime>,
}

impl Checkpoint {
    /// The note body: `"<origin>\n<size>\n<base64 root>\n"` plus, when `time` is set, one
    /// extension line `"time <RFC 3339 UTC>\n"`. A time RFC 3339 cannot write (a year outside
    /// 0000–9999) is left out rather than written wrong.
    pub fn body(&self) -> String {
        let mut out = String::with_capacity(self.origin.len() + 100);
        let _ = write!(
            out,
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        if let Some(time) = self.time.and_then(format_time) {
            let _ = writeln!(out, "time {time}");
        }
        out
    }

    /// Verifies that `note` carries a valid signature by `key` and parses its body (strict:
    /// see the module's documentation). Nothing of the body is trusted before the signature
    /// verifies.
    pub fn open(note: &str, key: &VerifierKey) -> Result<Checkpoint, CheckpointError> {
        let text = open_note(note, key)?;
        Checkpoint::parse_body(text)
    }

    /// Parses a note body exactly as [`Checkpoint::body`] writes it. The caller must have
    /// verified the note's signature first ([`Checkpoint::open`] does both).
    fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = |reason: &'static str| CheckpointError::Body { reason };
        let lines = text
            .strip_suffix('\n')
            .ok_or(bad("the body does not end with a newline"))?;
        let mut lines = lines.split('\n');
        let origin = lines.next().unwrap_or_default();
        if !valid_origin(origin) {
            return Err(bad(
                "the origin line is empty, too long or not printable ASCII",
            ));
        }
        let size = lines.next().ok_or(bad("the size line is missing"))?;
        let size = parse_size(size).ok_or(bad(
            "the size line is not a decimal number without leading zeros",
        ))?;
        let root = lines.next().ok_or(bad("the root hash line is missing"))?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| merkle::Hash::try_from(bytes.as_slice()).ok())
            .ok_or(bad("the root hash line is not the base64 of 32 bytes"))?;
        let mut time = None;
        for line in lines {
            let Some(value) = line.strip_prefix("time ") else {
                return Err(bad("an extension line other than `time`"));
            };
            if time.is_some() {
                return Err(bad("more than one `time` line"));
            }
            let parsed = OffsetDateTime::parse(value, &Rfc3339)
                .ok()
                .filter(|t| t.offset() == UtcOffset::UTC)
                .filter(|t| format_time(*t).as_deref() == Some(value))
                .ok_or(bad("the `time` line is not an RFC 3339 UTC time"))?;
            time = Some(parsed);
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            time,
        })
    }

    /// The root as 64 lowercase hex digits (as the `checkpoint_signed` record's `root`).
    pub fn root_hex(&self) -> String {
        hex(&self.root)
    }

    /// The payload of the `checkpoint_signed` record for this checkpoint, signed as `note`:
    /// `{"note": note, "origin": .., "size": N, "root": <64 hex>}`.
    pub fn record_payload(&self, note: &str) -> serde_json::Value {
        json!({
            "note": note,
            "origin": self.origin,
            "size": self.size,
            "root": self.root_hex(),
        })
    }

    /// Reads a `checkpoint_signed` record's payload: opens its `note` with `key` (the note is
    /// the truth) and checks that `origin`, `size` and `root` say the same.
    pub fn from_record_payload(
        payload: &serde_json::Value,
        key: &VerifierKey,
    ) -> Result<Checkpoint, CheckpointError> {
        let note = payload
            .get("note")
            .and_then(serde_json::Value::as_str)
            .ok_or(CheckpointError::Payload {
                reason: "no `note` string",
            })?;
        let checkpoint = Checkpoint::open(note, key)?;
        let same = payload.get("origin").and_then(serde_json::Value::as_str)
            == Some(checkpoint.origin.as_str())
            && payload.get("size").and_then(serde_json::Value::as_u64) == Some(checkpoint.size)
            && payload.get("root").and_then(serde_json::Value::as_str)
                == Some(checkpoint.root_hex().as_str());
        if !same {
            return Err(CheckpointError::Payload {
                reason: "`origin`, `size` or `root` differ from the signed note",
            });
        }
        Ok(checkpoint)
    }
}

/// A time as the `time` extension line writes it: RFC 3339 in UTC (`Z`), fractional seconds
/// only when there are any.
fn format_time(time: OffsetDateTime) -> Option<String> {
    time.checked_to_offset(UtcOffset::UTC)?
        .format(&Rfc3339)
        .ok()
}

/// A tree size: ASCII digits, no sign, no leading zero (except `0` itself), fits in a u64.
fn parse_size(line: &str) -> Option<u64> {
    let canonical = !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && (line == "0" || !line.starts_with('0'));
    if !canonical {
        return None;
    }
    line.parse().ok()
}

/// A signed note or checkpoint that cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The note is bigger than [`MAX_NOTE_BYTES`].
    #[error("the signed note is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The note has more than [`MAX_NOTE_LINES`] lines.
    #[error("the signed note has more than {limit} lines")]
    TooManyLines {
        /// The limit.
        limit: usize,
    },
    /// The note is not a well-formed signed note.
    #[error("malformed signed note: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// No signature line is by the expected key (same name and key id).
    #[error("the note has no signature by the key `{key}`")]
    NoSignature {
        /// The key's name and id, `name+id`.
        key: String,
    },
    /// The expected key signed the note more than once.
    #[error("the note has more than one signature by the key `{key}`")]
    DuplicateSignature {
        /// The key's name and id, `name+id`.
        key: String,
    },
    /// The expected key's signature does not verify: the note was changed, or signed by
    /// another key with the same name and id.
    #[error("the signature by the key `{key}` does not verify")]
    BadSignature {
        /// The key's name and id, `name+id`.
        key: String,
    },
    /// The note's text is signed text that must end with a newline and hold no blank line at
    /// the end (signing refuses anything the note format could not carry).
    #[error("cannot sign this text: {reason}")]
    Unsignable {
        /// What is wrong.
        reason: &'static str,
    },
    /// The signed body is not a checkpoint as warden writes them.
    #[error("the signed note is not a checkpoint: {reason}")]
    Body {
        /// What is wrong.
        reason: &'static str,
    },
    /// A `checkpoint_signed` record's payload does not match its note.
    #[error("the checkpoint record's payload is not valid: {reason}")]
    Payload {
        /// What is wrong.
        reason: &'static str,
    },
}
