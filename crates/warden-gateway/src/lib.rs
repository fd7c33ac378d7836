//! The gateway: warden's composition root.
//!
//! It compiles the configuration and the charter before binding anything, opens the ledger
//! and the state store, connects the upstream MCP servers, and serves two listeners: the agent
//! plane (MCP over Streamable HTTP at `/mcp`, the decide API) and the operator plane (sessions,
//! health). Every action runs through the [`governor::Governor`]: authenticate → decide →
//! record the attempt and the decision durably → (wait for approval) → forward → record the
//! result and the labels it carries → answer. Errors anywhere on that path deny.
//!
//! Sits at the top of the library DAG: core, charter, pdp and audit below it; the `warden`
//! binary above it.

pub mod app_state;
pub mod config;
pub mod control;
pub mod decide_api;
pub mod governor;
pub mod mcp_gate;
pub mod paths;
mod routes;
pub mod shutdown;
pub mod startup;

pub use app_state::AppState;
pub use config::{Config, ConfigError, ConfigSource, RawConfig};
pub use startup::{APPROVAL_KEY_FILE, Gateway, OPERATOR_TOKEN_FILE, RunningGateway, StartError};
