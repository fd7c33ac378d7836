//! What the ledger records about a model call: the request (`model_requested`), a refusal for
//! a spent budget (`budget_exceeded`) or for the posture or the session's labels
//! (`model_refused`), the completion with its usage (`model_completed`), each
//! tool call the model proposed (`model_intent`), or the failure of every route
//! (`model_failed`). A successful completion is also kept as the session's latest model turn.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use warden_core::record::RecordError;
use warden_core::text::ellipsize;
use warden_core::{NewRecord, RecordKind, TraceContext};
use warden_llm::{Completion, Protocol, Usage, estimate_tokens};
use warden_session::{BudgetExceeded, CountedTokens, Session};

use crate::proxy::ModelProxy;

/// Longest excerpt of a prompt or a completion kept in a model turn for approvers, in bytes.
const TURN_EXCERPT_BYTES: usize = 1000;

/// One model call, from the agent's request to its answer: what its records say about it.
pub(crate) struct ModelCall {
    /// The call's id (UUIDv7), shared by all its records.
    pub(crate) id: String,
    /// The charter in force when the call arrived: the whole call is decided, routed and
    /// captured under it, whatever a reload puts in force meanwhile.
    pub(crate) charter: Arc<warden_charter::CompiledCharter>,
    /// The charter as a system message, when that charter asks for one.
    pub(crate) system_message: Option<String>,
    /// The session that made the call.
    pub(crate) session: Arc<Session>,
    /// The agent's protocol (a route's may differ).
    pub(crate) protocol: Protocol,
    /// The charter's model alias the agent asked for.
    pub(crate) alias: String,
    /// Whether the agent asked for a stream.
    pub(crate) stream: bool,
    /// The prompt's text, to estimate its tokens when the provider reports none.
    pub(crate) prompt_text: String,
    /// The last user message, for the session's model turns.
    pub(crate) last_user: String,
    /// When the proxy received the call.
    pub(crate) started: Instant,
    /// One entry per route tried or skipped, in order: its index and what happened.
    pub(crate) attempts: Vec<Value>,
    /// The tokens the call holds against the token budgets while it is in flight; released
    /// when the call is dropped, after its usage is counted.
    pub(crate) reservation: Option<warden_session::Reservation>,
    /// The W3C trace context the agent sent in its headers, when valid: recorded with the
    /// request (and with the provider-side actions it asks for) as `trace`.
    pub(crate) trace: Option<Box<TraceContext>>,
}

impl ModelCall {
    /// The call's usage: the provider's, or an estimate for a successful call without one.
    pub(crate) fn usage(&self, completion: &Completion, ok: bool) -> Usage {
        match completion.usage {
            Some(u) => u,
            None if ok => Usage {
                input_tokens: estimate_tokens(&self.prompt_text),
                output_tokens: estimate_tokens(&completion.text).saturating_add(
                    completion
                        .intents
                        .iter()
                        .map(|i| {
                            estimate_tokens(&i.arguments.to_string())
                                .saturating_add(estimate_tokens(&i.tool))
                        })
                        .sum::<u64>(),
                ),
                estimated: true,
            },
            None => Usage::default(),
        }
    }

    /// The `model_requested` record: the request as the agent sent it.
    pub(crate) fn requested(&self, system_message: bool, request: &Value) -> NewRecord {
        let mut payload = json!({
            "call": self.id,
            "protocol": self.protocol.as_str(),
            "alias": self.alias,
            "stream": self.stream,
            "system_message": system_message,
            "request": request,
        });
        if let Some(trace) = &self.trace {
            trace.record_in(&mut payload);
        }
        NewRecord::new(Some(&self.session.id), RecordKind::ModelRequested, payload)
    }

    /// The `budget_exceeded` record of a call refused because `exceeded` is spent.
    pub(crate) fn budget_exceeded(&self, exceeded: &BudgetExceeded) -> NewRecord {
        NewRecord::new(
            Some(&self.session.id),
            RecordKind::BudgetExceeded,
            json!({
                "call": self.id,
                "alias": self.alias,
                "per": exceeded.per.as_str(),
                "limit": exceeded.limit,
                "used": exceeded.used,
                "reserved": exceeded.reserved,
            }),
        )
    }

    /// The `model_refused` record of a call refused before it was forwarded: `reason` is the
    /// code the agent gets (`posture_frozen`, `label_denied`); `labels` the session's labels
    /// that kept it from the alias, if any; `control` the control that refused it, if one did.
    pub(crate) fn refused(
        &self,
        reason: &str,
        labels: &[&Arc<str>],
        control: Option<&str>,
    ) -> NewRecord {
        let mut payload = json!({
            "call": self.id,
            "protocol": self.protocol.as_str(),
            "alias": self.alias,
            "reason": reason,
            "labels": labels.iter().map(|l| &***l).collect::<Vec<&str>>(),
        });
        if let (Some(id), Some(obj)) = (control, payload.as_object_mut()) {
            obj.insert("control".to_owned(), json!(id));
        }
        NewRecord::new(Some(&self.session.id), RecordKind::ModelRefused, payload)
    }

    /// Milliseconds since the call was received.
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A call a provider answered — successfully, or with an error passed through to the agent.
pub(crate) struct AnsweredCall {
    /// The call.
    pub(crate) call: ModelCall,
    /// The route that answered (provider, model, base URL).
    pub(crate) route: Value,
    /// The provider's HTTP status.
    pub(crate) status: u16,
    /// The provider's response body, when it was complete JSON (not for a stream).
    pub(crate) body: Option<Value>,
    /// What the model said: text, proposed tool calls, usage.
    pub(crate) completion: Completion,
    /// The tokens counted against the budgets (the provider's, or an estimate).
    pub(crate) usage: Usage,
    /// The budget counters already raised in memory, to persist.
    pub(crate) counted: CountedTokens,
}

/// What is recorded about a call once its answer is on its way to the agent.
pub(crate) enum CallOutcome {
    /// A provider answered.
    Answered(Box<AnsweredCall>),
    /// Every route failed or was skipped.
    Failed(Box<ModelCall>),
}

impl CallOutcome {
    /// Records the outcome: a failure, or the completion with its intents and usage (then
    /// persists the counted tokens and keeps the turn for approvers).
    pub(crate) async fn record(self, proxy: &ModelProxy) -> Result<(), RecordError> {
        match self {
            CallOutcome::Failed(call) => {
                let record = NewRecord::new(
                    Some(&call.session.id),
                    RecordKind::ModelFailed,
                    json!({ "call": call.id, "alias": call.alias, "attempts": call.attempts, "duration_ms": call.elapsed_ms() }),
                );
                let recorded = proxy.recorder.append(record).await;
                if let Err(e) = &recorded {
                    tracing::error!(error = %e, "The ledger cannot record a failed model call.");
                }
                recorded
            }
            CallOutcome::Answered(answered) => {
                let AnsweredCall {
                    call,
                    route,
                    status,
                    body,
                    completion,
                    usage,
                    counted,
                } = *answered;
                let recorded =
                    record_completion(proxy, call, route, status, body, completion, usage).await;
                proxy.budgets.persist(counted).await;
                recorded
            }
        }
    }
}

/// Records the completion and its intents in one batch; keeps a successful, recorded one as
/// the session's latest model turn.
async fn record_completion(
    proxy: &ModelProxy,
    call: ModelCall,
    route: Value,
    status: u16,
    body: Option<Value>,
    completion: Completion,
    usage: Usage,
) -> Result<(), RecordError> {
    let ok = (200..300).contains(&status);
    let session = Some(call.session.id.as_str());
    let mut batch = vec![NewRecord::new(
        session,
        RecordKind::ModelCompleted,
        json!({
            "call": call.id,
            "alias": call.alias,
            "route": route,
            "status": status,
            "stream": call.stream,
            "completion": { "text": completion.text, "finish_reason": completion.finish_reason },
            "response": body,
            "usage": usage,
            "intents": completion.intents.len(),
            "attempts": call.attempts,
            "duration_ms": call.elapsed_ms(),
        }),
    )];
    for intent in &completion.intents {
        batch.push(NewRecord::new(
            session,
            RecordKind::ModelIntent,
            json!({ "call": call.id, "id": intent.id, "tool": intent.tool, "arguments": intent.arguments }),
        ));
    }
    if let Err(e) = proxy.recorder.append_batch(batch).await {
        tracing::error!(error = %e, "The ledger cannot record a model completion.");
        return Err(e);
    }
    if ok {
        let mut turn = json!({
            "call": call.id,
            "alias": call.alias,
            "prompt": ellipsize(&call.last_user, TURN_EXCERPT_BYTES),
            "completion": ellipsize(&completion.text, TURN_EXCERPT_BYTES),
            "intents": completion.intents,
        });
        // Approvers see (and approval records hold) the turn: redacted like the ledger.
        proxy.secrets.redact_json(&mut turn);
        proxy.turns.push(&call.session.id, turn);
    }
    Ok(())
}
