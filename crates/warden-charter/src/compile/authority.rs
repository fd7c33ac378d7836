//! Compiling the authority: roles, principals and separation of duties.

use std::collections::HashMap;
use std::sync::Arc;

use warden_core::Tier;

use super::collect::Collected;
use super::valid_id;
use crate::compiled::{Authority, Enrolment, NotifyTarget, Principal, Role};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};

pub(super) fn authority(c: &Collected<'_>, diags: &mut Diagnostics) -> Authority {
    let mut roles: HashMap<Arc<str>, Role> = HashMap::new();
    for item in &c.roles {
        let raw = &item.raw;
        let id: Arc<str> = Arc::from(raw.id.as_str());
        if !valid_id(&raw.id) {
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
    let mut declared: HashMap<Arc<str>, warden_core::SourceLocation> = HashMap::new();
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
        if let Some(first) = declared.get(&id) {
            // Across a charter and its includes too: both places are named.
            diags.push(
                Diagnostic::error(
                    item.at_path(&["id"]),
                    format!("duplicate principal `{}`", raw.id),
                )
                .with_hint(format!("first declared at {first}")),
            );
            continue;
        }
        declared.insert(id.clone(), item.at_path(&["id"]));
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
        let notify = notify_target(item, diags);
        principals.insert(
            id.clone(),
            Principal {
                id,
                name: raw.name.clone(),
                roles: held,
                max_direct: max_direct.min(Tier::Approval),
                notify,
            },
        );
    }
    let enrolment = enrolment(c, &roles, &principals, diags);
    Authority {
        separation_of_duties: c.separation_of_duties.as_ref().is_none_or(|s| s.raw),
        roles,
        principals,
        enrolment,
    }
}

/// `authority.enrolment`: every issuer is `admin` or a declared role, every principal and role
/// named is declared.
fn enrolment(
    c: &Collected<'_>,
    roles: &HashMap<Arc<str>, Role>,
    principals: &HashMap<Arc<str>, Principal>,
    diags: &mut Diagnostics,
) -> Vec<Enrolment> {
    let roles_complete = !c.incomplete.contains("authority.roles");
    let principals_complete = !c.incomplete.contains("authority.principals");
    let mut out = Vec::new();
    for item in &c.enrolment {
        let raw = &item.raw;
        let by = if raw.by == "admin" {
            None
        } else if let Some(role) = roles.get(raw.by.as_str()) {
            Some(role.id.clone())
        } else {
            if roles_complete {
                diags.push(
                    Diagnostic::error(
                        item.at_path(&["by"]),
                        format!("unknown issuer `{}`", raw.by),
                    )
                    .with_hint("`by` is `admin` or a role id"),
                );
            }
            continue;
        };
        if raw.principals.is_empty() && raw.roles.is_empty() {
            diags.push(Diagnostic::error(
                item.at(),
                "an enrolment entry names nobody: give `principals` or `roles`",
            ));
        }
        for p in &raw.principals {
            if p != "*" && principals_complete && !principals.contains_key(p.as_str()) {
                diags.push(
                    Diagnostic::error(
                        item.at_path(&["principals"]),
                        format!("unknown principal `{p}`"),
                    )
                    .with_hint_opt(suggest(p, principals.keys().map(|k| &**k))),
                );
            }
        }
        let mut held = Vec::new();
        for r in &raw.roles {
            match roles.get(r.as_str()) {
                Some(role) => held.push(role.id.clone()),
                None if roles_complete => diags.push(
                    Diagnostic::error(item.at_path(&["roles"]), format!("unknown role `{r}`"))
                        .with_hint_opt(suggest(r, roles.keys().map(|k| &**k))),
                ),
                None => {}
            }
        }
        out.push(Enrolment {
            by,
            principals: raw.principals.clone(),
            roles: held,
        });
    }
    out
}

/// A principal's `notify` and `notify_format`, checked: an absolute `http`/`https` URL and
/// `json` or `slack`.
fn notify_target(
    item: &super::collect::Item<'_, crate::raw::RawPrincipal>,
    diags: &mut Diagnostics,
) -> Option<NotifyTarget> {
    let raw = &item.raw;
    let slack = match raw.notify_format.as_deref() {
        None | Some("json") => false,
        Some("slack") => true,
        Some(other) => {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["notify_format"]),
                    format!("unknown webhook format `{other}`"),
                )
                .with_hint("`notify_format` is `json` or `slack`"),
            );
            return None;
        }
    };
    let Some(written) = raw.notify.as_deref() else {
        if raw.notify_format.is_some() {
            diags.push(Diagnostic::error(
                item.at_path(&["notify_format"]),
                "`notify_format` without `notify`",
            ));
        }
        return None;
    };
    match url::Url::parse(written) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
            Some(NotifyTarget { url, slack })
        }
        Ok(_) | Err(_) => {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["notify"]),
                    "`notify` is not an absolute `http` or `https` URL",
                )
                .with_hint("write the webhook URL this principal's approval links go to"),
            );
            None
        }
    }
}
