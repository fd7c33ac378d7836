//! The state every agent-plane handler of the gateway shares (the operator plane has its own,
//! [`warden_operator::OperatorState`]).

use std::sync::Arc;

use warden_mcp::Upstreams;
use warden_models::ModelProxy;
use warden_session::{SessionStore, StateDb};

use crate::config::Config;
use crate::governor::Governor;
use crate::pending_results::PendingResults;
use crate::session_refusals::SessionRefusals;

/// State shared by every request.
pub struct AppState {
    /// The governor (shared with the MCP endpoint, whose gate it is).
    pub governor: Arc<Governor>,
    /// The charter in force for the model proxy, the approvals, the operator plane and the
    /// console (the governor holds its own, with what it derives); a reload swaps both.
    pub charter: Arc<warden_charter::CharterCell>,
    /// The upstream servers.
    pub upstreams: Upstreams,
    /// The state database.
    pub state_db: StateDb,
    /// Sessions.
    pub sessions: SessionStore,
    /// The configuration.
    pub config: Config,
    /// Decide-API actions awaiting their result.
    pub pending: PendingResults,
    /// The controls in force (read by the governor and the model proxy), and their write
    /// path (the control API and the dead man's switch).
    pub controls: Arc<warden_operator::controls::ControlDesk>,
    /// The model proxy (its router is merged into the agent plane).
    pub models: Arc<ModelProxy>,
    /// When refusals of revoked and expired sessions were last recorded.
    pub session_refusals: SessionRefusals,
    /// The reload lock, and what a live reload compares with the start-up
    /// ([`crate::reload`]).
    pub reload: crate::reload::reloader::Reloader,
}
