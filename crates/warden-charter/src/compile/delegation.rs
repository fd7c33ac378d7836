//! Compiling the `delegation` section, and the locations the set's checks point at.

use std::collections::HashMap;

use warden_core::SourceLocation;

use super::collect::Collected;
use super::valid_id;
use crate::compiled::{Delegation, Spans};
use crate::diagnostic::{Diagnostic, Diagnostics};

/// `delegation.max_depth` when the section does not set it.
pub const DEFAULT_DELEGATION_DEPTH: u32 = 1;
/// The largest `delegation.max_depth` accepted.
pub const MAX_DELEGATION_DEPTH: u32 = 8;
/// `delegation.max_children` when the section does not set it.
pub const DEFAULT_DELEGATION_CHILDREN: u32 = 8;
/// The largest `delegation.max_children` accepted.
pub const MAX_DELEGATION_CHILDREN: u32 = 64;

/// Compiles the `delegation` section (none: [`Delegation::default`], delegating to nobody and
/// accepting nobody) and collects the locations of the items the set checks. `agent` is the
/// charter's own agent id, which `to`, `from` and a server's `agent` may not name.
pub(super) fn delegation(
    c: &Collected<'_>,
    agent: Option<&str>,
    diags: &mut Diagnostics,
) -> (Delegation, Spans) {
    let mut spans = Spans {
        identity: c.identity.as_ref().map(|i| i.at_path(&["id"])),
        ..Spans::default()
    };
    for item in &c.servers {
        spans
            .server_ids
            .push((item.raw.id.clone(), item.at_path(&["id"])));
        if let Some(named) = &item.raw.agent {
            let at = item.at_path(&["agent"]);
            if agent == Some(named.as_str()) {
                diags.push(
                    Diagnostic::error(
                        at.clone(),
                        format!(
                            "server `{}` is this charter's own agent `{named}`",
                            item.raw.id
                        ),
                    )
                    .with_hint("a server's `agent` names another agent of the set"),
                );
            }
            spans.server_agents.push((item.raw.id.clone(), at));
        }
    }
    let Some(item) = &c.delegation else {
        return (Delegation::default(), spans);
    };
    let raw = &item.raw;
    let entries = |key: &str, names: &[String]| -> Vec<SourceLocation> {
        let node = item.node.get(key).map(|(_, n)| n);
        (0..names.len())
            .map(|i| {
                node.and_then(|n| n.items().get(i))
                    .map_or_else(|| item.at_path(&[key]), |n| item.file.at(n))
            })
            .collect()
    };
    spans.to = entries("to", &raw.to);
    spans.from = entries("from", &raw.from);
    check_agents("to", &raw.to, &spans.to, agent, diags);
    check_agents("from", &raw.from, &spans.from, agent, diags);
    let max_depth = bounded(
        raw.max_depth,
        DEFAULT_DELEGATION_DEPTH,
        MAX_DELEGATION_DEPTH,
        "max_depth",
        item.at_path(&["max_depth"]),
        diags,
    );
    let max_children = bounded(
        raw.max_children,
        DEFAULT_DELEGATION_CHILDREN,
        MAX_DELEGATION_CHILDREN,
        "max_children",
        item.at_path(&["max_children"]),
        diags,
    );
    let delegation = Delegation {
        to: raw.to.clone(),
        from: raw.from.clone(),
        max_depth,
        max_children,
        location: Some(item.at()),
    };
    (delegation, spans)
}

/// Checks one list of agent ids: each valid, not the charter's own agent, listed once.
fn check_agents(
    key: &str,
    names: &[String],
    at: &[SourceLocation],
    agent: Option<&str>,
    diags: &mut Diagnostics,
) {
    let mut seen: HashMap<&str, &SourceLocation> = HashMap::new();
    for (name, at) in names.iter().zip(at) {
        if !valid_id(name) {
            diags.push(
                Diagnostic::error(at.clone(), format!("invalid agent id `{name}`")).with_hint(
                    "ids start with a letter or digit and use letters, digits, `_`, `-`, `.`, `:`, `@`",
                ),
            );
        } else if agent == Some(name.as_str()) {
            diags.push(
                Diagnostic::error(
                    at.clone(),
                    format!("`delegation.{key}` names this charter's own agent `{name}`"),
                )
                .with_hint("an agent delegates to other agents of the set, never to itself"),
            );
        } else if let Some(first) = seen.get(name.as_str()) {
            diags.push(
                Diagnostic::error(
                    at.clone(),
                    format!("agent `{name}` is listed twice in `delegation.{key}`"),
                )
                .with_hint(format!("first listed at {first}")),
            );
        } else {
            seen.insert(name, at);
        }
    }
}

/// A bound between 1 and `max`, `default` when unset; an error when outside.
fn bounded(
    value: Option<u32>,
    default: u32,
    max: u32,
    key: &str,
    at: SourceLocation,
    diags: &mut Diagnostics,
) -> u32 {
    match value {
        None => default,
        Some(v) if (1..=max).contains(&v) => v,
        Some(v) => {
            diags.push(Diagnostic::error(
                at,
                format!("`delegation.{key}` is {v}; it must be between 1 and {max}"),
            ));
            v.clamp(1, max)
        }
    }
}
