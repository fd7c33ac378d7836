//! The gateway: warden's composition root.
//!
//! It compiles the configuration and the charter before binding anything ([`startup`], one
//! function per phase), opens the ledger and `state.db`, connects the upstream MCP servers,
//! and serves two listeners assembled from the surfaces: the agent plane (the MCP front end of
//! `warden-mcp`, the decide API of [`decide_api`], the model proxy of `warden-models`) and the
//! operator plane (`warden-operator`). Every action runs through the [`governor::Governor`]:
//! authenticate → decide → record the attempt and the decision durably → (wait for approval)
//! → forward → record the result and the labels it carries → answer. Errors anywhere on that
//! path deny. [`shutdown`] stops it in phases.
//!
//! Only this crate sees every other one: the surfaces meet the governor through traits
//! (`warden_mcp::ToolGate`, `warden_core::Recorder`) and never import the gateway. The
//! `warden` binary sits above it.

pub mod app_state;
pub mod capture;
pub mod config;
mod data_dir;
mod dead_mans_switch;
pub mod decide_api;
pub mod delegation;
pub mod fleet;
pub mod governor;
mod host_check;
mod listener;
pub mod mcp_gate;
pub mod outstanding;
pub mod paths;
pub mod pending_results;
mod readiness;
pub mod reload;
mod routes;
pub mod session_refusals;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;

pub use app_state::AppState;
pub use config::{Config, ConfigError, ConfigSource, RawConfig};
pub use startup::{APPROVAL_KEY_FILE, Gateway, OPERATOR_TOKEN_FILE, RunningGateway, StartError};
