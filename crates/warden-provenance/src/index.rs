//! The untrusted index: the keys of every untrusted content a session read, each with the
//! content (origins) it was found in.
//!
//! Keys are 64-bit SipHash-1-3 hashes (std `RandomState`, a random 128-bit key per index, so
//! content cannot aim collisions) of the normalised key text. A collision can only make a
//! part look as if it occurred in untrusted content — never make a value look trusted, since
//! trusted text is compared as text, not by hash: collisions fail closed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;

use crate::parts::content_keys;
use crate::{Limits, Origin};

/// Most origins kept per key.
pub const ORIGINS_PER_KEY: usize = 4;

/// Most origins (indexed contents) per session; past it the index is incomplete.
pub const MAX_ORIGINS: usize = 1 << 16;

/// Most distinct untrusted labels per session; past it the index is incomplete.
const MAX_LABELS: usize = 64;

const EMPTY_SLOT: u32 = u32::MAX;

/// The keys are hashes already: the map uses them as they are.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Slots = [u32; ORIGINS_PER_KEY];

/// Bytes one key holds in the map (key, slots, control byte), for [`Index::memory_bytes`].
const BYTES_PER_KEY: usize = 8 + 4 * ORIGINS_PER_KEY + 1;

/// An origin and the bit set of its labels.
#[derive(Debug)]
struct Source {
    origin: Origin,
    mask: u64,
}

/// A bounded index of untrusted content.
#[derive(Debug, Default)]
pub(crate) struct Index {
    keys: HashMap<u64, Slots, BuildHasherDefault<KeyHasher>>,
    sources: Vec<Source>,
    labels: Vec<Arc<str>>,
    hasher: RandomState,
    bytes: usize,
    incomplete: bool,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher")
    }
}

impl Index {
    pub(crate) fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn is_incomplete(&self) -> bool {
        self.incomplete
    }

    pub(crate) fn mark_incomplete(&mut self) {
        self.incomplete = true;
    }

    pub(crate) fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The label bit set of `labels`, interning new ones; `None` past [`MAX_LABELS`].
    fn mask(&mut self, labels: &[Arc<str>]) -> Option<u64> {
        let mut mask = 0u64;
        for l in labels {
            let at = match self.labels.iter().position(|k| k == l) {
                Some(at) => at,
                None if self.labels.len() < MAX_LABELS => {
                    self.labels.push(l.clone());
                    self.labels.len() - 1
                }
                None => return None,
            };
            mask |= 1u64 << at;
        }
        Some(mask)
    }

    /// Indexes normalised content `norm` (of `raw_len` bytes before normalisation) read from
    /// `origin`. Past a bound it marks the index incomplete and stops growing.
    pub(crate) fn add(&mut self, norm: &str, raw_len: usize, origin: Origin, limits: &Limits) {
        if self.incomplete {
            return;
        }
        let bytes = self.bytes.saturating_add(raw_len.max(norm.len()));
        if bytes > limits.max_untrusted_bytes {
            self.incomplete = true;
            return;
        }
        let mut hashes: Vec<u64> = Vec::new();
        content_keys(norm, |key| hashes.push(self.hasher.hash_one(key)));
        if hashes.is_empty() {
            // Nothing to index (no part of MIN_PART_CHARS): no source is kept for it.
            return;
        }
        hashes.sort_unstable();
        hashes.dedup();
        if self.sources.len() >= MAX_ORIGINS {
            self.incomplete = true;
            return;
        }
        let Some(mask) = self.mask(&origin.labels) else {
            self.incomplete = true;
            return;
        };
        self.bytes = bytes;
        // The same content added again right after (a rebuild) keeps one source.
        let id = match self.sources.last().filter(|s| s.origin == origin) {
            Some(_) => self.sources.len() - 1,
            None => {
                self.sources.push(Source { origin, mask });
                self.sources.len() - 1
            }
        };
        let Ok(id) = u32::try_from(id) else {
            self.incomplete = true;
            return;
        };
        let mut lost_label = false;
        let mut count = self.keys.len();
        for h in hashes {
            match self.keys.entry(h) {
                Entry::Occupied(slots) => {
                    lost_label |= !add_slot(slots.into_mut(), id, mask, &self.sources);
                }
                Entry::Vacant(_) if count >= limits.max_keys => {
                    self.incomplete = true;
                    return;
                }
                Entry::Vacant(free) => {
                    let mut slots = [EMPTY_SLOT; ORIGINS_PER_KEY];
                    if let Some(first) = slots.first_mut() {
                        *first = id;
                    }
                    free.insert(slots);
                    count += 1;
                }
            }
        }
        if lost_label {
            self.incomplete = true;
        }
    }

    /// The origins the key with hash `h` was found in.
    pub(crate) fn origins(&self, h: u64) -> impl Iterator<Item = &Origin> {
        self.keys
            .get(&h)
            .into_iter()
            .flatten()
            .filter(|id| **id != EMPTY_SLOT)
            .filter_map(|id| self.sources.get(usize::try_from(*id).ok()?))
            .map(|s| &s.origin)
    }

    /// An estimate of the bytes the index holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        let sources: usize = self
            .sources
            .iter()
            .map(|s| std::mem::size_of::<Source>() + s.origin.labels.len() * 16)
            .sum();
        let labels: usize = self.labels.iter().map(|l| l.len() + 32).sum();
        self.keys.capacity() * BYTES_PER_KEY
            + sources
            + (self.sources.capacity() - self.sources.len()) * std::mem::size_of::<Source>()
            + labels
    }
}

/// Adds origin `id` to a key's slots. When they are full, the new origin replaces one whose
/// labels the others and the new one still cover; returns false when none can (a label would
/// be lost: the caller marks the index incomplete).
fn add_slot(slots: &mut Slots, id: u32, mask: u64, sources: &[Source]) -> bool {
    if slots.contains(&id) {
        return true;
    }
    if let Some(free) = slots.iter_mut().find(|s| **s == EMPTY_SLOT) {
        *free = id;
        return true;
    }
    let mask_of = |s: u32| {
        usize::try_from(s)
            .ok()
            .and_then(|i| sources.get(i))
            .map_or(0, |s| s.mask)
    };
    let all = slots.iter().fold(mask, |m, s| m | mask_of(*s));
    if slots.iter().fold(0, |m, s| m | mask_of(*s)) == all {
        return true; // the new origin brings no new label: the first four stand for it
    }
    for k in 0..ORIGINS_PER_KEY {
        let others = slots
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .fold(mask, |m, (_, s)| m | mask_of(*s));
        if others == all {
            if let Some(slot) = slots.get_mut(k) {
                *slot = id;
            }
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(seq: u64, label: &str) -> Origin {
        Origin {
            seq,
            labels: vec![Arc::from(label)],
        }
    }

    #[test]
    fn finds_keys_with_their_origins() {
        let mut ix = Index::default();
        let limits = Limits::default();
        ix.add(
            "pay mallory@evil.example today",
            30,
            origin(7, "mail"),
            &limits,
        );
        let h = ix.hash("mallory@evil.example");
        let found: Vec<u64> = ix.origins(h).map(|o| o.seq).collect();
        assert_eq!(found, vec![7]);
        assert_eq!(ix.origins(ix.hash("absent")).count(), 0);
        assert!(!ix.is_incomplete());
    }

    #[test]
    fn keeps_four_origins_per_key_but_every_label() {
        let mut ix = Index::default();
        let limits = Limits::default();
        for seq in 0..6 {
            ix.add("mallory", 7, origin(seq, "web"), &limits);
        }
        assert_eq!(ix.origins(ix.hash("mallory")).count(), ORIGINS_PER_KEY);
        ix.add("mallory", 7, origin(9, "mail"), &limits);
        let labels: Vec<&str> = ix
            .origins(ix.hash("mallory"))
            .flat_map(|o| o.labels.iter().map(|l| &**l))
            .collect();
        assert!(labels.contains(&"mail") && labels.contains(&"web"));
        assert!(!ix.is_incomplete());
    }

    #[test]
    fn bounds_mark_it_incomplete_and_stop_growth() {
        let limits = Limits {
            max_untrusted_bytes: 64,
            max_keys: 3,
            max_trusted_bytes: 0,
        };
        let mut ix = Index::default();
        ix.add(
            "alpha bravo charlie delta echo",
            30,
            origin(1, "m"),
            &limits,
        );
        assert!(ix.is_incomplete());
        assert!(ix.key_count() <= 3);
        let mut ix = Index::default();
        ix.add("alpha", 65, origin(1, "m"), &limits);
        assert!(ix.is_incomplete());
        assert_eq!(ix.key_count(), 0);
    }
}
