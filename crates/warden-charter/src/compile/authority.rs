//! Compiling the authority: roles, principals and separation of duties.

use std::collections::HashMap;
use std::sync::Arc;

use warden_core::Tier;

use super::collect::Collected;
use super::valid_id;
use crate::compiled::{Authority, Principal, Role};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};

pub(super) fn authority(c: &Collected<'_>, diags: &mut Diagnostics) -> Authority {
    let mut roles: HashMap<Arc<str>, Role> = HashMap::new();
    for item in &c.roles {
        let raw = &item.raw;
        let id: Arc<str> = Arc::from(raw.id.as_str());
        if !valid_id(&raw.id, true) {
            diags.push(Diagnostic::error(
                item.at_path(&["id"]),
                format!("invalid role id `{}`", raw.id),
            ));
        }
        if let Some(first) = roles.get(&id) {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["id"]),
                    format!("duplicate role `{}`", raw.id),
                )
                .with_hint(format!("first declared at {}", first.location)),
            );
            continue;
        }
        let direct = raw.direct.unwrap_or(Tier::Approval);
        if direct == Tier::Prohibited {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["direct"]),
                    "a role cannot direct prohibited actions",
                )
                .with_hint("`direct` is `autonomous`, `preapproved` or `approval`"),
            );
        }
        let mut approve = Vec::new();
        for (i, pattern) in raw.approve.iter().enumerate() {
            match super::rules::tool_glob(pattern) {
                Ok(g) => approve.push(g.compile_matcher()),
                Err(e) => {
                    let at = item
                        .node
                        .get("approve")
                        .and_then(|(_, n)| n.items().get(i))
                        .map_or_else(|| item.at(), |n| item.file.at(n));
                    diags.push(Diagnostic::error(
                        at,
                        format!(
                            "invalid rule pattern `{}`: {e}",
                            super::matcher::shorten(pattern)
                        ),
                    ));
                }
            }
        }
        roles.insert(
            id.clone(),
            Role {
                id,
                description: raw.description.clone(),
                direct,
                approve_patterns: raw.approve.clone(),
                approve,
                location: item.at(),
            },
        );
    }
    let mut principals: HashMap<Arc<str>, Principal> = HashMap::new();
    let roles_complete = !c.incomplete.contains("authority.roles");
    for item in &c.principals {
        let raw = &item.raw;
        let id: Arc<str> = Arc::from(raw.id.as_str());
        if raw.id.is_empty() || raw.id.len() > 256 || raw.id.chars().any(char::is_control) {
            diags.push(Diagnostic::error(
                item.at_path(&["id"]),
                format!("invalid principal id `{}`", raw.id),
            ));
        }
        if principals.contains_key(&id) {
            diags.push(Diagnostic::error(
                item.at_path(&["id"]),
                format!("duplicate principal `{}`", raw.id),
            ));
            continue;
        }
        let mut held = Vec::new();
        let mut max_direct = Tier::Autonomous;
        for (i, r) in raw.roles.iter().enumerate() {
            match roles.get(r.as_str()) {
                Some(role) => {
                    max_direct = max_direct.max(role.direct);
                    held.push(role.id.clone());
                }
                None if roles_complete => {
                    let at = item
                        .node
                        .get("roles")
                        .and_then(|(_, n)| n.items().get(i))
                        .map_or_else(|| item.at(), |n| item.file.at(n));
                    diags.push(
                        Diagnostic::error(at, format!("unknown role `{r}`"))
                            .with_hint_opt(suggest(r, roles.keys().map(|k| &**k))),
                    );
                }
                None => {}
            }
        }
        principals.insert(
            id.clone(),
            Principal {
                id,
                name: raw.name.clone(),
                roles: held,
                max_direct: max_direct.min(Tier::Approval),
            },
        );
    }
    Authority {
        separation_of_duties: c.separation_of_duties.as_ref().is_none_or(|s| s.raw),
        roles,
        principals,
    }
}
