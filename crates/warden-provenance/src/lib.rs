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

mod index;
mod normalise;
mod parts;
pub mod recorded;
mod trusted;

use std::sync::{Arc, LazyLock};

use warden_core::text::ellipsize;
use warden_core::{FoundIn, TrustedSource};

pub use index::{MAX_ORIGINS, ORIGINS_PER_KEY};
pub use normalise::normalise;
pub use parts::{MIN_PART_CHARS, SHINGLE_WORDS, value_parts};

use index::Index;
use trusted::Piece;

/// Most parts listed in one [`Trace`].
pub const MAX_TRACE_PARTS: usize = 16;

/// Most bytes of a part shown in [`FoundIn::part`] (longer ones are ellipsized).
pub const MAX_PART_BYTES: usize = 120;

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
            max_untrusted_bytes: 4 * 1024 * 1024,
            max_keys: 1 << 20,
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
    index: Index,
}

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
    /// [`Limits::max_trusted_bytes`] (counted on the text as given). Empty text states nothing
    /// and is not kept.
    pub fn add_trusted(&mut self, text: &str, source: TrustedSource) -> Result<(), TrustError> {
        let used = self.trusted_bytes.saturating_add(text.len());
        if used > self.limits.max_trusted_bytes {
            return Err(TrustError::TooLarge {
                limit: self.limits.max_trusted_bytes,
            });
        }
        if text.is_empty() {
            // States nothing; not kept, so that pieces are bounded by the bytes they hold.
            return Ok(());
        }
        self.trusted_bytes = used;
        self.trusted.push(Piece::new(text, source));
        Ok(())
    }

    /// Indexes untrusted content read by the session under its keys (words of at least
    /// [`MIN_PART_CHARS`] characters, phrases, e-mail addresses, URLs, hosts, IBANs, account
    /// numbers, numbers). Content past the bounds marks the index incomplete instead of
    /// growing it; once incomplete, nothing more is indexed.
    pub fn add_untrusted(&mut self, text: &str, origin: Origin) {
        if self.index.is_incomplete() {
            return;
        }
        if text.len() > self.limits.max_untrusted_bytes {
            self.index.mark_incomplete();
            return;
        }
        let norm = normalise(text);
        self.index.add(&norm, text.len(), origin, &self.limits);
    }

    /// Marks the index incomplete (content that could not be indexed, or an index that could
    /// not be rebuilt after a restart): every value trusted text does not state then counts
    /// as untrusted.
    pub fn mark_incomplete(&mut self) {
        self.index.mark_incomplete();
    }

    /// Whether every untrusted content the session read is indexed.
    pub fn is_complete(&self) -> bool {
        !self.index.is_incomplete()
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

    /// The number of distinct keys in the untrusted index (at most [`Limits::max_keys`]).
    pub fn keys(&self) -> usize {
        self.index.key_count()
    }

    /// Where `value` (the text of a JSON string or number) was found.
    ///
    /// `stated` is the first trusted piece whose normalised text contains the normalised value
    /// at token boundaries (then nothing else is reported). Otherwise `untrusted` lists the
    /// value's meaningful parts ([`value_parts`]) found in the untrusted index and not
    /// occurring in trusted text, nor inside a word of the value that trusted text states (the
    /// host of a URL the principal wrote, passed on inside a sentence) — at most [`MAX_TRACE_PARTS`] parts, each with at most
    /// [`ORIGINS_PER_KEY`] origins, the part ellipsized to [`MAX_PART_BYTES`] bytes.
    /// `incomplete` is set when the index is. An empty value is never stated.
    pub fn trace(&self, value: &str) -> Trace {
        let incomplete = self.index.is_incomplete();
        let norm = normalise(value);
        if let Some(piece) = self.trusted.iter().find(|p| p.states(&norm)) {
            return Trace {
                stated: Some(piece.source.clone()),
                untrusted: Vec::new(),
                incomplete,
            };
        }
        // Words of the value that trusted text states (a URL or an address the principal
        // wrote): the parts found inside them (the URL's host, a number in its path) are the
        // principal's too.
        let stated_words: Vec<&str> = parts::words(&norm)
            .into_iter()
            .filter(|w| self.trusted.iter().any(|p| p.states(w)))
            .collect();
        let mut untrusted = Vec::new();
        let mut parts = 0;
        for (kind, part) in value_parts(&norm) {
            if parts >= MAX_TRACE_PARTS {
                break;
            }
            let mut origins = self
                .index
                .origins(self.index.hash(&part))
                .take(ORIGINS_PER_KEY)
                .peekable();
            if origins.peek().is_none()
                || stated_words.iter().any(|w| w.contains(part.as_str()))
                || self.trusted.iter().any(|p| p.states(&part))
            {
                continue;
            }
            parts += 1;
            let shown = ellipsize(&part, MAX_PART_BYTES - '…'.len_utf8());
            untrusted.extend(origins.map(|o| FoundIn {
                part: shown.clone(),
                kind: kind.as_str().to_owned(),
                seq: o.seq,
                labels: o.labels.clone(),
            }));
        }
        Trace {
            stated: None,
            untrusted,
            incomplete,
        }
    }

    /// An estimate of the memory the index and the trusted text hold, in bytes.
    pub fn memory_bytes(&self) -> usize {
        let trusted: usize = self
            .trusted
            .iter()
            .map(|p| std::mem::size_of::<Piece>() + p.raw.capacity() + p.norm.capacity())
            .sum();
        self.index.memory_bytes() + trusted
    }
}

#[cfg(test)]
mod tests;
