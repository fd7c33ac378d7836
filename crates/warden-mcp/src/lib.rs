//! warden's MCP front end and its upstream MCP servers.
//!
//! - [`router`] serves `/mcp` to agents: Streamable HTTP (stateless, JSON answers) over
//!   [`AgentMcp`], an rmcp server handler, behind a guard that reads every POST body within a
//!   limit and refuses, in JSON-RPC terms, whatever is not one JSON-RPC 2.0 message.
//! - [`Upstreams`] supervises the charter's upstream MCP servers (stdio children or Streamable
//!   HTTP), reconnecting with backoff, and forwards calls to them with a timeout. A stdio
//!   child gets the environment of [`child_env`], not the gateway's, and runs confined by
//!   the kernel to its roots where [`sandbox`] says so.
//! - [`connect::bridge`] is the client half of `warden connect`: stdio to the gateway's
//!   `/mcp`.
//!
//! What it guarantees: nothing reaches an upstream server without passing the [`ToolGate`]
//! first, and a result is answered only once the gate has recorded it; a tool that could
//! never be allowed is not even listed. The crate decides nothing itself: the gate (the
//! gateway's governor) does, and the crate knows nothing of the gateway.
//!
//! Place in the DAG: depends on `warden-core` (the gate vocabulary), `warden-charter` (the
//! inventory, identity and context) and `warden-session` (the authenticated session);
//! `warden-gateway` implements [`ToolGate`], merges the router behind its authentication,
//! and the `warden` binary runs the bridge.

pub mod child_env;
pub mod connect;
pub mod credentials;
mod gate;
mod guard;
mod handler;
mod http_client;
mod lean;
mod oauth;
mod outcome;
mod router;
pub mod sandbox;
pub mod stderr;
pub mod upstream;

pub use gate::{CallDelegation, CallRefused, DELEGATION_META_KEY, ToolGate};
pub use guard::jsonrpc_error;
pub use handler::{AgentMcp, CHARTER_URI};
pub use lean::lean_calls;
pub use router::{McpEndpoint, router};
pub use upstream::{DownServer, PrepareError, PreparedUpstreams, UpstreamError, Upstreams};
