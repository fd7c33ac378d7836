//! Compiling the data policy: the declared labels and the sources that attach them to action
//! results.

use std::sync::Arc;

use super::collect::Collected;
use super::{matcher, rules};
use crate::compiled::{DataPolicy, DataSource, Inventory};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};

/// The declared labels marked `untrusted: true`, sorted and without duplicates.
pub(super) fn untrusted_labels(c: &Collected<'_>, labels: &[Arc<str>]) -> Vec<Arc<str>> {
    let mut out: Vec<Arc<str>> = c
        .labels
        .iter()
        .filter(|l| l.raw.untrusted)
        .filter_map(|l| labels.iter().find(|x| ***x == *l.raw.id).cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(super) fn data_policy(
    c: &Collected<'_>,
    inventory: &Inventory,
    labels: Vec<Arc<str>>,
    untrusted: Vec<Arc<str>>,
    diags: &mut Diagnostics,
) -> DataPolicy {
    let labels_complete = !c.incomplete.contains("data.labels");
    let mut sources = Vec::new();
    for item in &c.sources {
        let raw = &item.raw;
        let label = match labels.iter().find(|l| ***l == *raw.label) {
            Some(l) => l.clone(),
            None => {
                if labels_complete {
                    diags.push(
                        Diagnostic::error(
                            item.at_path(&["label"]),
                            format!("unknown label `{}`", raw.label),
                        )
                        .with_hint_opt(
                            suggest(&raw.label, labels.iter().map(|l| &**l))
                                .or_else(|| Some("declare it under `data.labels`".to_owned())),
                        ),
                    );
                }
                continue;
            }
        };
        let tools = raw.tool.clone().map(|t| {
            let mut set = globset::GlobSetBuilder::new();
            for pattern in t.into_vec() {
                match rules::tool_glob(&pattern) {
                    Ok(g) => {
                        if !inventory
                            .tools
                            .keys()
                            .any(|k| g.compile_matcher().is_match(k))
                            && !inventory.tools.is_empty()
                        {
                            diags.push(
                                Diagnostic::warning(
                                    item.at_path(&["tool"]),
                                    format!("tool pattern `{pattern}` matches no inventoried tool"),
                                )
                                .with_hint_opt(suggest(
                                    &pattern,
                                    inventory.tools.keys().map(String::as_str),
                                )),
                            );
                        }
                        set.add(g);
                    }
                    Err(e) => diags.push(Diagnostic::error(
                        item.at_path(&["tool"]),
                        format!(
                            "invalid tool pattern `{}`: {e}",
                            super::matcher::shorten(&pattern)
                        ),
                    )),
                }
            }
            // An empty set would silently drop the rule's tools; refuse the charter instead.
            set.build().unwrap_or_else(|e| {
                diags.push(Diagnostic::error(
                    item.at_path(&["tool"]),
                    format!("the tool patterns cannot be compiled together: {e}"),
                ));
                globset::GlobSet::empty()
            })
        });
        let paths = raw.path.clone().map(|p| {
            p.into_vec()
                .iter()
                .filter_map(|g| matcher::path_glob(g, item.at_path(&["path"]), diags))
                .collect()
        });
        let pattern = raw
            .pattern
            .as_ref()
            .and_then(|p| matcher::regex(p, false, item.at_path(&["pattern"]), diags));
        if raw.tool.is_none() && raw.path.is_none() && raw.pattern.is_none() {
            diags.push(
                Diagnostic::error(
                    item.at(),
                    "a label source needs `tool`, `path` or `pattern`",
                )
                .with_hint("without one it would label every result"),
            );
        }
        let path_argument = raw
            .path_argument
            .clone()
            .unwrap_or_else(|| "path".to_owned());
        if path_argument.is_empty() || path_argument.split('.').any(str::is_empty) {
            diags.push(Diagnostic::error(
                item.at_path(&["path_argument"]),
                format!("invalid argument name `{path_argument}`"),
            ));
        }
        sources.push(DataSource {
            label,
            tools,
            paths,
            path_argument_path: path_argument.split('.').map(str::to_owned).collect(),
            path_argument,
            pattern,
            location: item.at(),
        });
    }
    let descriptions = c
        .labels
        .iter()
        .filter_map(|l| {
            let desc = l.raw.description.clone()?;
            let id = labels.iter().find(|x| ***x == *l.raw.id)?.clone();
            Some((id, desc))
        })
        .collect();
    // Secrets never written to the ledger: matched in captured content and replaced.
    let redact = c
        .redact
        .iter()
        .filter_map(|item| matcher::regex(&item.raw, false, item.at(), diags))
        .collect();
    DataPolicy {
        labels,
        untrusted,
        descriptions,
        sources,
        redact,
    }
}
