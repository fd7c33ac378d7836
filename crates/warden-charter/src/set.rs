//! The charters one gateway governs: one per agent, looked up by agent id.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::CompiledCharter;

/// The charters in force, one per agent, keyed by the agent id (`identity.id`).
///
/// What it guarantees: it is never empty and holds at most one charter per agent id; a
/// session is governed by the charter of its own agent only ([`get`](Self::get)), and an
/// agent the set does not hold has no charter (every caller refuses it: fail closed).
/// Looking an agent up costs the same whatever the number of charters (a map lookup).
#[derive(Debug, Clone)]
pub struct CharterSet {
    charters: BTreeMap<String, Arc<CompiledCharter>>,
    /// The charter of the first agent by id (kept beside the map: a set is never empty).
    first: Arc<CompiledCharter>,
}

/// Two charters of a set govern the same agent id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent `{agent}` is governed by two charters ({first} and {second})")]
pub struct DuplicateAgent {
    /// The agent id.
    pub agent: String,
    /// The first charter's first file.
    pub first: String,
    /// The second charter's first file.
    pub second: String,
}

/// A set must hold at least one charter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// No charter at all.
    #[error("a charter set holds at least one charter")]
    Empty,
    /// Two charters for one agent.
    #[error(transparent)]
    Duplicate(#[from] DuplicateAgent),
}

fn first_file(c: &CompiledCharter) -> String {
    c.files.first().map_or_else(String::new, |f| f.to_string())
}

impl CharterSet {
    /// The set of `charters`; refused when it is empty or two govern the same agent.
    pub fn new(charters: Vec<Arc<CompiledCharter>>) -> Result<CharterSet, SetError> {
        let mut map: BTreeMap<String, Arc<CompiledCharter>> = BTreeMap::new();
        for charter in charters {
            let id = charter.identity.id.clone();
            if let Some(first) = map.get(&id) {
                return Err(DuplicateAgent {
                    agent: id,
                    first: first_file(first),
                    second: first_file(&charter),
                }
                .into());
            }
            map.insert(id, charter);
        }
        let Some(first) = map.values().next().cloned() else {
            return Err(SetError::Empty);
        };
        Ok(CharterSet {
            charters: map,
            first,
        })
    }

    /// The set of one charter.
    pub fn single(charter: Arc<CompiledCharter>) -> CharterSet {
        CharterSet {
            charters: BTreeMap::from([(charter.identity.id.clone(), charter.clone())]),
            first: charter,
        }
    }

    /// The charter governing `agent`, if the set holds one.
    pub fn get(&self, agent: &str) -> Option<&Arc<CompiledCharter>> {
        self.charters.get(agent)
    }

    /// Every charter, by agent id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CompiledCharter>> {
        self.charters.values()
    }

    /// The agent ids, sorted.
    pub fn agents(&self) -> impl Iterator<Item = &str> {
        self.charters.keys().map(String::as_str)
    }

    /// How many charters (agents) the set holds: at least one.
    pub fn len(&self) -> usize {
        self.charters.len()
    }

    /// Always `false`: a set holds at least one charter.
    pub fn is_empty(&self) -> bool {
        self.charters.is_empty()
    }

    /// The charter of the first agent by id: for what has one answer for the whole gateway
    /// and no session to choose by (the model proxy's shared settings of a one-agent set,
    /// the start-up summary). Never use it to decide for a session.
    pub fn first(&self) -> &Arc<CompiledCharter> {
        &self.first
    }

    /// Whether any charter of the set satisfies `f` (a principal of the organisation, a tool
    /// some agent is provisioned with).
    pub fn any(&self, f: impl Fn(&CompiledCharter) -> bool) -> bool {
        self.charters.values().any(|c| f(c))
    }

    /// This set with `charter` governing its agent (replacing the charter it had, or added).
    #[must_use]
    pub fn with(&self, charter: Arc<CompiledCharter>) -> CharterSet {
        let mut charters = self.charters.clone();
        charters.insert(charter.identity.id.clone(), charter);
        let first = charters
            .values()
            .next()
            .cloned()
            .unwrap_or_else(|| self.first.clone());
        CharterSet { charters, first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charter(agent: &str) -> Arc<CompiledCharter> {
        let yaml = format!(
            "version: 1\nidentity:\n  id: {agent}\n  name: A\n  purpose: test\n  serves: tests\n"
        );
        let compiled = crate::compile(&[crate::Source::new(format!("{agent}.yaml"), yaml)]);
        Arc::new(compiled.expect("compiles").charter)
    }

    #[test]
    fn each_agent_is_governed_by_its_own_charter_only() {
        let set = CharterSet::new(vec![charter("b"), charter("a")]).expect("a set");
        assert_eq!(set.agents().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(set.get("a").map(|c| c.identity.id.as_str()), Some("a"));
        assert!(
            set.get("c").is_none(),
            "an agent outside the set has no charter"
        );
        assert_eq!(set.first().identity.id, "a");
    }

    #[test]
    fn an_empty_set_and_a_duplicate_agent_are_refused() {
        assert_eq!(CharterSet::new(Vec::new()).err(), Some(SetError::Empty));
        let err = CharterSet::new(vec![charter("a"), charter("a")]).expect_err("duplicate");
        assert!(
            err.to_string()
                .contains("agent `a` is governed by two charters"),
            "{err}"
        );
    }

    #[test]
    fn with_replaces_one_agents_charter_and_keeps_the_others() {
        let set = CharterSet::new(vec![charter("a"), charter("b")]).expect("a set");
        let a2 = charter("a");
        let next = set.with(a2.clone());
        assert!(next.get("a").is_some_and(|c| Arc::ptr_eq(c, &a2)));
        assert!(Arc::ptr_eq(
            next.get("b").expect("b"),
            set.get("b").expect("b")
        ));
        assert_eq!(next.len(), 2);
    }
}
