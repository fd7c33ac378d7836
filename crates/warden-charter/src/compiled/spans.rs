//! Where the items the set checks point at are written (crate-private: the set's diagnostics).

use warden_core::SourceLocation;

/// Locations kept for the checks a charter set makes across charters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spans {
    /// The `identity.id` value.
    pub identity: Option<SourceLocation>,
    /// Each `delegation.to` entry, in order.
    pub to: Vec<SourceLocation>,
    /// Each `delegation.from` entry, in order.
    pub from: Vec<SourceLocation>,
    /// Each server's `agent` value, by server id.
    pub server_agents: Vec<(String, SourceLocation)>,
    /// Each server's `id` value, by server id.
    pub server_ids: Vec<(String, SourceLocation)>,
}

impl Spans {
    /// The location of server `id`'s `agent`, else of its id.
    pub(crate) fn server_agent(&self, id: &str) -> Option<&SourceLocation> {
        self.server_agents
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, at)| at)
    }

    /// The location of server `id`'s `id`.
    pub(crate) fn server_id(&self, id: &str) -> Option<&SourceLocation> {
        self.server_ids
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, at)| at)
    }
}
