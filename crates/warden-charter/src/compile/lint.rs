//! Warnings for a charter that compiles but probably does not say what its author meant:
//! conflicting, shadowed and unreachable rules, unclassified tools, approvals nobody can give.

use std::collections::{BTreeSet, HashMap};

use warden_core::Tier;

use super::rules::DEFAULT_RULE_ID;
use crate::compiled::{CompiledCharter, DefaultPosture, Rule};
use crate::diagnostic::{Diagnostic, Diagnostics};

/// Above this many rules for one tool, only the cheap checks run (identical conditions and
/// unconditional shadows), so `warden check` stays fast on generated charters.
const PAIRWISE_LIMIT: usize = 256;

pub(crate) fn lint(charter: &CompiledCharter) -> Diagnostics {
    let mut d = Diagnostics::default();
    let mut tools: Vec<&str> = charter.inventory.tools.keys().map(String::as_str).collect();
    tools.sort_unstable();
    // Which inventoried tools each rule can match.
    let mut rule_tools: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); charter.rules.len()];
    for tool in &tools {
        let candidates = charter.candidate_rules(tool);
        if candidates.is_empty() && !tool.ends_with(super::RESOURCE_READ_TOOL) {
            let server = charter
                .inventory
                .tools
                .get(*tool)
                .and_then(|i| charter.inventory.servers.get(*i));
            if let Some(server) = server {
                d.push(
                    Diagnostic::warning(
                        server.location.clone(),
                        format!("tool `{tool}` is classified by no rule; its calls fall to the default posture"),
                    )
                    .with_hint("add a rule for it, even `tier: approval`, so the intent is written down"),
                );
            }
        }
        for r in candidates.iter() {
            if let Some(set) = usize::try_from(*r).ok().and_then(|r| rule_tools.get_mut(r)) {
                set.insert(tool);
            }
        }
    }
    // Rules about the model proxy's provider-side actions reach those (implicit) tools; they
    // are never unclassified (unmatched, they are refused: see docs/models.md).
    for tool in crate::MODEL_TOOLS {
        for r in charter.candidate_rules(tool).iter() {
            if let Some(set) = usize::try_from(*r).ok().and_then(|r| rule_tools.get_mut(r)) {
                set.insert(tool);
            }
        }
    }
    for (rule, tools_of_rule) in charter.rules.iter().zip(&rule_tools) {
        unreachable(charter, rule, tools_of_rule.is_empty(), &mut d);
    }
    shadowing(charter, &tools, &rule_tools, &mut d);
    approvals(charter, &mut d);
    d
}

fn unreachable(charter: &CompiledCharter, rule: &Rule, no_tools: bool, d: &mut Diagnostics) {
    let at = rule.location().clone();
    if no_tools && !charter.inventory.tools.is_empty() {
        d.push(
            Diagnostic::warning(
                at.clone(),
                format!(
                    "rule `{}` can never match: its tool patterns match no inventoried tool",
                    rule.id
                ),
            )
            .with_hint(
                "tools are named `server.tool`; check the spelling against `inventory.servers`",
            ),
        );
    }
    if let Some(roles) = rule.principal.as_ref().and_then(|p| p.roles.as_ref()) {
        let held = charter
            .authority
            .principals
            .values()
            .any(|p| p.roles.iter().any(|r| roles.contains(r)));
        if !held && !charter.authority.principals.is_empty() {
            d.push(Diagnostic::warning(
                at.clone(),
                format!(
                    "rule `{}` can never match: no principal holds any of its roles",
                    rule.id
                ),
            ));
        }
    }
    if rule.tier == Tier::Preapproved && rule.scope.is_none() {
        d.push(
            Diagnostic::warning(
                at.clone(),
                format!(
                    "preapproved rule `{}` has no scope, so it acts as autonomous",
                    rule.id
                ),
            )
            .with_hint(
                "add `scope` (per_session, per_day, spend or expires) or make it autonomous",
            ),
        );
    }
}

/// Rule R is shadowed by S when S is stricter, covers every tool R covers, and each condition
/// of S is also a condition of R: whenever R matches, S matches and wins.
fn shadowing(
    charter: &CompiledCharter,
    tools: &[&str],
    rule_tools: &[BTreeSet<&str>],
    d: &mut Diagnostics,
) {
    let mut reported: BTreeSet<(usize, usize)> = BTreeSet::new();
    let covers = |s: usize, r: usize| -> bool {
        match (rule_tools.get(s), rule_tools.get(r)) {
            (Some(ts), Some(tr)) => !tr.is_empty() && tr.is_subset(ts),
            _ => false,
        }
    };
    // `approval.*` fingerprints are not conditions (they say what an approver may do), so
    // they never keep a stricter rule from shadowing.
    let conditions_subset = |s: &Rule, r: &Rule| {
        s.fingerprints
            .iter()
            .filter(|f| !f.starts_with("approval."))
            .all(|f| r.fingerprints.contains(f))
    };
    for tool in tools {
        let candidates = charter.candidate_rules(tool);
        let idx: Vec<usize> = candidates
            .iter()
            .filter_map(|r| usize::try_from(*r).ok())
            .collect();
        if idx.len() > PAIRWISE_LIMIT {
            // Cheap path: group identical conditions, and unconditional stricter rules.
            let mut groups: HashMap<&[String], Vec<usize>> = HashMap::new();
            for i in &idx {
                if let Some(rule) = charter.rules.get(*i) {
                    groups
                        .entry(rule.fingerprints.as_slice())
                        .or_default()
                        .push(*i);
                }
            }
            for members in groups.values() {
                for (a, b) in members.iter().zip(members.iter().skip(1)) {
                    compare(
                        charter,
                        *a,
                        *b,
                        &covers,
                        &conditions_subset,
                        &mut reported,
                        d,
                    );
                }
            }
            continue;
        }
        for (pos, a) in idx.iter().enumerate() {
            for b in idx.iter().skip(pos + 1) {
                compare(
                    charter,
                    *a,
                    *b,
                    &covers,
                    &conditions_subset,
                    &mut reported,
                    d,
                );
            }
        }
    }
}

fn compare(
    charter: &CompiledCharter,
    a: usize,
    b: usize,
    covers: &dyn Fn(usize, usize) -> bool,
    conditions_subset: &dyn Fn(&Rule, &Rule) -> bool,
    reported: &mut BTreeSet<(usize, usize)>,
    d: &mut Diagnostics,
) {
    let (Some(ra), Some(rb)) = (charter.rules.get(a), charter.rules.get(b)) else {
        return;
    };
    let key = (a.min(b), a.max(b));
    if reported.contains(&key) {
        return;
    }
    let same_conditions = ra.fingerprints == rb.fingerprints;
    let same_tools = covers(a, b) && covers(b, a);
    if same_conditions && same_tools {
        reported.insert(key);
        let (first, second) = if a < b { (ra, rb) } else { (rb, ra) };
        if ra.tier == rb.tier {
            d.push(Diagnostic::warning(
                second.location().clone(),
                format!(
                    "rule `{}` duplicates rule `{}` ({}): same tools, same conditions, same tier",
                    second.id,
                    first.id,
                    first.location()
                ),
            ));
        } else {
            let (strict, lax) = if ra.tier > rb.tier {
                (ra, rb)
            } else {
                (rb, ra)
            };
            d.push(
                Diagnostic::warning(
                    second.location().clone(),
                    format!(
                        "rules `{}` and `{}` conflict: they match the same actions with tiers `{}` and `{}`; `{}` always wins",
                        first.id, second.id, first.tier, second.tier, strict.id
                    ),
                )
                .with_hint(format!("remove or narrow `{}`", lax.id)),
            );
        }
        return;
    }
    for (s, r, si, ri) in [(ra, rb, a, b), (rb, ra, b, a)] {
        if s.tier > r.tier && covers(si, ri) && conditions_subset(s, r) {
            reported.insert(key);
            d.push(
                Diagnostic::warning(
                    r.location().clone(),
                    format!(
                        "rule `{}` is shadowed by the stricter rule `{}` ({}): whenever it matches, `{}` matches too and `{}` wins",
                        r.id,
                        s.id,
                        s.location(),
                        s.id,
                        s.tier
                    ),
                )
                .with_hint(format!("narrow `{}` or remove `{}`", s.id, r.id)),
            );
            return;
        }
    }
}

fn approvals(charter: &CompiledCharter, d: &mut Diagnostics) {
    if charter.authority.principals.is_empty() {
        return;
    }
    for rule in &charter.rules {
        if rule.tier == Tier::Prohibited {
            continue;
        }
        let approvers = charter.authority.approvers(&rule.id).len();
        // Autonomous and preapproved rules need approvers only under escalation; warn only
        // for rules whose tier is approval.
        if rule.tier == Tier::Approval {
            if approvers == 0 {
                d.push(
                    Diagnostic::warning(
                        rule.location().clone(),
                        format!("no principal may approve rule `{}`, so its actions always time out and are denied", rule.id),
                    )
                    .with_hint("list the rule in a role's `approve` and give the role to a principal"),
                );
            } else if usize::try_from(rule.approval.quorum).unwrap_or(usize::MAX) > approvers {
                d.push(Diagnostic::warning(
                    rule.location().clone(),
                    format!(
                        "rule `{}` needs a quorum of {} but only {approvers} principal(s) may approve it",
                        rule.id, rule.approval.quorum
                    ),
                ));
            }
        }
    }
    if charter.default_posture == DefaultPosture::Ask
        && charter.authority.approvers(DEFAULT_RULE_ID).is_empty()
    {
        let at = charter
            .rules
            .first()
            .map(|r| r.location().clone())
            .unwrap_or_else(|| warden_core::SourceLocation {
                file: charter
                    .files
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "<charter>".into()),
                line: 1,
                column: 1,
            });
        d.push(
            Diagnostic::warning(at, "no principal may approve actions under the default posture, so unmatched actions are always denied")
                .with_hint("add `default` to a role's `approve` list"),
        );
    }
}
