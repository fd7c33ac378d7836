//! The tree's recent past: the roots of the last [`WINDOW`] sizes, in bounded memory.
//!
//! A `checkpoint_signed` record is appended after the checkpoint it carries was signed, so
//! when the checker meets it the tree has already grown past the signed size (by the record
//! itself, and by whatever was appended in between). The history keeps the last `WINDOW`
//! leaf hashes and the frontier at every multiple of 256 among them, so the root at any of
//! those sizes costs at most 255 leaf pushes.

use std::collections::VecDeque;

use crate::merkle::{Frontier, Hash, empty_root};

/// How many sizes back a root can be asked for (2 MiB of leaf hashes).
pub(crate) const WINDOW: u64 = 1 << 16;
/// A frontier is kept every this many leaves.
const STRIDE: u64 = 256;

/// The tree and its recent past.
#[derive(Debug, Clone)]
pub(crate) struct History {
    frontier: Frontier,
    /// The last leaf hashes, `leaves[0]` being leaf `first`.
    leaves: VecDeque<Hash>,
    first: u64,
    /// Frontiers at the multiples of [`STRIDE`] from `first` (rounded up) on, oldest first.
    snaps: VecDeque<Frontier>,
}

impl History {
    /// The history of a tree whose right edge is `frontier`; no past before it.
    pub(crate) fn new(frontier: Frontier) -> History {
        History {
            first: frontier.size(),
            frontier,
            leaves: VecDeque::new(),
            snaps: VecDeque::new(),
        }
    }

    /// The tree now.
    pub(crate) fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// Adds the leaf whose leaf hash is `leaf`.
    pub(crate) fn push(&mut self, leaf: Hash) {
        if self.frontier.size().is_multiple_of(STRIDE) {
            self.snaps.push_back(self.frontier.clone());
        }
        self.frontier.push(leaf, |_, _, _| {});
        self.leaves.push_back(leaf);
        if self.leaves.len() as u64 > WINDOW {
            self.leaves.pop_front();
            self.first = self.first.saturating_add(1);
            while self.snaps.front().is_some_and(|s| s.size() < self.first) {
                self.snaps.pop_front();
            }
        }
    }

    /// The root of the tree of the first `size` leaves, if `size` is now or within the last
    /// [`WINDOW`] sizes (or 0); `None` if it is further back or ahead.
    pub(crate) fn root_at(&self, size: u64) -> Option<Hash> {
        if size == self.frontier.size() {
            return Some(self.frontier.root());
        }
        if size == 0 {
            return Some(empty_root());
        }
        if size > self.frontier.size() || size < self.first {
            return None;
        }
        let base = size - size % STRIDE;
        let oldest = self.snaps.front()?.size();
        let index = usize::try_from(base.checked_sub(oldest)? / STRIDE).ok()?;
        let mut tree = self.snaps.get(index)?.clone();
        if tree.size() != base {
            return None;
        }
        let from = usize::try_from(base.checked_sub(self.first)?).ok()?;
        let to = usize::try_from(size - self.first).ok()?;
        if to > self.leaves.len() || from > to {
            return None;
        }
        for leaf in self.leaves.range(from..to) {
            tree.push(*leaf, |_, _, _| {});
        }
        Some(tree.root())
    }
}
