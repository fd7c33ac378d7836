//! What a live reload cannot change, checked before anything is recorded or swapped; and the
//! servers the new charter adds or changes, prepared as start-up prepares them.

use std::sync::Arc;
use warden_charter::diff::CharterDiff;

use warden_charter::{CharterSet, CompiledCharter, Transport};
use warden_core::redact::{MIN_SECRET_BYTES, REDACTED};
use warden_mcp::{PrepareError, PreparedUpstreams, Upstreams};

use super::Refusal;
use crate::app_state::AppState;

/// The charters of `next` that differ from those in force (`agent`'s only, when named), in
/// agent order; refused when the set's agents differ (an agent added or removed waits for a
/// restart: every session, budget and record names its agent).
pub(super) fn changed_agents(
    current: &CharterSet,
    next: &CharterSet,
    agent: Option<&str>,
) -> Result<Vec<Arc<CompiledCharter>>, Refusal> {
    let added: Vec<&str> = next.agents().filter(|a| current.get(a).is_none()).collect();
    let removed: Vec<&str> = current.agents().filter(|a| next.get(a).is_none()).collect();
    if !added.is_empty() || !removed.is_empty() {
        return Err(Refusal::Unchangeable {
            reason: format!(
                "the gateway's agents cannot change on a live reload (added: {}; removed: {}); restart the gateway with the new set",
                if added.is_empty() {
                    "none".to_owned()
                } else {
                    added.join(", ")
                },
                if removed.is_empty() {
                    "none".to_owned()
                } else {
                    removed.join(", ")
                },
            ),
        });
    }
    Ok(next
        .iter()
        .filter(|c| agent.is_none_or(|a| c.identity.id == a))
        .filter(|c| {
            current
                .get(&c.identity.id)
                .is_none_or(|was| was.hash != c.hash)
        })
        .cloned()
        .collect())
}

/// Refuses what only a restart can change, and prepares the servers to start (added or
/// changed): their environments, confinement and credentials resolved from the gateway's
/// environment, as start-up phase 1 does. Nothing is spawned here.
pub(super) fn check(
    state: &AppState,
    current: &CompiledCharter,
    next: &CompiledCharter,
    changes: &CharterDiff,
) -> Result<PreparedUpstreams, Refusal> {
    let refuse = |reason: String| Err(Refusal::Unchangeable { reason });
    if next.identity.id != current.identity.id {
        return refuse(format!(
            "the agent id cannot change on a live reload (`{}` → `{}`): every session, budget and record names it; restart the gateway with the new charter",
            current.identity.id, next.identity.id
        ));
    }
    if next.inventory.token_budgets != current.inventory.token_budgets {
        return refuse(
            "the token budgets are read at start-up only; restart the gateway to change them"
                .to_owned(),
        );
    }
    if next.observer.required != current.observer.required
        || next.observer.heartbeat_deadline != current.observer.heartbeat_deadline
    {
        return refuse(
            "the dead man's switch (`observer.required`, `observer.heartbeat_deadline`) is set at start-up only; restart the gateway to change it"
                .to_owned(),
        );
    }
    let unread: Vec<&str> = next
        .inventory
        .models
        .iter()
        .flat_map(|m| &m.routes)
        .filter_map(|r| r.api_key_env.as_deref())
        .filter(|name| !state.reload.key_variables.contains(*name))
        .collect();
    if let Some(name) = unread.first() {
        return refuse(format!(
            "the provider key variable `{name}` was not read at start-up (the model proxy reads keys only then); restart the gateway to use it"
        ));
    }
    let start: Vec<&str> = changes
        .servers
        .added
        .ids
        .iter()
        .chain(&changes.servers.changed.ids)
        .map(String::as_str)
        .collect();
    if changes.servers.added.count + changes.servers.changed.count > start.len() {
        return refuse(format!(
            "more than {} servers are added or changed at once; restart the gateway instead",
            warden_charter::diff::MAX_IDS
        ));
    }
    let prepared = Upstreams::prepare(next, |name| std::env::var_os(name))
        .map_err(|e| Refusal::Unchangeable {
            reason: match e {
                PrepareError::Env(e) => format!("{e}"),
                other => format!("a server cannot be prepared: {other}"),
            },
        })?
        .only(|id| start.contains(&id));
    // A secret the gateway did not read at start-up would not be redacted from what it
    // relays and records: such a server waits for a restart.
    let secrets = state.models.secrets();
    let mut values: Vec<(String, String)> = prepared
        .secret_values()
        .into_iter()
        .map(|v| (String::from("its credentials"), v))
        .collect();
    for server in next
        .inventory
        .servers
        .iter()
        .filter(|s| start.contains(&s.id.as_str()))
    {
        if let Transport::Stdio { env, .. } = &server.transport {
            for name in env
                .iter()
                .filter_map(|(_, v)| v.strip_prefix("${").and_then(|r| r.strip_suffix('}')))
            {
                if let Ok(value) = std::env::var(name) {
                    values.push((format!("`${{{name}}}` of server `{}`", server.id), value));
                }
            }
        }
    }
    for (what, value) in values {
        if value.len() >= MIN_SECRET_BYTES && secrets.redact_str(&value) != REDACTED {
            return refuse(format!(
                "{what} holds a secret the gateway did not read at start-up (it would not be redacted from what the gateway relays and records); restart the gateway to add it"
            ));
        }
    }
    Ok(prepared)
}
