//! The charter in force, shared by everything that decides, and swapped whole on a reload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::CompiledCharter;

/// The charter in force: one value read by every component that decides (the governor, the
/// model proxy, the approval workflow, the operator plane and the console), replaced whole by
/// a live reload.
///
/// What it guarantees: [`load`](Self::load) returns one complete compiled charter, never a
/// mix of two, and a caller that loaded it keeps deciding under that charter until it loads
/// again — so a decision that loads once at its start finishes under the charter it started
/// with, whatever is swapped meanwhile. [`swap`](Self::swap) is atomic: every load after it
/// returns the new charter. The generation counts the swaps (0 for the charter the gateway
/// started with). A poisoned lock cannot hold a torn value (the value is one `Arc`), so it is
/// read through.
#[derive(Debug)]
pub struct CharterCell {
    current: RwLock<Arc<CompiledCharter>>,
    generation: AtomicU64,
}

impl CharterCell {
    /// A cell holding `charter`, at generation 0.
    pub fn new(charter: Arc<CompiledCharter>) -> CharterCell {
        CharterCell {
            current: RwLock::new(charter),
            generation: AtomicU64::new(0),
        }
    }

    /// The charter in force now. Load it once per decision and decide with that value.
    pub fn load(&self) -> Arc<CompiledCharter> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `charter` in force and returns the one it replaced; the generation advances.
    pub fn swap(&self, charter: Arc<CompiledCharter>) -> Arc<CompiledCharter> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let previous = std::mem::replace(&mut *current, charter);
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
        CharterCell::new(Arc::new(charter))
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
        let cell = CharterCell::new(charter("a"));
        let before = cell.load();
        assert_eq!(cell.generation(), 0);
        let replaced = cell.swap(charter("b"));
        assert_eq!(replaced.identity.id, "a");
        assert_eq!(before.identity.id, "a");
        assert_eq!(cell.load().identity.id, "b");
        assert_eq!(cell.generation(), 1);
    }
}
