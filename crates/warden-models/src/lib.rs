//! The model proxy on the agent plane: `POST /v1/chat/completions` (OpenAI),
//! `POST /v1/messages` (Anthropic) and `GET /v1/models`, with the session token as the API key.
//!
//! For each call: read the request (bounded) → refuse it under the frozen posture → resolve the
//! charter's model alias → refuse it when the session carries a label the alias denies
//! (`deny_labels`) → decide what the request asks the provider itself to do (hosted tools, MCP
//! servers, URLs and files it would fetch, beta features: `provider_actions`) and refuse it
//! unless the charter allows each → check the token budgets → record the request in the ledger → forward it to the alias's first route (the
//! provider's key from the environment, never the agent's token) → fall back to the
//! next route on a connection error, a timeout, a 5xx or a 429 (whose `Retry-After` keeps the
//! route aside) → answer with the provider's response, unknown fields untouched → record the
//! completion (a stream assembled from its events as they pass, without holding them), its
//! usage, and every tool call the model proposed as an intent → count the tokens.
//!
//! What it guarantees:
//! - nothing is forwarded while the gateway posture is frozen, nor for a session carrying a
//!   data label its alias denies; both refusals are recorded (`model_refused`);
//! - record before forward: the request is durable in the ledger before a byte of it leaves for
//!   a provider, and nothing is forwarded when it cannot be recorded;
//! - a complete (non-streamed) answer reaches the agent only after its completion and intents
//!   are recorded; when they cannot be, the answer is withheld (503 `ledger_unavailable`);
//! - a stream's completion is recorded when the provider ends it, and its terminal event
//!   (`[DONE]`, `message_stop`) reaches the agent only once that record is durable; when it
//!   cannot be written, the stream ends with the protocol's error event instead;
//! - the gateway's secrets (provider keys, upstream environment values, the webhook URL) are
//!   replaced by `[REDACTED]` in every answer, stream and record, even when a provider echoes
//!   them;
//! - the agent's session token never reaches a provider;
//! - a provider-side action (a hosted tool, an MCP server, a URL or file the provider would
//!   fetch, a beta feature not known to be inert) reaches the provider only when the charter
//!   allows it (autonomous or preapproved; never waiting for approval), and is recorded as an
//!   action (`via: model`) before the request is;
//! - no fallback once bytes of a stream reached the agent;
//! - nothing of a stream reaches the agent uncaptured: an event over [`MAX_EVENT_BYTES`] (or
//!   bytes that are not server-sent events) ends the stream with an error, recorded, and
//!   memory stays bounded;
//! - errors are answered in the caller's protocol (OpenAI or Anthropic error objects); a route of
//!   the other protocol gets the request translated (`warden_llm::translate`) and its answer —
//!   complete or streamed — translated back; a request that cannot be translated skips that
//!   route.
//!
//! The modules, in the order a call meets them:
//! - [`proxy`]: [`ModelProxy`], what the proxy holds (charter, provider keys, budgets, the
//!   recorder, the clock, the recent turns).
//! - `handlers`: the three endpoints.
//! - `routing`: the alias's routes in order, with fallback and `Retry-After` cool-downs.
//! - `relay`: a stream relayed to the agent as it arrives, its events read on the way.
//! - `capture`: what the ledger records about a call (request, completion, intents, failures).
//! - [`mod@system_message`]: the charter's identity and context, as a system message.
//! - [`turns`]: the recent model turns per session, shown to approvers.
//!
//! In the workspace DAG this crate sits on `warden-core` (the [`warden_core::Recorder`] it
//! records through, the [`warden_core::Clock`]), `warden-charter` (model aliases and routes),
//! `warden-llm` (the wire formats), `warden-pdp` (the decision on provider-side actions) and `warden-session` (sessions, token budgets). The gateway
//! merges [`router`] inside its agent authentication (which puts the
//! [`warden_session::Session`] in the request's extensions) and its body limit.

mod answer;
mod capture;
mod cooldowns;
mod errors;
mod handlers;
mod provider;
mod provider_actions;
pub mod proxy;
mod relay;
mod routing;
pub mod system_message;
pub mod turns;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use proxy::{ModelProxy, ProxyBuildError};
pub use relay::MAX_EVENT_BYTES;
pub use system_message::system_message;
pub use turns::{ModelTurns, TURNS_PER_SESSION};

/// The model endpoints: `POST /v1/chat/completions`, `POST /v1/messages`, `GET /v1/models`.
///
/// Every handler expects an `Extension<Arc<warden_session::Session>>`: mount the router behind
/// the layer that authenticates the agent and inserts it (a request without one is answered
/// 500), and behind a body limit. Generic over the outer router's state, so it merges into any
/// router.
pub fn router<S>(proxy: Arc<ModelProxy>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/v1/messages", post(handlers::messages))
        .route("/v1/models", get(handlers::models))
        .with_state(proxy)
}
