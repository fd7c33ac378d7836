//! What the MCP endpoint asks of policy: the [`ToolGate`].

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use warden_charter::{CompiledCharter, Principal};
use warden_core::TraceContext;
use warden_core::gate::{ActionOutcome, Allowed, ProgressFn, Refused};
use warden_core::record::RecordError;
use warden_session::Session;

/// The policy side of the MCP endpoint. Every call and read the endpoint forwards is
/// authorized here first, and its outcome reported back; the endpoint decides nothing itself.
/// The gateway's governor implements it.
///
/// The futures are `Send` so the endpoint can await them inside rmcp's handler, and the
/// endpoint is generic over the gate, so the hot path boxes nothing.
pub trait ToolGate: Send + Sync + 'static {
    /// A child session opened for one call to an agent's tool.
    type Delegation: CallDelegation;

    /// The charter in force for `agent` (a session's agent): its identity and context
    /// (served as `warden://charter`) and its inventory (which tools are listed). `None`: the
    /// agent has no charter in force, and its session is shown nothing.
    fn charter(&self, agent: &str) -> Option<std::sync::Arc<CompiledCharter>>;

    /// Whether `tool` could ever be allowed for `principal` under `charter`. A tool that
    /// could not is left out of `tools/list`, and a server whose resource reads could not is
    /// left out of `resources/list`.
    fn could_ever_allow(
        &self,
        charter: &CompiledCharter,
        tool: &str,
        principal: Option<&Principal>,
    ) -> bool;

    /// Decides an action that arrived over MCP and records it; where it needs approval, waits
    /// for a human until the decision, the deadline, or `cancel` (the client went away, so a
    /// grant is never used for a call nobody will receive). `progress` is called every
    /// progress interval while it waits. `tool` is the charter's name (`server.tool`);
    /// `called_as`, when given, the other name the agent sent (`server__tool`), recorded
    /// with the attempt, and `trace`, when the agent sent a valid W3C trace context, too.
    #[expect(
        clippy::too_many_arguments,
        reason = "each is one fact about the call; a struct would only rename them"
    )]
    fn authorize(
        &self,
        session: &Arc<Session>,
        tool: &str,
        called_as: Option<&str>,
        trace: Option<&TraceContext>,
        args: Value,
        cancel: CancellationToken,
        progress: &ProgressFn,
    ) -> impl Future<Output = Result<Allowed, Refused>> + Send;

    /// Records how a forwarded action ended and the labels its result carries. On an error
    /// nothing was recorded, and the endpoint withholds the result.
    fn record_result(
        &self,
        session: &Arc<Session>,
        tool: &str,
        allowed: &Allowed,
        outcome: &ActionOutcome,
    ) -> impl Future<Output = Result<(), RecordError>> + Send;

    /// Opens the child session a call to a tool of `server` needs when that server is an
    /// agent of the set (its entry in the calling session's charter names an `agent`): the
    /// delegation to that agent, asked for over MCP. `Ok(None)`: `server` is a tool server,
    /// and the call is forwarded as it is. `Err`: the delegation was refused (and recorded
    /// as such); the call must not be forwarded. Called only for a call the gate allowed.
    fn delegate_for_call(
        &self,
        session: &Arc<Session>,
        server: &str,
    ) -> impl Future<Output = Result<Option<Self::Delegation>, CallRefused>> + Send;

    /// Records an attempt refused before any decision, because no upstream server offers
    /// `tool` (`why` says so; `called_as` as in [`authorize`](Self::authorize)), and returns
    /// the refusal to answer with.
    fn record_unroutable(
        &self,
        session: &Arc<Session>,
        tool: &str,
        called_as: Option<&str>,
        args: &Value,
        why: &str,
    ) -> impl Future<Output = Refused> + Send;
}

/// The key under which the forwarded `tools/call` carries the callee's delegation context in
/// its `_meta`. Keys under `io.warden/` come from warden only: the agent's own `_meta` is never
/// forwarded.
pub const DELEGATION_META_KEY: &str = "io.warden/delegation";

/// A child session opened for one call to a tool of a server that is an agent. The endpoint
/// forwards [`meta`](Self::meta) with the call under [`DELEGATION_META_KEY`] and calls
/// [`end`](Self::end) once the call's result is recorded or the call failed. A delegation
/// dropped without `end` (the client went away, the call was cancelled) must end the child
/// all the same: implementations revoke it on drop.
pub trait CallDelegation: Send + Sync + 'static {
    /// The callee's context: `{"token", "session", "agent", "chain"}`. The token is the
    /// callee's own credential: it is sent to the callee only, never recorded nor logged.
    fn meta(&self) -> Value;

    /// Ends the child session (revoked, and the revocation recorded).
    fn end(self) -> impl Future<Output = ()> + Send;
}

/// A delegation the gate refused: the call is not forwarded, and the caller is told why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRefused {
    /// The stable refusal code (as recorded in `delegation_refused`).
    pub code: &'static str,
    /// The sentence for the caller.
    pub message: String,
}
