//! The model providers' wire formats, as the model proxy needs them: between a caller and a
//! provider of the same protocol it forwards requests and responses untouched (unknown fields
//! included) and only *reads* them, to route, to count
//! tokens and to capture what the model was asked and what it proposed.
//!
//! - [`Protocol`]: OpenAI chat completions or Anthropic messages, and errors in each shape.
//! - [`request`]: what a request asks for (model, stream, prompt text), and the few edits the
//!   proxy makes (the provider's model name, the charter's system message, usage in streams).
//! - [`provider_actions`]: what a request asks the provider itself to do (hosted tools, MCP
//!   servers, URLs and files it would fetch, beta features), each an action to decide.
//! - [`response`]: text, usage and proposed tool calls of a complete response.
//! - [`stream`]: SSE events, and an assembler that rebuilds the same from a stream's events.
//! - [`translate`]: requests, responses, errors and streams from one protocol to the other.
//!
//! Pure: no IO, no async; everything here is tested without a network.

pub mod protocol;
pub mod provider_actions;
pub mod request;
pub mod response;
pub mod stream;
pub mod translate;

pub use protocol::Protocol;
pub use provider_actions::{ProviderAction, provider_actions};
pub use request::{Inspected, inspect, prepare};
pub use response::{Completion, Intent, Usage, estimate_tokens, read_response};
pub use stream::{Assembler, SseEvent};
pub use translate::StreamTranslator;
