//! The compiled charter as the charter page shows it: rules by tier with what they match and
//! where they are written, principals, roles and who may approve what. Pure.

use std::sync::Arc;

use warden_charter::{
    ArgConstraint, CompiledCharter, DefaultPosture, HostPattern, Matcher, Rule, SqlKind,
};
use warden_core::Tier;

/// One rule on the page.
#[derive(Debug, Clone)]
pub struct RuleView {
    /// Its id.
    pub id: String,
    /// Its tier.
    pub tier: String,
    /// Its tool patterns.
    pub tools: String,
    /// What else it matches (arguments, principal, labels, condition, scope), one item each.
    pub matchers: Vec<String>,
    /// `file:line:col`.
    pub location: String,
    /// Why it exists, as written.
    pub description: String,
    /// For an approval rule: the principals who may approve it, and the quorum.
    pub approvers: Option<(String, u32)>,
}

/// The rules of one tier.
#[derive(Debug, Clone)]
pub struct TierView {
    /// The tier.
    pub tier: String,
    /// Its rules, in charter order.
    pub rules: Vec<RuleView>,
}

/// A principal on the page.
#[derive(Debug, Clone)]
pub struct PrincipalView {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its roles.
    pub roles: String,
    /// The highest tier it may direct.
    pub max_direct: String,
}

/// A role on the page.
#[derive(Debug, Clone)]
pub struct RoleView {
    /// Its id.
    pub id: String,
    /// The highest tier its holders may direct.
    pub direct: String,
    /// The rule-id globs it may approve.
    pub approve: String,
    /// `file:line:col`.
    pub location: String,
}

/// The charter page's content.
#[derive(Debug, Clone)]
pub struct CharterView {
    /// The agent's id and name.
    pub agent: String,
    /// The agent's id.
    pub agent_id: String,
    /// The charter's content hash.
    pub hash: String,
    /// Its files.
    pub files: String,
    /// The default posture.
    pub default_posture: &'static str,
    /// Whether separation of duties holds.
    pub separation_of_duties: bool,
    /// Rules by tier, the strictest first.
    pub tiers: Vec<TierView>,
    /// Principals, by id.
    pub principals: Vec<PrincipalView>,
    /// Roles, by id.
    pub roles: Vec<RoleView>,
    /// The declared data labels.
    pub labels: Vec<String>,
}

fn list(items: &[Arc<str>]) -> String {
    items.iter().map(|s| &**s).collect::<Vec<_>>().join(", ")
}

/// A matcher, as a short phrase per test it makes.
pub(crate) fn matcher_summary(m: &Matcher) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(g) = &m.globs {
        let g: Vec<String> = g.iter().map(|g| g.glob().to_string()).collect();
        out.push(format!("matches {}", g.join(" | ")));
    }
    if let Some(s) = &m.schemes {
        out.push(format!("scheme {}", s.join(" | ")));
    }
    if let Some(h) = &m.hosts {
        let h: Vec<String> = h
            .iter()
            .map(|h| match h {
                HostPattern::Exact(x) => x.clone(),
                HostPattern::Subdomains(x) => format!("*.{x}"),
            })
            .collect();
        out.push(format!("host {}", h.join(" | ")));
    }
    if let Some(v) = &m.one_of {
        let v: Vec<String> = v.iter().map(ToString::to_string).collect();
        out.push(format!("one of {}", v.join(", ")));
    }
    if let Some(n) = &m.min {
        out.push(format!("≥ {n}"));
    }
    if let Some(n) = &m.max {
        out.push(format!("≤ {n}"));
    }
    if let Some(r) = &m.regex {
        out.push(format!("regex {}", r.as_str()));
    }
    if let Some(p) = &m.prefix {
        out.push(format!("prefix {p:?}"));
    }
    if let Some(s) = &m.suffix {
        out.push(format!("suffix {s:?}"));
    }
    if let Some(k) = &m.sql {
        out.push(
            match k {
                SqlKind::ReadOnly => "read-only SQL",
                SqlKind::Writing => "writing SQL",
            }
            .to_owned(),
        );
    }
    if let Some(t) = m.in_task {
        out.push(format!("in_task {t}"));
    }
    if let Some(p) = &m.provenance {
        if let Some(f) = &p.from {
            out.push(format!("from {}", list(f)));
        }
        if let Some(f) = &p.not_from {
            out.push(format!("not from {}", list(f)));
        }
    }
    if let Some(n) = &m.not {
        out.push(format!("not ({})", matcher_summary(n).join(", ")));
    }
    out
}

fn arg_summary(a: &ArgConstraint) -> String {
    format!(
        "{}{}: {}",
        a.argument,
        if a.optional { " (optional)" } else { "" },
        matcher_summary(&a.matcher).join(", ")
    )
}

fn rule_view(charter: &CompiledCharter, r: &Rule) -> RuleView {
    let mut matchers: Vec<String> = r.args.iter().map(arg_summary).collect();
    if let Some(p) = &r.principal {
        if let Some(roles) = &p.roles {
            matchers.push(format!("principal holds {}", list(roles)));
        }
        if let Some(ids) = &p.ids {
            matchers.push(format!("principal is {}", list(ids)));
        }
    }
    if let Some(l) = &r.labels {
        if let Some(x) = &l.any {
            matchers.push(format!("labels any of {}", list(x)));
        }
        if let Some(x) = &l.all {
            matchers.push(format!("labels all of {}", list(x)));
        }
        if let Some(x) = &l.none {
            matchers.push(format!("labels none of {}", list(x)));
        }
    }
    if let Some(w) = &r.when {
        matchers.push(format!("when {}", w.source));
    }
    if let Some(s) = &r.scope {
        let mut parts = Vec::new();
        if let Some(n) = s.per_session {
            parts.push(format!("{n} per session"));
        }
        if let Some(n) = s.per_day {
            parts.push(format!("{n} per day"));
        }
        if let Some(sp) = &s.spend {
            parts.push(format!("spend of {}", sp.argument));
        }
        if let Some(e) = s.expires {
            parts.push(format!("until {}", warden_core::text::rfc3339(e)));
        }
        matchers.push(format!("scope: {}", parts.join(", ")));
    }
    let approvers = (r.tier == Tier::Approval).then(|| {
        let names: Vec<&str> = charter
            .authority
            .approvers(&r.id)
            .iter()
            .map(|p| &*p.id)
            .collect();
        (
            if names.is_empty() {
                "nobody (requests are denied at once)".to_owned()
            } else {
                names.join(", ")
            },
            r.approval.quorum,
        )
    });
    RuleView {
        id: r.id.to_string(),
        tier: r.tier.to_string(),
        tools: r.tools.join(", "),
        matchers,
        location: r.location().to_string(),
        description: r.description.clone().unwrap_or_default(),
        approvers,
    }
}

/// The charter page's content for `charter`.
pub fn view(charter: &CompiledCharter) -> CharterView {
    let tiers = [
        Tier::Prohibited,
        Tier::Approval,
        Tier::Preapproved,
        Tier::Autonomous,
    ]
    .iter()
    .map(|t| TierView {
        tier: t.to_string(),
        rules: charter
            .rules
            .iter()
            .filter(|r| r.tier == *t)
            .map(|r| rule_view(charter, r))
            .collect(),
    })
    .collect();
    let mut principals: Vec<PrincipalView> = charter
        .authority
        .principals
        .values()
        .map(|p| PrincipalView {
            id: p.id.to_string(),
            name: p.name.clone().unwrap_or_default(),
            roles: list(&p.roles),
            max_direct: p.max_direct.to_string(),
        })
        .collect();
    principals.sort_by(|a, b| a.id.cmp(&b.id));
    let mut roles: Vec<RoleView> = charter
        .authority
        .roles
        .values()
        .map(|r| RoleView {
            id: r.id.to_string(),
            direct: r.direct.to_string(),
            approve: r.approve_patterns.join(", "),
            location: r.location.to_string(),
        })
        .collect();
    roles.sort_by(|a, b| a.id.cmp(&b.id));
    CharterView {
        agent: format!("{} ({})", charter.identity.id, charter.identity.name),
        agent_id: charter.identity.id.clone(),
        hash: charter.hash.to_prefixed_hex(),
        files: charter
            .files
            .iter()
            .map(|f| &**f)
            .collect::<Vec<_>>()
            .join(", "),
        default_posture: match charter.default_posture {
            DefaultPosture::Ask => "ask (approval)",
            DefaultPosture::Deny => "deny",
        },
        separation_of_duties: charter.authority.separation_of_duties,
        tiers,
        principals,
        roles,
        labels: charter
            .data
            .labels
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}
