//! Argument provenance: where a value an agent sends was found.
//!
//! A session's [`SessionProvenance`] holds its *trusted text* (the task, instructions added
//! for the principal, values an approver confirmed for the session) and a bounded index of the
//! *untrusted content* it read (results carrying a label the charter declares untrusted, each
//! known by the ledger sequence of its `action_result`). [`SessionProvenance::trace`] says,
//! for one value, whether trusted text states it and which of its meaningful parts (e-mail
//! addresses, URLs and hosts, IBANs and account numbers, numbers, phrases of several words)
//! occur in untrusted content and not in trusted text.
//!
//! Guarantees (see `docs/provenance.md`):
//! - a value that occurs only in untrusted content is never judged trusted;
//! - a value stated in the trusted text is always judged trusted;
//! - the index never grows past its [`Limits`]; content beyond them marks it incomplete, and an
//!   incomplete index judges every value the trusted text does not state as untrusted (fail
//!   closed).
//!
//! Pure and synchronous: no IO, no clock. Sits above `warden-core` only.

use std::sync::{Arc, LazyLock};

use warden_core::{FoundIn, TrustedSource};

mod normalize;
mod parts;
#[cfg(test)]
mod tests;

pub use normalize::normalize;

/// The bounds of one session's provenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of untrusted content indexed per session; content past it marks the index
    /// incomplete (fail closed).
    pub max_untrusted_bytes: usize,
    /// Most distinct keys (parts and word shingles) in the untrusted index.
    pub max_keys: usize,
    /// Most bytes of trusted text (task, instructions, confirmed values) per session.
    pub max_trusted_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_untrusted_bytes: 2 * 1024 * 1024,
            max_keys: 1 << 19,
            max_trusted_bytes: 256 * 1024,
        }
    }
}

/// Where a piece of untrusted content came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The ledger sequence of the `action_result` record whose content it is.
    pub seq: u64,
    /// The untrusted labels the result carries (never empty).
    pub labels: Vec<Arc<str>>,
}

/// Trusted text that cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The session's trusted text would pass [`Limits::max_trusted_bytes`].
    #[error("the session's trusted text would exceed {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
}

/// What kind of meaningful part of a value was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartKind {
    /// The whole value.
    Whole,
    /// An e-mail address.
    Email,
    /// A URL.
    Url,
    /// A host name (of a URL or an e-mail address, or alone).
    Host,
    /// An IBAN.
    Iban,
    /// An account or card number (a long run of digits).
    Account,
    /// A number.
    Number,
    /// A phrase of several words.
    Phrase,
}

impl PartKind {
    /// The kind's stable name (as in [`FoundIn::kind`]).
    pub fn as_str(self) -> &'static str {
        match self {
            PartKind::Whole => "whole",
            PartKind::Email => "email",
            PartKind::Url => "url",
            PartKind::Host => "host",
            PartKind::Iban => "iban",
            PartKind::Account => "account",
            PartKind::Number => "number",
            PartKind::Phrase => "phrase",
        }
    }
}

/// Where one value was found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// The trusted source that states the whole value, if one does.
    pub stated: Option<TrustedSource>,
    /// The meaningful parts found in untrusted content and not in trusted text, with the
    /// content they were found in (empty when `stated` is set).
    pub untrusted: Vec<FoundIn>,
    /// The index was incomplete when the value was traced.
    pub incomplete: bool,
}

impl Trace {
    /// Whether trusted text states the whole value.
    pub fn is_stated(&self) -> bool {
        self.stated.is_some()
    }

    /// Whether the value counts as coming from content carrying any of `labels`: a part of
    /// it was found there and not in trusted text — or the index is incomplete and trusted
    /// text does not state the value (fail closed).
    pub fn from_any(&self, labels: &[Arc<str>]) -> bool {
        if self.stated.is_some() {
            return false;
        }
        self.incomplete
            || self
                .untrusted
                .iter()
                .any(|f| f.labels.iter().any(|l| labels.contains(l)))
    }
}

/// One session's trusted text and the index of the untrusted content it read.
#[derive(Debug, Default)]
pub struct SessionProvenance {
    limits: Limits,
    trusted: Vec<Piece>,
    trusted_bytes: usize,
    index: std::collections::HashMap<u64, Entry>,
    origins: Vec<Origin>,
    labels: Vec<Arc<str>>,
    indexed_bytes: usize,
    incomplete: bool,
}

/// A piece of trusted text, normalised three ways for the three comparisons.
#[derive(Debug)]
struct Piece {
    raw: String,
    normalized: String,
    compact: String,
    numbers: Vec<String>,
    source: TrustedSource,
}

/// Where an index key was first found, and every untrusted label it was found under.
#[derive(Debug, Clone, Copy)]
struct Entry {
    origin: u32,
    labels: u64,
}

/// Most origins (indexed results) per session; past it the index is incomplete.
const MAX_ORIGINS: usize = 100_000;
/// Most parts a trace reports.
const MAX_FOUND: usize = 16;
/// Longest part text a trace reports, in bytes.
const MAX_PART_BYTES: usize = 120;
/// Bytes one index key costs, as [`SessionProvenance::memory_bytes`] counts it (the key, the
/// entry and the hash table's overhead at its load factor).
const BYTES_PER_KEY: usize = 40;

static EMPTY: LazyLock<SessionProvenance> = LazyLock::new(SessionProvenance::default);

impl SessionProvenance {
    /// An empty provenance with these bounds.
    pub fn new(limits: Limits) -> SessionProvenance {
        SessionProvenance {
            limits,
            ..SessionProvenance::default()
        }
    }

    /// A shared empty provenance: no trusted text, nothing read (for decisions outside a
    /// session, and tests).
    pub fn empty() -> &'static SessionProvenance {
        &EMPTY
    }

    /// The bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Adds trusted text from `source`. Refused, and nothing added, past
    /// [`Limits::max_trusted_bytes`].
    pub fn add_trusted(&mut self, text: &str, source: TrustedSource) -> Result<(), TrustError> {
        if self.trusted_bytes.saturating_add(text.len()) > self.limits.max_trusted_bytes {
            return Err(TrustError::TooLarge {
                limit: self.limits.max_trusted_bytes,
            });
        }
        let normalized = normalize(text);
        let numbers = normalize::terms(&normalized)
            .filter_map(normalize::number)
            .collect();
        self.trusted.push(Piece {
            raw: text.to_owned(),
            compact: normalize::compact(&normalized),
            normalized,
            numbers,
            source,
        });
        self.trusted_bytes += text.len();
        Ok(())
    }

    /// Indexes untrusted content read by the session. Content past the bounds marks the index
    /// incomplete instead of growing it.
    pub fn add_untrusted(&mut self, text: &str, origin: Origin) {
        if self.indexed_bytes.saturating_add(text.len()) > self.limits.max_untrusted_bytes
            || self.origins.len() >= MAX_ORIGINS
        {
            self.incomplete = true;
            return;
        }
        let normalized = normalize(text);
        if normalized.is_empty() {
            return;
        }
        self.indexed_bytes += text.len();
        let mask = self.label_mask(&origin.labels);
        let Ok(at) = u32::try_from(self.origins.len()) else {
            self.incomplete = true;
            return;
        };
        self.origins.push(origin);
        let max_keys = self.limits.max_keys;
        let index = &mut self.index;
        let mut overflow = false;
        parts::content_keys(&normalized, |k| {
            if let Some(e) = index.get_mut(&k) {
                e.labels |= mask;
            } else if index.len() < max_keys {
                index.insert(
                    k,
                    Entry {
                        origin: at,
                        labels: mask,
                    },
                );
            } else {
                overflow = true;
            }
        });
        if overflow {
            self.incomplete = true;
        }
    }

    /// The bit mask of `labels`; a label past the 64th distinct one sets every bit (fail
    /// closed: it then counts as every label).
    fn label_mask(&mut self, labels: &[Arc<str>]) -> u64 {
        let mut mask = 0u64;
        for l in labels {
            let bit = match self.labels.iter().position(|x| x == l) {
                Some(i) => i,
                None => {
                    self.labels.push(l.clone());
                    self.labels.len() - 1
                }
            };
            mask |= u32::try_from(bit)
                .ok()
                .and_then(|b| 1u64.checked_shl(b))
                .unwrap_or(u64::MAX);
        }
        mask
    }

    fn labels_of(&self, mask: u64) -> Vec<Arc<str>> {
        self.labels
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                mask == u64::MAX
                    || u32::try_from(*i)
                        .ok()
                        .and_then(|b| 1u64.checked_shl(b))
                        .is_some_and(|bit| mask & bit != 0)
            })
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Marks the index incomplete (content that could not be indexed, or an index that could
    /// not be rebuilt after a restart): every value trusted text does not state then counts
    /// as untrusted.
    pub fn mark_incomplete(&mut self) {
        self.incomplete = true;
    }

    /// Whether every untrusted content the session read is indexed.
    pub fn is_complete(&self) -> bool {
        !self.incomplete
    }

    /// The trusted text, in the order it was added (the task first), one piece per line: what
    /// the charter's CEL sees as `task`.
    pub fn trusted_text(&self) -> String {
        self.trusted
            .iter()
            .map(|p| p.raw.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The pieces of trusted text and their sources.
    pub fn trusted(&self) -> impl Iterator<Item = (&str, &TrustedSource)> {
        self.trusted.iter().map(|p| (p.raw.as_str(), &p.source))
    }

    /// The trusted source that states a normalised text, if one does: the text occurs in a
    /// piece at term boundaries; a number equals a number of the piece; an IBAN or account
    /// number occurs in the piece with spaces and punctuation removed.
    fn stating(&self, normalized: &str, kind: PartKind) -> Option<&TrustedSource> {
        if normalized.is_empty() {
            return None;
        }
        let as_number = matches!(kind, PartKind::Number | PartKind::Whole)
            .then(|| normalize::number(normalized))
            .flatten();
        let compacted = matches!(kind, PartKind::Iban | PartKind::Account | PartKind::Whole)
            .then(|| normalize::compact(normalized))
            .filter(|c| c.len() >= 8 && c.chars().any(|ch| ch.is_ascii_digit()));
        self.trusted
            .iter()
            .find(|p| {
                contains_at_boundary(&p.normalized, normalized)
                    || as_number.as_ref().is_some_and(|n| p.numbers.contains(n))
                    || compacted
                        .as_ref()
                        .is_some_and(|c| p.compact.contains(c.as_str()))
            })
            .map(|p| &p.source)
    }

    /// Where `value` (the text of a JSON string or number) was found.
    pub fn trace(&self, value: &str) -> Trace {
        let normalized = normalize(value);
        if let Some(source) = self.stating(&normalized, PartKind::Whole) {
            return Trace {
                stated: Some(source.clone()),
                untrusted: Vec::new(),
                incomplete: self.incomplete,
            };
        }
        let mut untrusted = Vec::new();
        if !self.index.is_empty() {
            let terms: Vec<&str> = normalize::terms(&normalized).collect();
            for part in parts::value_parts(&terms) {
                if untrusted.len() >= MAX_FOUND {
                    break;
                }
                let Some(entry) = self.index.get(&part.key) else {
                    continue;
                };
                let text = match part.span {
                    Some((a, b)) => terms.get(a..b).unwrap_or_default().join(" "),
                    None => part.text,
                };
                if self.stating(&text, part.kind).is_some() {
                    continue;
                }
                let seq = usize::try_from(entry.origin)
                    .ok()
                    .and_then(|i| self.origins.get(i))
                    .map_or(0, |o| o.seq);
                untrusted.push(FoundIn {
                    part: warden_core::text::ellipsize(&text, MAX_PART_BYTES),
                    kind: part.kind.as_str().to_owned(),
                    seq,
                    labels: self.labels_of(entry.labels),
                });
            }
        }
        Trace {
            stated: None,
            untrusted,
            incomplete: self.incomplete,
        }
    }

    /// How many keys the untrusted index holds.
    pub fn keys(&self) -> usize {
        self.index.len()
    }

    /// An estimate of the memory the index and the trusted text hold, in bytes: at most
    /// `max_keys × 40` for the index, plus three times the trusted text, plus the origins.
    pub fn memory_bytes(&self) -> usize {
        self.index.len() * BYTES_PER_KEY
            + self.trusted_bytes * 3
            + self.origins.len() * std::mem::size_of::<Origin>()
    }
}

/// Whether `needle` occurs in `hay` with no letter or digit right before or after it.
fn contains_at_boundary(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(at, _)| {
        let before = hay.get(..at).and_then(|s| s.chars().next_back());
        let after = hay.get(at + needle.len()..).and_then(|s| s.chars().next());
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}
