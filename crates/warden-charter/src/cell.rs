//! The charters in force, shared by everything that decides, and swapped on a reload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::{CharterSet, CompiledCharter};

/// The charters in force: one [`CharterSet`] read by every component that decides (the
/// governor, the model proxy, the approval workflow, the operator plane and the console),
/// replaced by a live reload — one agent's charter or the whole set.
///
/// What it guarantees: [`load`](Self::load) returns one complete set and
/// [`agent`](Self::agent) one complete compiled charter, never a mix of two, and a caller
/// that loaded one keeps deciding under it until it loads again — so a decision that loads
/// once at its start finishes under the charter it started with, whatever is swapped
/// meanwhile. [`swap`](Self::swap) is atomic: every load after it sees the new set. The
/// generation counts the swaps (0 for the set the gateway started with). A poisoned lock
/// cannot hold a torn value (the value is one `Arc`), so it is read through.
#[derive(Debug)]
pub struct CharterCell {
    current: RwLock<Arc<CharterSet>>,
    generation: AtomicU64,
}

impl CharterCell {
    /// A cell holding `set`, at generation 0.
    pub fn new(set: CharterSet) -> CharterCell {
        CharterCell {
            current: RwLock::new(Arc::new(set)),
            generation: AtomicU64::new(0),
        }
    }

    /// The charters in force now. Load once per decision and decide with that value.
    pub fn load(&self) -> Arc<CharterSet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The charter governing `agent` now, if the set holds one (an agent it does not hold is
    /// refused by every caller).
    pub fn agent(&self, agent: &str) -> Option<Arc<CompiledCharter>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(agent)
            .cloned()
    }

    /// Puts `set` in force and returns the one it replaced; the generation advances.
    pub fn swap(&self, set: CharterSet) -> Arc<CharterSet> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let previous = std::mem::replace(&mut *current, Arc::new(set));
        self.generation.fetch_add(1, Ordering::AcqRel);
        previous
    }

    /// Puts `charter` in force for its agent (the other agents keep theirs) and returns the
    /// set it replaced; the generation advances.
    pub fn swap_agent(&self, charter: Arc<CompiledCharter>) -> Arc<CharterSet> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let next = Arc::new(current.with(charter));
        let previous = std::mem::replace(&mut *current, next);
        self.generation.fetch_add(1, Ordering::AcqRel);
        previous
    }

    /// How many times a charter was swapped in since the cell was made.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

impl From<CompiledCharter> for CharterCell {
    fn from(charter: CompiledCharter) -> CharterCell {
        CharterCell::new(CharterSet::single(Arc::new(charter)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charter(agent: &str) -> Arc<CompiledCharter> {
        let yaml = format!(
            "version: 1\nidentity:\n  id: {agent}\n  name: A\n  purpose: test\n  serves: tests\n"
        );
        let compiled = crate::compile(&[crate::Source::new("charter.yaml", yaml)]);
        Arc::new(compiled.expect("compiles").charter)
    }

    #[test]
    fn a_loaded_charter_stays_the_callers_across_a_swap() {
        let cell = CharterCell::new(CharterSet::single(charter("a")));
        let before = cell.agent("a").expect("a");
        assert_eq!(cell.generation(), 0);
        let replaced = cell.swap(CharterSet::single(charter("b")));
        assert!(replaced.get("a").is_some());
        assert_eq!(before.identity.id, "a");
        assert!(cell.agent("a").is_none(), "the new set does not hold `a`");
        assert!(cell.agent("b").is_some());
        assert_eq!(cell.generation(), 1);
    }

    #[test]
    fn swapping_one_agents_charter_keeps_the_others() {
        let b = charter("b");
        let set = CharterSet::new(vec![charter("a"), b.clone()]).expect("set");
        let cell = CharterCell::new(set);
        let a2 = charter("a");
        let previous = cell.swap_agent(a2.clone());
        assert!(!Arc::ptr_eq(previous.get("a").expect("a"), &a2));
        assert!(cell.agent("a").is_some_and(|c| Arc::ptr_eq(&c, &a2)));
        assert!(cell.agent("b").is_some_and(|c| Arc::ptr_eq(&c, &b)));
        assert_eq!(cell.generation(), 1);
    }
}
