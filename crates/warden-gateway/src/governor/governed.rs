//! The charter the governor decides under, with what it derives from it, swapped whole by a
//! live reload.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use warden_charter::{CompiledCharter, Transport};

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

/// The governor's cell: the [`Governed`] in force, and the data directory every charter's
/// path arguments are kept out of.
#[derive(Debug)]
pub(super) struct GovernedCell {
    current: RwLock<Arc<Governed>>,
    protected: Option<PathBuf>,
}

impl GovernedCell {
    pub(super) fn new(charter: Arc<CompiledCharter>) -> GovernedCell {
        GovernedCell {
            current: RwLock::new(Arc::new(Governed::new(charter, None))),
            protected: None,
        }
    }

    /// Keeps every charter's path arguments, this one's and those installed later, out of
    /// `dir`.
    pub(super) fn protect(&mut self, dir: PathBuf) {
        let charter = self.load().charter.clone();
        self.protected = Some(dir);
        self.install(charter);
    }

    pub(super) fn load(&self) -> Arc<Governed> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn install(&self, charter: Arc<CompiledCharter>) {
        let next = Arc::new(Governed::new(charter, self.protected.as_ref()));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
    }
}

impl Governor {
    /// The charter in force and what the governor derives from it: load it once per action
    /// and use that value throughout.
    pub fn governed(&self) -> Arc<Governed> {
        self.governed.load()
    }

    /// The charter in force now.
    pub fn charter(&self) -> Arc<CompiledCharter> {
        self.governed.load().charter.clone()
    }

    /// Puts `charter` in force for every action whose decision starts after this returns;
    /// actions already under way finish under the charter they loaded.
    pub fn install(&self, charter: Arc<CompiledCharter>) {
        self.governed.install(charter);
    }
}
