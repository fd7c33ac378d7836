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
