//! One ledger record, its stored time format, and its JSON-lines form.

use std::fmt::Write as _;

use serde_json::Value;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::hash::record_hash;
use warden_core::RecordKind;
use warden_core::canonical::hex;
use warden_core::canonical::{canonical_json, write_json_string as write_string};

/// One record of the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Position in the ledger: 1 for the first record, then one more for each record.
    pub seq: u64,
    /// When the ledger's writer stamped the record (UTC, nanosecond precision).
    pub time: OffsetDateTime,
    /// The session the record belongs to, if any.
    pub session: Option<String>,
    /// What the record is about.
    pub kind: RecordKind,
    /// The record's content; stored and hashed as canonical JSON.
    pub payload: Value,
    /// The previous record's hash ([`GENESIS_HASH`](super::GENESIS_HASH) for the first).
    pub prev_hash: [u8; 32],
    /// This record's hash.
    pub hash: [u8; 32],
}

impl Record {
    /// Recomputes this record's hash from its content and `prev_hash`.
    pub fn compute_hash(&self) -> Result<[u8; 32], TimeError> {
        Ok(record_hash(
            &self.prev_hash,
            self.seq,
            &format_time(self.time)?,
            self.session.as_deref(),
            self.kind.as_str(),
            &canonical_json(&self.payload),
        ))
    }

    /// The record as one line of JSON (without the newline), fields in this order:
    /// `{"seq":..,"time":..,"session":..,"kind":..,"payload":{..},"prev_hash":"hex","hash":"hex"}`.
    ///
    /// The payload is written in canonical form; the hashes in lowercase hex.
    pub fn to_json_line(&self) -> String {
        let mut out = String::with_capacity(256);
        let _ = write!(out, "{{\"seq\":{},\"time\":", self.seq);
        match format_time(self.time) {
            Ok(t) => write_string(&mut out, &t),
            Err(_) => out.push_str("null"),
        }
        out.push_str(",\"session\":");
        match &self.session {
            Some(s) => write_string(&mut out, s),
            None => out.push_str("null"),
        }
        out.push_str(",\"kind\":");
        write_string(&mut out, self.kind.as_str());
        out.push_str(",\"payload\":");
        out.push_str(&canonical_json(&self.payload));
        let _ = write!(
            out,
            ",\"prev_hash\":\"{}\",\"hash\":\"{}\"}}",
            hex(&self.prev_hash),
            hex(&self.hash)
        );
        out
    }

    /// Reads a record written by [`Record::to_json_line`] (the ledger stream's `data:` lines,
    /// `warden audit tail`). Strict: every field present, none unknown, the time in the
    /// ledger's format, the hashes 64 lowercase or uppercase hex digits. The hash is read as
    /// written, not checked: that is the [`Verifier`](super::Verifier)'s job.
    pub fn from_json_line(line: &str) -> Result<Record, LineError> {
        let raw: RawLine =
            serde_json::from_str(line).map_err(|e| LineError::Json(e.to_string()))?;
        Ok(Record {
            seq: raw.seq,
            time: parse_time(&raw.time).map_err(LineError::Time)?,
            session: raw.session,
            kind: raw
                .kind
                .parse()
                .map_err(|_| LineError::Kind(raw.kind.clone()))?,
            payload: raw.payload,
            prev_hash: unhex(&raw.prev_hash).ok_or(LineError::Hash("prev_hash"))?,
            hash: unhex(&raw.hash).ok_or(LineError::Hash("hash"))?,
        })
    }
}

/// Why a line is not a record ([`Record::from_json_line`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not a JSON object of the record's fields.
    #[error("not a ledger record: {0}")]
    Json(String),
    /// The time is not in the ledger's format.
    #[error(transparent)]
    Time(TimeError),
    /// A kind this version of warden does not know.
    #[error("unknown record kind `{0}`")]
    Kind(String),
    /// A hash that is not 32 bytes in hex.
    #[error("`{0}` is not 64 hex digits")]
    Hash(&'static str),
}

/// The fields of a JSON line, as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    seq: u64,
    time: String,
    session: Option<String>,
    kind: String,
    payload: Value,
    prev_hash: String,
    hash: String,
}

/// 64 hex digits as 32 bytes.
fn unhex(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        let value = |d: u8| {
            char::from(d)
                .to_digit(16)
                .and_then(|v| u8::try_from(v).ok())
        };
        *byte = value(*hi)? << 4 | value(*lo)?;
    }
    Some(out)
}

/// One record as it is stored, borrowed: what the [`Verifier`](super::Verifier) checks.
///
/// The hashes are slices because a tampered store may hold blobs of any length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The stored sequence number.
    pub seq: u64,
    /// The stored time text ([`format_time`]).
    pub time: &'a str,
    /// The stored session id.
    pub session: Option<&'a str>,
    /// The stored kind name.
    pub kind: &'a str,
    /// The stored canonical JSON payload text.
    pub payload: &'a str,
    /// The stored previous hash.
    pub prev_hash: &'a [u8],
    /// The stored hash.
    pub hash: &'a [u8],
}

/// `2026-11-21T06:01:30.123456789Z`: always UTC, always nine fractional digits, so one
/// instant has exactly one text.
const TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

/// A record time that cannot be written or read in the ledger's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The time cannot be written (a year outside 0000..=9999).
    #[error("the time `{0}` cannot be written as RFC 3339")]
    Format(OffsetDateTime),
    /// The stored text is not in the ledger's time format.
    #[error("`{0}` is not a time in the ledger's format (`YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`)")]
    Parse(String),
}

/// Writes `time` in the ledger's format: RFC 3339 in UTC with nine fractional digits,
/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (30 bytes).
pub fn format_time(time: OffsetDateTime) -> Result<String, TimeError> {
    time.to_offset(UtcOffset::UTC)
        .format(TIME_FORMAT)
        .map_err(|_| TimeError::Format(time))
}

/// Reads a time written by [`format_time`].
pub fn parse_time(text: &str) -> Result<OffsetDateTime, TimeError> {
    PrimitiveDateTime::parse(text, TIME_FORMAT)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| TimeError::Parse(text.to_owned()))
}
