//! What changed between two compiled charters: the summary a live reload records in its
//! `charter_loaded` record (`changes`) and answers to the operator who asked for it.
//!
//! What it guarantees: the summary is bounded — every list holds the count of what changed
//! and at most [`MAX_IDS`] ids (sorted, so the same two charters always give the same
//! summary) — and it names ids only, never an argument pattern, a credential or a
//! condition's text. A rule moved within its file, or to another file, is not a change; a
//! rule whose tier, tools, argument matchers, principal or label constraints, condition,
//! scope or approval settings differ is.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::{CompiledCharter, Rule};

#[cfg(test)]
mod tests;

/// The most ids each list of a [`CharterDiff`] names (its count says how many there are).
pub const MAX_IDS: usize = 20;

/// Some ids, bounded: how many, and the first [`MAX_IDS`] in sorted order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ids {
    /// How many there are.
    pub count: usize,
    /// The first of them, sorted (at most [`MAX_IDS`]).
    pub ids: Vec<String>,
}

impl Ids {
    fn of(ids: impl IntoIterator<Item = String>) -> Ids {
        let all: BTreeSet<String> = ids.into_iter().collect();
        Ids {
            count: all.len(),
            ids: all.into_iter().take(MAX_IDS).collect(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Things added, removed and changed, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// In the new charter only.
    pub added: Ids,
    /// In the old charter only.
    pub removed: Ids,
    /// In both, different.
    pub changed: Ids,
}

impl Changes {
    /// Whether nothing was added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Compares two maps from id to a fingerprint of what the id stands for.
    fn between(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Changes {
        Changes {
            added: Ids::of(new.keys().filter(|k| !old.contains_key(*k)).cloned()),
            removed: Ids::of(old.keys().filter(|k| !new.contains_key(*k)).cloned()),
            changed: Ids::of(
                new.iter()
                    .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
                    .map(|(k, _)| k.clone()),
            ),
        }
    }
}

/// What changed from one charter to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CharterDiff {
    /// Rules, by id (changed: tier, tools, matchers, principal and label constraints,
    /// condition, scope or approval settings).
    pub rules: Changes,
    /// Tools of the inventory (`server.tool`).
    pub tools: Changes,
    /// Servers of the inventory (changed: transport, environment, sandbox, credentials or
    /// tools).
    pub servers: Changes,
    /// Model aliases (changed: routes or label restrictions).
    pub models: Changes,
    /// Principals (changed: name, roles, direction tier or notification target).
    pub principals: Changes,
    /// Roles (changed: direction tier or approval patterns).
    pub roles: Changes,
    /// Declared data labels (`changed` is always empty).
    pub labels: Changes,
    /// Whether the agent's identity (name, purpose, values, boundaries) changed.
    pub identity_changed: bool,
    /// Whether the context (organisation, mission, environment, state, system message)
    /// changed.
    pub context_changed: bool,
    /// Whether the default posture or default approval settings changed.
    pub defaults_changed: bool,
}

impl CharterDiff {
    /// Whether the two charters decide and provision alike (nothing listed changed).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.tools.is_empty()
            && self.servers.is_empty()
            && self.models.is_empty()
            && self.principals.is_empty()
            && self.roles.is_empty()
            && self.labels.is_empty()
            && !self.identity_changed
            && !self.context_changed
            && !self.defaults_changed
    }
}

/// What changed from `old` to `new`.
pub fn diff(old: &CompiledCharter, new: &CompiledCharter) -> CharterDiff {
    let rules = |c: &CompiledCharter| -> BTreeMap<String, String> {
        c.rules
            .iter()
            .map(|r| (r.id.to_string(), rule_fingerprint(r)))
            .collect()
    };
    let tools = |c: &CompiledCharter| -> BTreeMap<String, String> {
        c.inventory
            .tools
            .keys()
            .map(|t| (t.clone(), String::new()))
            .collect()
    };
    let servers = |c: &CompiledCharter| -> BTreeMap<String, String> {
        c.inventory
            .servers
            .iter()
            .map(|s| (s.id.clone(), server_fingerprint(s)))
            .collect()
    };
    let models = |c: &CompiledCharter| -> BTreeMap<String, String> {
        c.inventory
            .models
            .iter()
            .map(|m| {
                let routes: Vec<String> = m
                    .routes
                    .iter()
                    .map(|r| {
                        format!(
                            "{:?}|{}|{}|{:?}|{:?}",
                            r.provider, r.base_url, r.model, r.api_key_env, r.timeout
                        )
                    })
                    .collect();
                (m.alias.clone(), format!("{routes:?}|{:?}", m.deny_labels))
            })
            .collect()
    };
    let principals = |c: &CompiledCharter| -> BTreeMap<String, String> {
        c.authority
            .principals
            .values()
            .map(|p| {
                let mut roles: Vec<&str> = p.roles.iter().map(|r| &**r).collect();
                roles.sort_unstable();
                (
                    p.id.to_string(),
                    format!("{:?}|{roles:?}|{:?}|{:?}", p.name, p.max_direct, p.notify),
                )
            })
            .collect()
    };
    let roles = |c: &CompiledCharter| -> BTreeMap<String, String> {
        c.authority
            .roles
            .values()
            .map(|r| {
                (
                    r.id.to_string(),
                    format!("{:?}|{:?}", r.direct, r.approve_patterns),
                )
            })
            .collect()
    };
    let labels = |c: &CompiledCharter| -> BTreeMap<String, String> {
        c.data
            .labels
            .iter()
            .map(|l| (l.to_string(), String::new()))
            .collect()
    };
    let identity = |c: &CompiledCharter| {
        let i = &c.identity;
        format!(
            "{}|{}|{}|{}|{:?}|{:?}",
            i.id, i.name, i.purpose, i.serves, i.values, i.boundaries
        )
    };
    let defaults =
        |c: &CompiledCharter| format!("{:?}|{:?}", c.default_posture, c.default_approval);
    CharterDiff {
        rules: Changes::between(&rules(old), &rules(new)),
        tools: Changes::between(&tools(old), &tools(new)),
        servers: Changes::between(&servers(old), &servers(new)),
        models: Changes::between(&models(old), &models(new)),
        principals: Changes::between(&principals(old), &principals(new)),
        roles: Changes::between(&roles(old), &roles(new)),
        labels: Changes::between(&labels(old), &labels(new)),
        identity_changed: identity(old) != identity(new),
        context_changed: format!("{:?}", old.context) != format!("{:?}", new.context),
        defaults_changed: defaults(old) != defaults(new),
    }
}

/// What a rule decides, without where it is written: two rules with the same fingerprint
/// decide every action alike.
fn rule_fingerprint(r: &Rule) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        r.tier,
        r.tools,
        r.args,
        r.principal,
        r.labels,
        r.when.as_ref().map(|c| &c.source),
        r.scope,
        r.approval,
        r.remember,
    )
}

/// What a server is, without where it is declared (its credentials by how they are
/// resolved, never by value: the charter holds only variable and file names).
pub fn server_fingerprint(s: &crate::Server) -> String {
    let mut sandbox = s.sandbox.clone();
    sandbox.location = None;
    format!(
        "{:?}|{:?}|{sandbox:?}|{:?}",
        s.transport, s.tools, s.http_auth
    )
}
