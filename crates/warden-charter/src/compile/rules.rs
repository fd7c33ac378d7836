//! Compiling rules and the tool index.

use std::collections::HashMap;
use std::sync::Arc;

use globset::{Glob, GlobSetBuilder};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warden_core::{RuleRef, SourceLocation, Tier};

use super::collect::{Collected, Item};
use super::{matcher, valid_id};
use crate::amount::Amount;
use crate::compiled::{
    ApprovalSettings, ArgConstraint, Authority, CompiledCharter, Inventory, LabelMatch,
    PrincipalMatch, RememberArg, Rule, Scope, Spend,
};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};
use crate::index::ToolIndex;
use crate::raw::RawRule;

/// The rule id that stands for the default posture in approval authority.
pub const DEFAULT_RULE_ID: &str = "default";

pub use super::condition::CEL_VARIABLES;

/// A tool-name glob (no path-separator semantics), within the bounds of
/// [`matcher::bounded_glob`]; the error says why it is refused.
pub(crate) fn tool_glob(pattern: &str) -> Result<Glob, String> {
    matcher::bounded_glob(pattern, false)
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

pub(crate) fn compile_rules(
    c: &Collected<'_>,
    inventory: &Inventory,
    authority: &Authority,
    labels: &[Arc<str>],
    untrusted: &[Arc<str>],
    defaults: ApprovalSettings,
    diags: &mut Diagnostics,
) -> (Vec<Rule>, ToolIndex) {
    let scope = matcher::LabelScope {
        declared: labels,
        untrusted,
        complete: !c.incomplete.contains("data.labels"),
    };
    let mut rules = Vec::with_capacity(c.rules.len());
    let mut seen: HashMap<&str, SourceLocation> = HashMap::new();
    let mut patterns = GlobSetBuilder::new();
    let mut pattern_rules = Vec::new();
    let complete = |list: &str| !c.incomplete.contains(list);
    for item in &c.rules {
        let raw = &item.raw;
        let at_id = item.at_path(&["id"]);
        if !valid_id(&raw.id) {
            diags.push(
                Diagnostic::error(at_id.clone(), format!("invalid rule id `{}`", raw.id))
                    .with_hint("ids start with a letter or digit and use letters, digits, `_`, `-`, `.`, `:`, `@`"),
            );
        }
        if raw.id == DEFAULT_RULE_ID {
            diags.push(
                Diagnostic::error(at_id.clone(), "the rule id `default` is reserved").with_hint(
                    "`default` names the default posture in `authority.roles[].approve`",
                ),
            );
        }
        if let Some(first) = seen.get(raw.id.as_str()) {
            diags.push(
                Diagnostic::error(at_id, format!("duplicate rule id `{}`", raw.id))
                    .with_hint(format!("first used at {first}; rule ids must be unique")),
            );
            continue;
        }
        seen.insert(&raw.id, at_id);
        let rule_index = u32::try_from(rules.len()).unwrap_or(u32::MAX);
        let tools = raw.tool.clone().into_vec();
        if tools.is_empty() {
            diags.push(Diagnostic::error(
                item.at_path(&["tool"]),
                "`tool` is empty",
            ));
        }
        for (i, pattern) in tools.iter().enumerate() {
            let at = list_item_at(item, "tool", i);
            if is_glob(pattern) {
                match tool_glob(pattern) {
                    Ok(g) => {
                        patterns.add(g);
                        pattern_rules.push(rule_index);
                    }
                    Err(e) => diags.push(Diagnostic::error(
                        at,
                        format!("invalid tool pattern `{}`: {e}", matcher::shorten(pattern)),
                    )),
                }
            } else if inventory.tools.contains_key(pattern.as_str())
                || CompiledCharter::is_model_tool(pattern)
                || c.incomplete.contains("inventory.servers")
            {
                if let Ok(g) = tool_glob(&globset::escape(pattern)) {
                    patterns.add(g);
                    pattern_rules.push(rule_index);
                }
            } else {
                // `fs__read` is what agents see; rules name the charter's `fs.read`.
                let dotted = crate::names::charter_tool_name(pattern);
                let listed_form = (dotted != pattern.as_str()
                    && inventory.tools.contains_key(dotted.as_ref()))
                .then(|| format!("rules name tools `server.tool`: write `{dotted}` (agents see it as `{pattern}`)"));
                let hint = listed_form.or_else(|| suggest(pattern, inventory.tools.keys().map(String::as_str))).or_else(|| {
                    Some(if pattern.contains('.') {
                        "add the tool to its server's `tools` in `inventory.servers`".to_owned()
                    } else {
                        "tools are named `server.tool`, after their server in `inventory.servers`".to_owned()
                    })
                });
                diags.push(
                    Diagnostic::error(
                        at,
                        format!("unknown tool `{pattern}`: it is not in the inventory"),
                    )
                    .with_hint_opt(hint),
                );
            }
        }
        let mut fingerprints = Vec::new();
        let mut args = Vec::new();
        for (name, raw_matcher) in &raw.args {
            if name.is_empty() || name.split('.').any(str::is_empty) {
                diags.push(Diagnostic::error(
                    item.at_path(&["args"]),
                    format!("invalid argument name `{name}`"),
                ));
                continue;
            }
            let at = |keys: &[&str]| {
                let mut k = vec!["args", name.as_str()];
                k.extend_from_slice(keys);
                item.at_path(&k)
            };
            let matcher = matcher::compile(raw_matcher, name, &at, &scope, diags);
            let json = item
                .node
                .get("args")
                .and_then(|(_, n)| n.get(name))
                .map(|(_, n)| n.to_json().to_string())
                .unwrap_or_default();
            fingerprints.push(format!("args.{name}={json}"));
            args.push(ArgConstraint {
                argument: name.clone(),
                path: name.split('.').map(str::to_owned).collect(),
                optional: raw_matcher.optional.unwrap_or(false),
                matcher,
            });
        }
        let principal =
            raw.principal.as_ref().map(|p| {
                fingerprints.push(format!("principal={}", node_json(item, "principal")));
                if p.roles.is_none() && p.ids.is_none() {
                    diags.push(Diagnostic::error(
                        item.at_path(&["principal"]),
                        "`principal` needs `roles` or `ids`",
                    ));
                }
                let roles = p.roles.as_ref().map(|roles| {
                    roles
                        .iter()
                        .filter_map(|r| match authority.roles.get(r.as_str()) {
                            Some(role) => Some(role.id.clone()),
                            None => {
                                if complete("authority.roles") {
                                    diags.push(
                                        Diagnostic::error(
                                            item.at_path(&["principal", "roles"]),
                                            format!("unknown role `{r}`"),
                                        )
                                        .with_hint_opt(
                                            suggest(r, authority.roles.keys().map(|k| &**k)),
                                        ),
                                    );
                                }
                                None
                            }
                        })
                        .collect()
                });
                let ids = p.ids.as_ref().map(|ids| {
                    ids.iter()
                        .filter_map(|id| match authority.principals.get(id.as_str()) {
                            Some(pr) => Some(pr.id.clone()),
                            None => {
                                if complete("authority.principals") {
                                    diags.push(
                                        Diagnostic::error(
                                            item.at_path(&["principal", "ids"]),
                                            format!("unknown principal `{id}`"),
                                        )
                                        .with_hint_opt(
                                            suggest(id, authority.principals.keys().map(|k| &**k)),
                                        ),
                                    );
                                }
                                None
                            }
                        })
                        .collect()
                });
                PrincipalMatch { roles, ids }
            });
        let labels_match = raw.labels.as_ref().map(|l| {
            fingerprints.push(format!("labels={}", node_json(item, "labels")));
            let mut resolve = |list: &Option<Vec<String>>, key: &str| {
                list.as_ref().map(|names| {
                    names
                        .iter()
                        .filter_map(|n| match labels.iter().find(|l| ***l == **n) {
                            Some(l) => Some(l.clone()),
                            None => {
                                if complete("data.labels") {
                                    diags.push(
                                        Diagnostic::error(
                                            item.at_path(&["labels", key]),
                                            format!("unknown label `{n}`"),
                                        )
                                        .with_hint_opt(
                                            suggest(n, labels.iter().map(|l| &**l)).or_else(|| {
                                                Some("declare it under `data.labels`".to_owned())
                                            }),
                                        ),
                                    );
                                }
                                None
                            }
                        })
                        .collect()
                })
            };
            LabelMatch {
                any: resolve(&l.any, "any"),
                all: resolve(&l.all, "all"),
                none: resolve(&l.none, "none"),
            }
        });
        let when = raw.when.as_ref().and_then(|src| {
            fingerprints.push(format!("when={src}"));
            super::condition::compile(src, item.at_path(&["when"]), diags)
        });
        let scope = compile_scope(item, diags);
        let approval = ApprovalSettings {
            timeout: raw
                .approval
                .as_ref()
                .and_then(|a| a.timeout.as_ref())
                .and_then(|t| {
                    super::duration_or_report(t, item.at_path(&["approval", "timeout"]), diags)
                })
                .unwrap_or(defaults.timeout),
            quorum: match raw.approval.as_ref().and_then(|a| a.quorum) {
                Some(0) => {
                    diags.push(Diagnostic::error(
                        item.at_path(&["approval", "quorum"]),
                        "`quorum` must be at least 1",
                    ));
                    1
                }
                Some(q) => q,
                None => defaults.quorum,
            },
        };
        let remember = compile_remember(item, &mut fingerprints, diags);
        fingerprints.sort();
        let id: Arc<str> = Arc::from(raw.id.as_str());
        rules.push(Rule {
            id: id.clone(),
            description: raw.description.clone(),
            tier: raw.tier,
            reference: RuleRef {
                id,
                tier: raw.tier,
                location: item.at(),
            },
            tools,
            args,
            principal,
            labels: labels_match,
            when,
            scope,
            approval,
            remember,
            fingerprints,
        });
    }
    let patterns = patterns.build().unwrap_or_else(|e| {
        diags.push(Diagnostic::error_at_file(
            "<charter>",
            format!("cannot build the tool index: {e}"),
        ));
        globset::GlobSet::empty()
    });
    let mut index = ToolIndex {
        by_tool: HashMap::new(),
        patterns,
        pattern_rules,
        tiers: Vec::new(),
    };
    // INVARIANT: candidate lists are ordered most strict tier first (then source order), so
    // the decision can skip rules that cannot change its outcome.
    let tiers: Vec<Tier> = rules.iter().map(|r| r.tier).collect();
    index.tiers = tiers;
    let by_tool = inventory
        .tools
        .keys()
        .map(|tool| {
            (
                Box::from(tool.as_str()),
                index.scan(tool).into_boxed_slice(),
            )
        })
        .collect();
    index.by_tool = by_tool;
    (rules, index)
}

fn list_item_at(item: &Item<'_, RawRule>, key: &str, i: usize) -> SourceLocation {
    match item.node.get(key) {
        Some((_, n)) => n
            .items()
            .get(i)
            .map_or_else(|| item.file.at(n), |x| item.file.at(x)),
        None => item.at(),
    }
}

fn node_json(item: &Item<'_, RawRule>, key: &str) -> String {
    item.node
        .get(key)
        .map(|(_, n)| n.to_json().to_string())
        .unwrap_or_default()
}

/// `approval.remember`: dotted argument names, on approval-tier rules only. Kept as a
/// fingerprint prefixed `approval.` (not a condition: the lints compare it only for duplicates).
fn compile_remember(
    item: &Item<'_, RawRule>,
    fingerprints: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Vec<RememberArg> {
    let Some(names) = item.raw.approval.as_ref().and_then(|a| a.remember.as_ref()) else {
        return Vec::new();
    };
    let at = item.at_path(&["approval", "remember"]);
    if item.raw.tier != Tier::Approval {
        diags.push(
            Diagnostic::error(
                at.clone(),
                format!(
                    "`approval.remember` applies only to rules of tier `approval`, and this rule is `{}`",
                    item.raw.tier
                ),
            )
            .with_hint("set `tier: approval` or remove `remember`"),
        );
    }
    if names.is_empty() {
        diags.push(
            Diagnostic::error(at.clone(), "`approval.remember` is empty")
                .with_hint("name the arguments an approver may confirm, or remove `remember`"),
        );
    }
    let mut out: Vec<RememberArg> = Vec::with_capacity(names.len());
    for name in names {
        if name.is_empty() || name.split('.').any(str::is_empty) {
            diags.push(Diagnostic::error(
                at.clone(),
                format!("invalid argument name `{name}` in `approval.remember`"),
            ));
            continue;
        }
        if out.iter().any(|r| r.argument == *name) {
            diags.push(Diagnostic::error(
                at.clone(),
                format!("argument `{name}` is named twice in `approval.remember`"),
            ));
            continue;
        }
        out.push(RememberArg {
            argument: name.clone(),
            path: name.split('.').map(str::to_owned).collect(),
        });
    }
    let mut sorted: Vec<&str> = out.iter().map(|r| r.argument.as_str()).collect();
    sorted.sort_unstable();
    fingerprints.push(format!("approval.remember={}", sorted.join(",")));
    out
}

fn compile_scope(item: &Item<'_, RawRule>, diags: &mut Diagnostics) -> Option<Scope> {
    let raw = item.raw.scope.as_ref()?;
    if item.raw.tier != Tier::Preapproved {
        diags.push(
            Diagnostic::error(
                item.at_path(&["scope"]),
                format!(
                    "`scope` applies only to preapproved rules, and this rule is `{}`",
                    item.raw.tier
                ),
            )
            .with_hint("set `tier: preapproved` or remove `scope`"),
        );
    }
    let positive = |v: Option<u32>, key: &str, diags: &mut Diagnostics| {
        if v == Some(0) {
            diags.push(Diagnostic::error(
                item.at_path(&["scope", key]),
                format!("`scope.{key}` must be at least 1"),
            ));
        }
        v
    };
    let per_session = positive(raw.per_session, "per_session", diags);
    let per_day = positive(raw.per_day, "per_day", diags);
    let spend = raw.spend.as_ref().map(|s| {
        let amount = |n: &Option<serde_json::Number>, key: &str, diags: &mut Diagnostics| {
            n.as_ref()
                .and_then(|n| match Amount::parse(&n.to_string()) {
                    Ok(a) if !a.is_negative() => Some(a),
                    Ok(_) => {
                        diags.push(Diagnostic::error(
                            item.at_path(&["scope", "spend", key]),
                            format!("`scope.spend.{key}` must not be negative"),
                        ));
                        None
                    }
                    Err(e) => {
                        diags.push(Diagnostic::error(
                            item.at_path(&["scope", "spend", key]),
                            e.to_string(),
                        ));
                        None
                    }
                })
        };
        if s.per_session.is_none() && s.per_day.is_none() {
            diags.push(Diagnostic::error(
                item.at_path(&["scope", "spend"]),
                "`scope.spend` needs `per_session` or `per_day`",
            ));
        }
        if s.argument.is_empty() || s.argument.split('.').any(str::is_empty) {
            diags.push(Diagnostic::error(
                item.at_path(&["scope", "spend", "argument"]),
                format!("invalid argument name `{}`", s.argument),
            ));
        }
        Spend {
            argument: s.argument.clone(),
            path: s.argument.split('.').map(str::to_owned).collect(),
            per_session: amount(&s.per_session, "per_session", diags),
            per_day: amount(&s.per_day, "per_day", diags),
        }
    });
    let expires = raw
        .expires
        .as_ref()
        .and_then(|e| match OffsetDateTime::parse(e, &Rfc3339) {
            Ok(t) => Some(t),
            Err(err) => {
                diags.push(
                    Diagnostic::error(
                        item.at_path(&["scope", "expires"]),
                        format!("invalid time `{e}`: {err}"),
                    )
                    .with_hint("write an RFC 3339 time such as `2026-12-31T23:59:59Z`"),
                );
                None
            }
        });
    if per_session.is_none() && per_day.is_none() && spend.is_none() && expires.is_none() {
        diags.push(Diagnostic::error(
            item.at_path(&["scope"]),
            "`scope` is empty: set `per_session`, `per_day`, `spend` or `expires`",
        ));
    }
    Some(Scope {
        per_session,
        per_day,
        spend,
        expires,
    })
}

/// Checks the rule patterns in `authority.roles[].approve`: a literal must name a rule (or
/// `default`), a glob should match one.
pub(crate) fn check_approve_patterns(c: &Collected<'_>, rules: &[Rule], diags: &mut Diagnostics) {
    let rules_complete = !c.incomplete.contains("actions.rules");
    for item in &c.roles {
        for (i, pattern) in item.raw.approve.iter().enumerate() {
            let at = item
                .node
                .get("approve")
                .and_then(|(_, n)| n.items().get(i))
                .map_or_else(|| item.at(), |n| item.file.at(n));
            if !is_glob(pattern) {
                if pattern != DEFAULT_RULE_ID
                    && rules_complete
                    && !rules.iter().any(|r| *r.id == **pattern)
                {
                    diags.push(
                        Diagnostic::error(
                            at,
                            format!(
                                "role `{}` may approve unknown rule `{pattern}`",
                                item.raw.id
                            ),
                        )
                        .with_hint_opt(suggest(
                            pattern,
                            rules.iter().map(|r| &*r.id).chain([DEFAULT_RULE_ID]),
                        )),
                    );
                }
            } else if let Ok(g) = tool_glob(pattern) {
                let m = g.compile_matcher();
                if !m.is_match(DEFAULT_RULE_ID) && !rules.iter().any(|r| m.is_match(&*r.id)) {
                    diags.push(Diagnostic::warning(
                        at,
                        format!(
                            "approval pattern `{pattern}` of role `{}` matches no rule",
                            item.raw.id
                        ),
                    ));
                }
            }
        }
    }
}
