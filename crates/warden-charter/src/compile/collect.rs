//! Phase one: walk each file's node tree section by section and deserialize every setting and
//! list item on its own, collecting every structural error with its location.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use warden_core::SourceLocation;

use crate::diagnostic::{Diagnostic, Diagnostics, suggest};
use crate::include::{INCLUDABLE, INCLUDE_KEY};
use crate::raw::{
    RawApproval, RawContext, RawCorrelation, RawDataSource, RawDefaultPosture, RawDelegation,
    RawDetector, RawEnrolment, RawIdentity, RawLabel, RawModel, RawPrincipal, RawResponse, RawRole,
    RawRule, RawServer, RawTokenBudget,
};
use crate::source::{Node, NodeKind, ParsedFile};

/// A deserialized item with the file and node it came from.
pub(crate) struct Item<'a, T> {
    pub raw: T,
    pub file: &'a ParsedFile,
    pub node: &'a Node,
}

impl<T> Item<'_, T> {
    /// The location of the item.
    pub(crate) fn at(&self) -> SourceLocation {
        self.file.at(self.node)
    }

    /// The location of a nested value, by keys; falls back to the deepest node found.
    pub(crate) fn at_path(&self, keys: &[&str]) -> SourceLocation {
        let mut node = self.node;
        for key in keys {
            match node.get(key) {
                Some((_, next)) => node = next,
                None => break,
            }
        }
        self.file.at(node)
    }
}

/// Everything read from the charter files, before semantic checks.
#[derive(Default)]
pub(crate) struct Collected<'a> {
    pub version: Option<Item<'a, u32>>,
    pub identity: Option<Item<'a, RawIdentity>>,
    pub servers: Vec<Item<'a, RawServer>>,
    pub models: Vec<Item<'a, RawModel>>,
    pub token_budgets: Vec<Item<'a, RawTokenBudget>>,
    pub default_posture: Option<Item<'a, RawDefaultPosture>>,
    pub approval: Option<Item<'a, RawApproval>>,
    pub rules: Vec<Item<'a, RawRule>>,
    pub separation_of_duties: Option<Item<'a, bool>>,
    pub roles: Vec<Item<'a, RawRole>>,
    pub principals: Vec<Item<'a, RawPrincipal>>,
    pub enrolment: Vec<Item<'a, RawEnrolment>>,
    pub labels: Vec<Item<'a, RawLabel>>,
    pub sources: Vec<Item<'a, RawDataSource>>,
    pub redact: Vec<Item<'a, String>>,
    pub context: Option<Item<'a, RawContext>>,
    pub baseline_window: Option<Item<'a, String>>,
    pub learning_window: Option<Item<'a, String>>,
    pub detectors: Vec<Item<'a, RawDetector>>,
    pub correlate: Vec<Item<'a, RawCorrelation>>,
    pub escalate_within: Option<Item<'a, String>>,
    pub ceiling: Option<Item<'a, RawResponse>>,
    // The dead man's switch.
    pub observer_required: Option<Item<'a, bool>>,
    pub heartbeat_deadline: Option<Item<'a, String>>,
    pub delegation: Option<Item<'a, RawDelegation>>,
    /// Lists with at least one item that failed to parse, and `version` or `identity` when
    /// present but unreadable; reference checks against them (and "missing" errors) are
    /// skipped so one typo does not cascade.
    pub incomplete: HashSet<&'static str>,
}

const SECTIONS: [&str; 10] = [
    "version",
    "include",
    "identity",
    "inventory",
    "actions",
    "authority",
    "data",
    "context",
    "observer",
    "delegation",
];

/// Reads one file into `c`.
pub(crate) fn collect_file<'a>(
    file: &'a ParsedFile,
    c: &mut Collected<'a>,
    diags: &mut Diagnostics,
) {
    let NodeKind::Map(entries) = &file.root.kind else {
        diags.push(
            Diagnostic::error(
                file.at(&file.root),
                "a charter file must be a mapping of sections",
            )
            .with_hint(format!("top-level keys are {}", backticked(&SECTIONS))),
        );
        return;
    };
    for (key, node) in entries {
        let k = key.name.as_str();
        if file.included && !INCLUDABLE.contains(&k) {
            diags.push(not_includable(file, key));
            continue;
        }
        match k {
            // Resolved and read before compiling (`crate::include`).
            INCLUDE_KEY => {}
            "delegation" => single(file, node, k, &mut c.delegation, diags),
            "version" => {
                if !read_single(file, node, k, &mut c.version, diags) {
                    c.incomplete.insert("version");
                }
            }
            "identity" => {
                // Present but unreadable (a field missing, say): reported here, and not again
                // as "no identity section".
                if !read_single(file, node, k, &mut c.identity, diags) {
                    c.incomplete.insert("identity");
                }
            }
            "context" => single(file, node, k, &mut c.context, diags),
            "inventory" => section(
                file,
                node,
                k,
                &["servers", "models", "token_budgets"],
                diags,
                |key, n, d| match key {
                    "servers" => list(
                        file,
                        n,
                        "inventory.servers",
                        &mut c.servers,
                        &mut c.incomplete,
                        d,
                    ),
                    "token_budgets" => list(
                        file,
                        n,
                        "inventory.token_budgets",
                        &mut c.token_budgets,
                        &mut c.incomplete,
                        d,
                    ),
                    _ => list(
                        file,
                        n,
                        "inventory.models",
                        &mut c.models,
                        &mut c.incomplete,
                        d,
                    ),
                },
            ),
            "actions" => section(
                file,
                node,
                k,
                &["default_posture", "approval", "rules"],
                diags,
                |key, n, d| match key {
                    "default_posture" => single(
                        file,
                        n,
                        "actions.default_posture",
                        &mut c.default_posture,
                        d,
                    ),
                    "approval" => single(file, n, "actions.approval", &mut c.approval, d),
                    _ => list(file, n, "actions.rules", &mut c.rules, &mut c.incomplete, d),
                },
            ),
            "authority" => section(
                file,
                node,
                k,
                &["separation_of_duties", "roles", "principals", "enrolment"],
                diags,
                |key, n, d| match key {
                    "separation_of_duties" => single(
                        file,
                        n,
                        "authority.separation_of_duties",
                        &mut c.separation_of_duties,
                        d,
                    ),
                    "roles" => list(
                        file,
                        n,
                        "authority.roles",
                        &mut c.roles,
                        &mut c.incomplete,
                        d,
                    ),
                    "principals" => list(
                        file,
                        n,
                        "authority.principals",
                        &mut c.principals,
                        &mut c.incomplete,
                        d,
                    ),
                    _ => list(
                        file,
                        n,
                        "authority.enrolment",
                        &mut c.enrolment,
                        &mut c.incomplete,
                        d,
                    ),
                },
            ),
            "data" => section(
                file,
                node,
                k,
                &["labels", "sources", "redact"],
                diags,
                |key, n, d| match key {
                    "labels" => list(file, n, "data.labels", &mut c.labels, &mut c.incomplete, d),
                    "redact" => list(file, n, "data.redact", &mut c.redact, &mut c.incomplete, d),
                    _ => list(
                        file,
                        n,
                        "data.sources",
                        &mut c.sources,
                        &mut c.incomplete,
                        d,
                    ),
                },
            ),
            "observer" => section(
                file,
                node,
                k,
                &[
                    "baseline_window",
                    "learning_window",
                    "detectors",
                    "correlate",
                    "escalate_within",
                    "ceiling",
                    "required",
                    "heartbeat_deadline",
                ],
                diags,
                |key, n, d| match key {
                    "correlate" => list(
                        file,
                        n,
                        "observer.correlate",
                        &mut c.correlate,
                        &mut c.incomplete,
                        d,
                    ),
                    "escalate_within" => single(
                        file,
                        n,
                        "observer.escalate_within",
                        &mut c.escalate_within,
                        d,
                    ),
                    "ceiling" => single(file, n, "observer.ceiling", &mut c.ceiling, d),
                    // The dead man's switch.
                    "required" => single(file, n, "observer.required", &mut c.observer_required, d),
                    "heartbeat_deadline" => single(
                        file,
                        n,
                        "observer.heartbeat_deadline",
                        &mut c.heartbeat_deadline,
                        d,
                    ),
                    "baseline_window" => single(
                        file,
                        n,
                        "observer.baseline_window",
                        &mut c.baseline_window,
                        d,
                    ),
                    "learning_window" => single(
                        file,
                        n,
                        "observer.learning_window",
                        &mut c.learning_window,
                        d,
                    ),
                    _ => list(
                        file,
                        n,
                        "observer.detectors",
                        &mut c.detectors,
                        &mut c.incomplete,
                        d,
                    ),
                },
            ),
            other => diags.push(
                Diagnostic::error(file.at_key(key), format!("unknown section `{other}`"))
                    .with_hint_opt(
                        suggest(other, SECTIONS)
                            .or_else(|| Some(format!("sections are {}", backticked(&SECTIONS)))),
                    ),
            ),
        }
    }
}

/// The error for a key an included document may not hold.
fn not_includable(file: &ParsedFile, key: &crate::source::Key) -> Diagnostic {
    let k = key.name.as_str();
    let hint = format!(
        "an included document holds only {}",
        backticked(&INCLUDABLE)
    );
    if k == INCLUDE_KEY {
        Diagnostic::error(
            file.at_key(key),
            "an included document cannot include (includes are one level deep)",
        )
        .with_hint("include the document from the charter itself")
    } else if SECTIONS.contains(&k) {
        Diagnostic::error(
            file.at_key(key),
            format!("`{k}` cannot be in an included document"),
        )
        .with_hint(hint)
    } else {
        Diagnostic::error(file.at_key(key), format!("unknown section `{k}`"))
            .with_hint_opt(suggest(k, INCLUDABLE).or(Some(hint)))
    }
}

/// A section that is a mapping of known keys; each key is handed to `each`.
fn section<'a>(
    file: &'a ParsedFile,
    node: &'a Node,
    name: &str,
    keys: &[&'static str],
    diags: &mut Diagnostics,
    mut each: impl FnMut(&'static str, &'a Node, &mut Diagnostics),
) {
    match &node.kind {
        NodeKind::Null => {}
        NodeKind::Map(entries) => {
            for (key, value) in entries {
                match keys.iter().find(|k| **k == key.name) {
                    Some(k) => each(k, value, diags),
                    None => diags.push(
                        Diagnostic::error(
                            file.at_key(key),
                            format!("unknown field `{}` in `{name}`", key.name),
                        )
                        .with_hint_opt(
                            suggest(&key.name, keys.iter().copied())
                                .or_else(|| Some(format!("`{name}` has {}", backticked(keys)))),
                        ),
                    ),
                }
            }
        }
        _ => diags.push(Diagnostic::error(
            file.at(node),
            format!("`{name}` must be a mapping"),
        )),
    }
}

/// A setting written once across all files.
fn single<'a, T: DeserializeOwned>(
    file: &'a ParsedFile,
    node: &'a Node,
    name: &str,
    slot: &mut Option<Item<'a, T>>,
    diags: &mut Diagnostics,
) {
    read_single(file, node, name, slot, diags);
}

/// [`single`], saying whether the setting could be read (`false`: it is present, and its
/// error reported).
fn read_single<'a, T: DeserializeOwned>(
    file: &'a ParsedFile,
    node: &'a Node,
    name: &str,
    slot: &mut Option<Item<'a, T>>,
    diags: &mut Diagnostics,
) -> bool {
    if let Some(first) = slot {
        diags.push(
            Diagnostic::error(file.at(node), format!("`{name}` is set twice"))
                .with_hint(format!("it is first set at {}", first.at())),
        );
        return true;
    }
    match deserialize::<T>(file, node, name, diags) {
        Some(raw) => {
            *slot = Some(Item { raw, file, node });
            true
        }
        None => false,
    }
}

/// A list whose items are deserialized one by one.
fn list<'a, T: DeserializeOwned>(
    file: &'a ParsedFile,
    node: &'a Node,
    name: &'static str,
    out: &mut Vec<Item<'a, T>>,
    incomplete: &mut HashSet<&'static str>,
    diags: &mut Diagnostics,
) {
    match &node.kind {
        NodeKind::Null => {}
        NodeKind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                match deserialize::<T>(file, item, &format!("{name}[{i}]"), diags) {
                    Some(raw) => out.push(Item {
                        raw,
                        file,
                        node: item,
                    }),
                    None => {
                        incomplete.insert(name);
                    }
                }
            }
        }
        _ => {
            incomplete.insert(name);
            diags.push(Diagnostic::error(
                file.at(node),
                format!("`{name}` must be a list"),
            ));
        }
    }
}

/// Deserializes a node into `T`; on error, reports it at the offending node with a hint.
pub(crate) fn deserialize<T: DeserializeOwned>(
    file: &ParsedFile,
    node: &Node,
    name: &str,
    diags: &mut Diagnostics,
) -> Option<T> {
    let json = node.to_json();
    match serde_path_to_error::deserialize::<_, T>(json) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().clone();
            let (target, key) = node.follow(&path);
            let message = e.into_inner().to_string();
            let mut location = file.at(target);
            let mut hint = None;
            let expected = backticked_names(message.split_once("expected").map_or("", |(_, r)| r));
            if let Some(field) = quoted_after(&message, "unknown field `") {
                // The path ends at the mapping holding the unknown key: point at the key.
                if let Some((k, _)) = target.get(&field) {
                    location = file.at_key(k);
                } else if let Some(k) = key.filter(|k| k.name == field) {
                    location = file.at_key(k);
                }
                hint = suggest(&field, expected.iter().map(String::as_str));
            } else if let Some(variant) = quoted_after(&message, "unknown variant `") {
                hint = suggest(&variant, expected.iter().map(String::as_str));
            }
            let message = if message.contains("untagged enum OneOrMany") {
                "expected a string or a list of strings".to_owned()
            } else {
                message
            };
            let at = if path.iter().next().is_none() {
                format!("`{name}`")
            } else {
                format!("`{name}.{path}`")
            };
            diags.push(Diagnostic::error(location, format!("{at}: {message}")).with_hint_opt(hint));
            None
        }
    }
}

fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.split_once(prefix)?.1;
    Some(rest.split_once('`')?.0.to_owned())
}

fn backticked_names(s: &str) -> Vec<String> {
    s.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, n)| n.to_owned())
        .collect()
}

pub(crate) fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
