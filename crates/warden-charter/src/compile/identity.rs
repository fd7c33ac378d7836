//! Compiling the agent's identity and the charter's labels.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use warden_core::SourceLocation;

use super::collect::Collected;
use super::{first_location, valid_id};
use crate::compiled::Identity;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::Source;

pub(super) fn identity(
    c: &Collected<'_>,
    sources: &[Source],
    unreadable: bool,
    diags: &mut Diagnostics,
) -> Option<Identity> {
    let Some(item) = &c.identity else {
        // A file that did not parse may hold it; one present but unreadable was reported.
        if unreadable || c.incomplete.contains("identity") {
            return None;
        }
        diags.push(
            Diagnostic::error(
                first_location(sources),
                "the charter has no `identity` section",
            )
            .with_hint("add `identity:` with `id`, `name`, `purpose` and `serves`"),
        );
        return None;
    };
    let raw = &item.raw;
    if !valid_id(&raw.id) {
        diags.push(
            Diagnostic::error(
                item.at_path(&["id"]),
                format!("invalid agent id `{}`", raw.id),
            )
            .with_hint(
                "ids start with a letter or digit and use letters, digits, `_`, `-`, `.`, `:`, `@`",
            ),
        );
    }
    Some(Identity {
        id: raw.id.clone(),
        name: raw.name.clone(),
        purpose: raw.purpose.clone(),
        serves: raw.serves.clone(),
        values: raw.values.clone(),
        boundaries: raw.boundaries.clone(),
    })
}

pub(super) fn labels(c: &Collected<'_>, diags: &mut Diagnostics) -> Vec<Arc<str>> {
    let mut seen: HashMap<&str, SourceLocation> = HashMap::new();
    for item in &c.labels {
        if !valid_id(&item.raw.id) {
            diags.push(Diagnostic::error(
                item.at_path(&["id"]),
                format!("invalid label id `{}`", item.raw.id),
            ));
        }
        if let Some(first) = seen.get(item.raw.id.as_str()) {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["id"]),
                    format!("duplicate label `{}`", item.raw.id),
                )
                .with_hint(format!("first declared at {first}")),
            );
        } else {
            seen.insert(&item.raw.id, item.at_path(&["id"]));
        }
    }
    let set: BTreeSet<&str> = seen.into_keys().collect();
    set.into_iter().map(Arc::from).collect()
}
