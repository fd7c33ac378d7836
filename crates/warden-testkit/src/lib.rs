//! Test and benchmark peers for warden: a fast echo MCP server over Streamable HTTP
//! (`warden-echo-server`), a scripted mock model provider speaking the OpenAI and Anthropic wire
//! shapes (`warden-mock-llm`, [`mock_llm`]) and an MCP `tools/call` load generator
//! (`warden-load`), and the in-process gateway [`harness`] (and [`fleet`]) the gateway's tests
//! and benchmarks share, both spoken to through one client of its two [`planes`]. Used by tests and the benchmark scripts under `bench/`; never linked into
//! warden itself.

pub mod echo;
pub mod fleet;
pub mod harness;
pub mod mock_llm;
pub mod planes;
pub mod postgres;
