//! Provider-side actions: what a model request asks the provider itself to do (hosted tools,
//! MCP servers, URLs and files it fetches, beta features; read by
//! [`warden_llm::provider_actions`]), each decided under the charter as a tool of the
//! reserved `model` server, recorded, and refused unless a rule allows it.
//!
//! Each action is recorded as an `action_attempted` (`via: model`, with the call's id), its
//! `action_decided`, and `action_forwarded` when allowed — in one commit, before the request's
//! own record. Only an allow lets the request go: a provider-side action cannot wait for a
//! human (the model call would hang on it), so an approval-tier decision (the default posture
//! included) refuses it, as does a preapproved rule with a count or spend scope (the proxy does
//! not count provider-side actions against scopes). A request with one refused action is
//! refused whole (403 `provider_action_denied`, in the caller's protocol), recorded as
//! `model_refused`; nothing reaches a provider.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use uuid::Uuid;
use warden_charter::CompiledCharter;
use warden_core::{Decision, NewRecord, RecordKind, Tier, Verdict};
use warden_llm::{ProviderAction, provider_actions};
use warden_pdp::{NoScopeUsage, Request, decide};

use crate::capture::ModelCall;
use crate::errors::protocol_error;
use crate::proxy::ModelProxy;

/// The code (OpenAI `code`, Anthropic error type stays `permission_error`) of a refusal.
pub(crate) const DENIED: &str = "provider_action_denied";

/// Decides and records every provider-side action of a request. `Ok` when there are none, or
/// every one is allowed and recorded; `Err` is the agent's answer (a refusal, or 503 when an
/// allowed action could not be recorded).
pub(crate) async fn check(
    proxy: &ModelProxy,
    call: &ModelCall,
    request: &Value,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let betas: Vec<&str> = headers
        .get_all("anthropic-beta")
        .iter()
        .map(|v| v.to_str().unwrap_or("unreadable-beta-header"))
        .collect();
    let actions = provider_actions(call.protocol, request, &betas);
    if actions.is_empty() {
        return Ok(());
    }
    let now = proxy.clock.now();
    let labels = call.session.labels();
    let session = Some(call.session.id.as_str());
    let mut batch = Vec::with_capacity(actions.len() * 3 + 1);
    let mut refusal: Option<String> = None;
    for action in &actions {
        let applied = proxy
            .controls
            .applying(&call.session, Some(action.tool), now);
        let mut decision = {
            // The session's provenance, read-locked for this synchronous decision only: a
            // provider-side action's arguments are judged by where they came from, as a tool
            // call's are.
            let provenance = call.session.provenance();
            decide(
                &call.charter,
                &Request {
                    tool: action.tool,
                    args: &action.args,
                    principal: Some(&call.session.principal),
                    labels: &labels,
                    provenance: &provenance,
                    controls: applied.pdp(call.session.is_revoked()),
                    usage: &NoScopeUsage,
                    now,
                },
            )
        };
        // A decision a control changed names it, as the governor's do.
        let control = applied.changed(decision.reason).map(|c| {
            let by = format!("control `{}`: {}", c.id, c.reason);
            decision.detail = Some(match decision.detail.take() {
                Some(d) => format!("{d}; {by}"),
                None => by,
            });
            c.id.clone()
        });
        let refused = refusal_of(&call.charter, action, &decision);
        let id = Uuid::now_v7().to_string();
        let mut attempted = json!({ "action": id, "via": "model", "call": call.id, "tool": action.tool, "arguments": action.args });
        if let Some(trace) = &call.trace {
            trace.record_in(&mut attempted);
        }
        batch.push(NewRecord::new(
            session,
            RecordKind::ActionAttempted,
            attempted,
        ));
        batch.push(NewRecord::new(
            session,
            RecordKind::ActionDecided,
            match &control {
                Some(c) => json!({ "action": id, "decision": decision, "control": c }),
                None => json!({ "action": id, "decision": decision }),
            },
        ));
        match refused {
            None => batch.push(NewRecord::new(
                session,
                RecordKind::ActionForwarded,
                json!({ "action": id, "tool": action.tool, "call": call.id }),
            )),
            Some(why) => {
                refusal.get_or_insert(why);
            }
        }
    }
    let Some(message) = refusal else {
        // INVARIANT: the request is forwarded only if its actions' allows are recorded.
        return match proxy.recorder.append_batch(batch).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "The ledger cannot record a provider-side action; the model call is refused.");
                Err(protocol_error(
                    call.protocol,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ledger_unavailable",
                    "the request's provider-side actions could not be recorded, so it was not forwarded",
                ))
            }
        };
    };
    batch.push(call.refused(DENIED, &[], None));
    if let Err(e) = proxy.recorder.append_batch(batch).await {
        tracing::error!(error = %e, "The ledger cannot record a refused provider-side action.");
    }
    Err(protocol_error(
        call.protocol,
        StatusCode::FORBIDDEN,
        DENIED,
        &message,
    ))
}

/// Why `decision` keeps `action` from the provider, in a sentence for the agent; `None` when
/// it allows it.
fn refusal_of(
    charter: &CompiledCharter,
    action: &ProviderAction,
    decision: &Decision,
) -> Option<String> {
    let what = describe(action);
    match decision.verdict {
        Verdict::Allow if decision.tier == Tier::Preapproved => {
            let counted = decision.rules.iter().any(|r| {
                charter
                    .rule(&r.id)
                    .and_then(|rule| rule.scope.as_ref())
                    .is_some_and(|s| {
                        s.per_session.is_some() || s.per_day.is_some() || s.spend.is_some()
                    })
            });
            counted.then(|| format!("{what} is refused: a preapproved rule with a count or spend scope does not cover provider-side actions; allow it with an autonomous rule or a preapproved rule without counts"))
        }
        Verdict::Allow => None,
        Verdict::Ask => Some(format!(
            "{what} needs an autonomous or preapproved rule in the charter: a provider-side action cannot wait for approval"
        )),
        Verdict::Deny => Some(format!(
            "{what} is denied ({}{})",
            decision.reason.as_str(),
            decision
                .detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )),
    }
}

/// `model.fetch_url` (`https://…`): the tool and its main argument, for messages.
fn describe(action: &ProviderAction) -> String {
    let main = ["url", "value", "type", "file_id"]
        .iter()
        .find_map(|k| action.args.get(*k).and_then(Value::as_str))
        .map(|v| format!(" (`{}`)", warden_core::text::ellipsize(v, 200)))
        .unwrap_or_default();
    format!("provider-side action `{}`{main}", action.tool)
}

#[cfg(test)]
mod tests {
    /// Every tool the reading can name is one the charter lets rules name.
    #[test]
    fn every_provider_action_is_a_charter_tool() {
        let mut llm: Vec<&str> = warden_llm::provider_actions::TOOLS.to_vec();
        let mut charter: Vec<&str> = warden_charter::MODEL_TOOLS.to_vec();
        llm.sort_unstable();
        charter.sort_unstable();
        assert_eq!(llm, charter);
        assert!(charter.iter().all(|t| {
            t.split_once('.')
                .is_some_and(|(s, _)| s == warden_charter::MODEL_SERVER)
        }));
    }
}
