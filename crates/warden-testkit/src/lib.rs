//! Test and benchmark peers for warden: a fast echo MCP server over Streamable HTTP
//! (`warden-echo-server`) and an MCP `tools/call` load generator (`warden-load`). Used by the
//! benchmark scripts under `bench/`; never linked into warden itself.

pub mod echo;
