//! The charter the governor decides under, with what it derives from it, swapped whole by a
//! live reload.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use warden_charter::{CharterSet, CompiledCharter, Transport};

use super::Governor;
use crate::paths::PathArguments;

/// The charter in force for the governor and what the governor derives from it (which path
/// arguments to resolve, which servers run on this machine).
///
/// What it guarantees: an action loads it once ([`Governor::governed`]) and is decided,
/// waited for and rechecked under that one charter, even when a reload installs another
/// meanwhile; the derived parts always belong to the charter beside them.
#[derive(Debug)]
pub struct Governed {
    /// The charter.
    pub charter: Arc<CompiledCharter>,
    pub(super) paths: Arc<PathArguments>,
    local_servers: HashSet<String>,
}

impl Governed {
    /// `charter` with its path arguments (refusing anything inside `protected`, the data
    /// directory, when given) and its local servers.
    pub(super) fn new(charter: Arc<CompiledCharter>, protected: Option<&PathBuf>) -> Governed {
        let paths = PathArguments::new(&charter);
        let paths = match protected {
            Some(dir) => paths.protecting(dir),
            None => paths,
        };
        let local_servers = charter
            .inventory
            .servers
            .iter()
            .filter(|s| matches!(s.transport, Transport::Stdio { .. }))
            .map(|s| s.id.clone())
            .collect();
        Governed {
            charter,
            paths: Arc::new(paths),
            local_servers,
        }
    }

    /// Whether `tool`'s server runs on this machine (a stdio server).
    pub(super) fn is_local(&self, tool: &str) -> bool {
        let server = tool.split_once('.').map_or(tool, |(s, _)| s);
        self.local_servers.contains(server)
    }
}

/// The governor's cell: the [`Governed`] in force for each agent, and the data directory every
/// charter's path arguments are kept out of.
///
/// What it guarantees: one lookup per action, a map lookup whatever the number of agents; an
/// agent the set does not hold has no `Governed` (its actions are refused). Installing one
/// agent's charter leaves the others' `Governed` untouched (the same `Arc`s).
#[derive(Debug)]
pub(super) struct GovernedCell {
    current: RwLock<Arc<HashMap<String, Arc<Governed>>>>,
    protected: Option<PathBuf>,
}

impl GovernedCell {
    pub(super) fn new(set: &CharterSet) -> GovernedCell {
        let cell = GovernedCell {
            current: RwLock::default(),
            protected: None,
        };
        cell.install_set(set);
        cell
    }

    /// Keeps every charter's path arguments, these and those installed later, out of `dir`.
    pub(super) fn protect(&mut self, dir: PathBuf) {
        let charters: Vec<Arc<CompiledCharter>> =
            self.map().values().map(|g| g.charter.clone()).collect();
        self.protected = Some(dir);
        for charter in charters {
            self.install(charter);
        }
    }

    fn map(&self) -> Arc<HashMap<String, Arc<Governed>>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn load(&self, agent: &str) -> Option<Arc<Governed>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(agent)
            .cloned()
    }

    /// Puts `charter` in force for its agent; the other agents keep theirs.
    pub(super) fn install(&self, charter: Arc<CompiledCharter>) {
        let next = Arc::new(Governed::new(charter, self.protected.as_ref()));
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut map = HashMap::clone(&current);
        map.insert(next.charter.identity.id.clone(), next);
        *current = Arc::new(map);
    }

    /// Puts the charters of `set` in force, and only those (an agent the set no longer holds
    /// loses its `Governed`). An agent whose charter is the same `Arc` keeps its `Governed`.
    pub(super) fn install_set(&self, set: &CharterSet) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let map = set
            .iter()
            .map(|charter| {
                let id = charter.identity.id.clone();
                let kept = current
                    .get(&id)
                    .filter(|g| Arc::ptr_eq(&g.charter, charter))
                    .cloned();
                let governed = kept.unwrap_or_else(|| {
                    Arc::new(Governed::new(charter.clone(), self.protected.as_ref()))
                });
                (id, governed)
            })
            .collect();
        *current = Arc::new(map);
    }
}

impl Governor {
    /// The charter in force for `agent` and what the governor derives from it: load it once
    /// per action and use that value throughout. `None`: the agent has no charter in force
    /// (its actions are refused).
    pub fn governed_for(&self, agent: &str) -> Option<Arc<Governed>> {
        self.governed.load(agent)
    }

    /// The charter in force now for `agent`.
    pub fn charter_for(&self, agent: &str) -> Option<Arc<CompiledCharter>> {
        self.governed.load(agent).map(|g| g.charter.clone())
    }

    /// Puts `charter` in force for its agent, for every action whose decision starts after
    /// this returns; actions already under way finish under the charter they loaded.
    pub fn install(&self, charter: Arc<CompiledCharter>) {
        self.governed.install(charter);
    }

    /// Puts the charters of `set` in force (and only those), as [`Governor::install`] does
    /// for one.
    pub fn install_set(&self, set: &CharterSet) {
        self.governed.install_set(set);
    }
}
