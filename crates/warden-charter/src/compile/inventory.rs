//! Compiling the inventory: servers, their tools and transports, model providers and routes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use warden_core::SourceLocation;

use super::collect::{Collected, Item};
use super::{DEFAULT_MODEL_TIMEOUT, MODEL_SERVER, RESOURCE_READ_TOOL, duration_or_report};
use crate::compiled::{
    BudgetScope, Inventory, Model, ModelRoute, Provider, Server, TokenBudget, Transport,
};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};
use crate::names::{MAX_FUNCTION_NAME, agent_tool_name, is_function_name, is_server_id};
use crate::raw::{RawBudgetScope, RawModel, RawProvider};

/// Compiles the inventory; `labels` are the declared data labels (model aliases may name them
/// in `deny_labels`).
pub(super) fn inventory(
    c: &Collected<'_>,
    labels: &[Arc<str>],
    diags: &mut Diagnostics,
) -> Inventory {
    let mut inv = Inventory::default();
    let mut seen: HashMap<&str, SourceLocation> = HashMap::new();
    for item in &c.servers {
        let raw = &item.raw;
        let at_id = item.at_path(&["id"]);
        let valid_server_id = is_server_id(&raw.id);
        if !valid_server_id {
            diags.push(
                Diagnostic::error(at_id.clone(), format!("invalid server id `{}`", raw.id))
                    .with_hint(format!(
                        "agents see a server's tools as `server__tool` function names, so a server id is at most {MAX_FUNCTION_NAME} letters, digits, `_` and `-`, starts with a letter or digit, holds no `__` and does not end in `_`"
                    )),
            );
        }
        if raw.id == MODEL_SERVER {
            diags.push(
                Diagnostic::error(at_id.clone(), format!("server id `{MODEL_SERVER}` is reserved"))
                    .with_hint("`model.*` names the model proxy's provider-side actions; give the server another id"),
            );
            continue;
        }
        if let Some(first) = seen.get(raw.id.as_str()) {
            diags.push(
                Diagnostic::error(at_id.clone(), format!("duplicate server `{}`", raw.id))
                    .with_hint(format!("first declared at {first}")),
            );
            continue;
        }
        seen.insert(&raw.id, at_id);
        let transport = match (&raw.command, &raw.url) {
            (Some(_), Some(_)) => {
                diags.push(
                    Diagnostic::error(item.at(), format!("server `{}` has both `command` and `url`", raw.id))
                        .with_hint("a server is reached over stdio (`command`) or Streamable HTTP (`url`), not both"),
                );
                Transport::DecideApi
            }
            (Some(command), None) => {
                if command.is_empty() || command.iter().any(String::is_empty) {
                    diags.push(Diagnostic::error(
                        item.at_path(&["command"]),
                        "`command` must be a non-empty list of non-empty strings",
                    ));
                }
                Transport::Stdio {
                    command: command.clone(),
                    env: raw
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }
            }
            (None, Some(u)) => match url::Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {
                    Transport::StreamableHttp { url }
                }
                Ok(url) => {
                    diags.push(Diagnostic::error(
                        item.at_path(&["url"]),
                        format!(
                            "server url scheme `{}` is not `http` or `https`",
                            url.scheme()
                        ),
                    ));
                    Transport::DecideApi
                }
                Err(e) => {
                    diags.push(Diagnostic::error(
                        item.at_path(&["url"]),
                        format!("invalid url `{u}`: {e}"),
                    ));
                    Transport::DecideApi
                }
            },
            (None, None) => Transport::DecideApi,
        };
        if !raw.env.is_empty() && raw.command.is_none() {
            diags.push(Diagnostic::error(
                item.at_path(&["env"]),
                "`env` applies only to a stdio server (`command`)",
            ));
        }
        if let Some(agent) = &raw.agent {
            if !super::valid_id(agent) {
                diags.push(Diagnostic::error(
                    item.at_path(&["agent"]),
                    format!("invalid agent id `{agent}`"),
                ));
            }
            if raw.command.is_none() && raw.url.is_none() {
                diags.push(
                    Diagnostic::error(
                        item.at_path(&["agent"]),
                        format!("server `{}` is agent `{agent}` but has no `command` or `url`", raw.id),
                    )
                    .with_hint("an agent is reached as an MCP server (`command` or `url`), not through the decide API"),
                );
            }
        }
        let server_index = inv.servers.len();
        let mut tools_seen = BTreeSet::new();
        for (i, tool) in raw.tools.iter().enumerate() {
            let at = item
                .node
                .get("tools")
                .and_then(|(_, n)| n.items().get(i))
                .map_or_else(|| item.at(), |n| item.file.at(n));
            if tool.is_empty() || tool.contains(['*', '?', '[', '{', ' ']) {
                diags.push(Diagnostic::error(at, format!("invalid tool name `{tool}`")));
                continue;
            }
            let agent_name = agent_tool_name(&raw.id, tool);
            if valid_server_id && !is_function_name(&agent_name) {
                let why = if agent_name.len() > MAX_FUNCTION_NAME {
                    format!(
                        "is {} bytes long, more than the {MAX_FUNCTION_NAME} model providers accept",
                        agent_name.len()
                    )
                } else {
                    "holds characters other than letters, digits, `_` and `-`".to_owned()
                };
                diags.push(
                    Diagnostic::error(
                        at,
                        format!(
                            "tool `{tool}` of server `{}` cannot be offered to agents: its name `{agent_name}` {why}",
                            raw.id
                        ),
                    )
                    .with_hint("agents see tools as `server__tool` and pass them to the model as function names (`^[a-zA-Z0-9_-]{1,64}$` for OpenAI and Anthropic); shorten the server id, or leave the tool out"),
                );
                continue;
            }
            if !tools_seen.insert(tool.as_str()) {
                diags.push(Diagnostic::error(
                    at,
                    format!("tool `{tool}` is listed twice"),
                ));
                continue;
            }
            inv.tools.insert(format!("{}.{tool}", raw.id), server_index);
        }
        // Reading a server's resources is an action too: `server.resources/read`.
        inv.tools
            .insert(format!("{}.{RESOURCE_READ_TOOL}", raw.id), server_index);
        inv.servers.push(Server {
            id: raw.id.clone(),
            description: raw.description.clone(),
            transport,
            tools: raw.tools.clone(),
            sandbox: super::sandbox::sandbox(item, diags),
            http_auth: super::upstream_auth::http_auth(item, diags),
            agent: raw.agent.clone(),
            location: item.at(),
        });
    }
    let mut aliases: HashMap<&str, SourceLocation> = HashMap::new();
    for item in &c.models {
        let raw = &item.raw;
        if let Some(first) = aliases.get(raw.alias.as_str()) {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["alias"]),
                    format!("duplicate model alias `{}`", raw.alias),
                )
                .with_hint(format!("first declared at {first}")),
            );
            continue;
        }
        aliases.insert(&raw.alias, item.at_path(&["alias"]));
        if raw.routes.is_empty() {
            diags.push(Diagnostic::error(
                item.at_path(&["routes"]),
                format!("model `{}` has no routes", raw.alias),
            ));
        }
        let mut routes = Vec::new();
        for (i, r) in raw.routes.iter().enumerate() {
            let route_node = item.node.get("routes").and_then(|(_, n)| n.items().get(i));
            let at = |key: &str| {
                route_node
                    .and_then(|n| n.get(key))
                    .map_or_else(|| item.at(), |(_, n)| item.file.at(n))
            };
            let base_url = match url::Url::parse(&r.base_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => u,
                Ok(_) | Err(_) => {
                    diags.push(Diagnostic::error(
                        at("base_url"),
                        format!("invalid provider base url `{}`", r.base_url),
                    ));
                    continue;
                }
            };
            let timeout = match &r.timeout {
                Some(t) => {
                    duration_or_report(t, at("timeout"), diags).unwrap_or(DEFAULT_MODEL_TIMEOUT)
                }
                None => DEFAULT_MODEL_TIMEOUT,
            };
            routes.push(ModelRoute {
                provider: match r.provider {
                    RawProvider::Openai => Provider::Openai,
                    RawProvider::Anthropic => Provider::Anthropic,
                },
                base_url,
                model: r.model.clone(),
                api_key_env: r.api_key_env.clone(),
                timeout,
            });
        }
        let deny_labels = deny_labels(c, item, labels, diags);
        inv.models.push(Model {
            alias: raw.alias.clone(),
            routes,
            deny_labels,
        });
    }
    for item in &c.token_budgets {
        let raw = &item.raw;
        if raw.tokens == 0 {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["tokens"]),
                    "a token budget of 0 refuses every model call",
                )
                .with_hint("remove the model aliases instead, or give at least 1 token"),
            );
            continue;
        }
        let per = match raw.per {
            RawBudgetScope::Session => BudgetScope::Session,
            RawBudgetScope::Agent => BudgetScope::Agent,
            RawBudgetScope::Principal => BudgetScope::Principal,
        };
        let window = match (&raw.window, per) {
            (Some(w), _) => match duration_or_report(w, item.at_path(&["window"]), diags) {
                Some(d) => Some(d),
                None => continue,
            },
            (None, BudgetScope::Session) => None,
            (None, _) => Some(Duration::from_secs(24 * 3600)),
        };
        inv.token_budgets.push(TokenBudget {
            per,
            tokens: raw.tokens,
            window,
            location: item.at(),
        });
    }
    provider_keys_in_env(c, &inv, diags);
    inv
}

/// Provider key variables every gateway may hold, whether or not a route names them.
const WELL_KNOWN_PROVIDER_KEYS: [&str; 2] = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"];

/// Warns about a stdio server's `env` entry that hands it a provider key: its key or its
/// `${NAME}` is a route's `api_key_env` or a well-known provider key variable. A tool server
/// that holds the model proxy's key can spend it, or show it to the agent.
fn provider_keys_in_env(c: &Collected<'_>, inv: &Inventory, diags: &mut Diagnostics) {
    let mut keys: BTreeSet<&str> = WELL_KNOWN_PROVIDER_KEYS.into_iter().collect();
    keys.extend(
        inv.models
            .iter()
            .flat_map(|m| &m.routes)
            .filter_map(|r| r.api_key_env.as_deref()),
    );
    for item in &c.servers {
        for (key, value) in &item.raw.env {
            let named = value.strip_prefix("${").and_then(|r| r.strip_suffix('}'));
            let Some(variable) = [Some(key.as_str()), named]
                .into_iter()
                .flatten()
                .find(|v| keys.contains(v))
            else {
                continue;
            };
            diags.push(
                Diagnostic::warning(
                    item.at_path(&["env", key]),
                    format!(
                        "server `{}` is given the provider key variable `{variable}` in its `env`",
                        item.raw.id
                    ),
                )
                .with_hint("a tool server that holds a model provider's key can spend it or show it to the agent; give it a key of its own"),
            );
        }
    }
}

/// A model alias's `deny_labels`, resolved against the declared labels; an unknown one is an
/// error at its own position in the list (unless `data.labels` could not be read whole).
fn deny_labels(
    c: &Collected<'_>,
    item: &Item<'_, RawModel>,
    labels: &[Arc<str>],
    diags: &mut Diagnostics,
) -> Vec<Arc<str>> {
    let labels_complete = !c.incomplete.contains("data.labels");
    let mut resolved: Vec<Arc<str>> = Vec::new();
    for (i, name) in item.raw.deny_labels.iter().enumerate() {
        match labels.iter().find(|l| ***l == **name) {
            Some(l) if !resolved.contains(l) => resolved.push(l.clone()),
            Some(_) => {}
            None if labels_complete => {
                let at = item
                    .node
                    .get("deny_labels")
                    .and_then(|(_, n)| n.items().get(i))
                    .map_or_else(|| item.at_path(&["deny_labels"]), |n| item.file.at(n));
                diags.push(
                    Diagnostic::error(
                        at,
                        format!(
                            "unknown label `{name}` in `deny_labels` of model `{}`",
                            item.raw.alias
                        ),
                    )
                    .with_hint_opt(
                        suggest(name, labels.iter().map(|l| &**l))
                            .or_else(|| Some("declare it under `data.labels`".to_owned())),
                    ),
                );
            }
            None => {}
        }
    }
    resolved
}
