//! The decision.

use warden_charter::amount::Amount;
use warden_charter::{ApprovalSettings, CompiledCharter, DefaultPosture, Principal, Rule};
use warden_core::{ApprovalSpec, Decision, Posture, Reason, RuleRef, Tier, Verdict};

use crate::Request;
use crate::eval::{RuleMatch, eval_rule};
use crate::provenance::explain;
use crate::request::lookup;

/// Decides one action. Never panics and never turns an error into an allow: every error
/// yields [`Verdict::Deny`] with [`Reason::EvaluationError`].
pub fn decide(charter: &CompiledCharter, req: &Request<'_>) -> Decision {
    let d = Draft { charter, req };
    let controls = req.controls;
    if controls.session_revoked {
        return d.deny(Reason::SessionRevoked, None, Vec::new());
    }
    if controls.posture == Posture::Frozen {
        return d.deny(Reason::PostureFrozen, None, Vec::new());
    }
    if controls.tool_frozen {
        return d.deny(
            Reason::ToolFrozen,
            Some(format!("tool `{}` is frozen", req.tool)),
            Vec::new(),
        );
    }
    let principal = match req.principal {
        None => None,
        Some(id) => match charter.authority.principal(id) {
            Some(p) => Some(p),
            None => {
                return d.error(
                    format!("principal `{id}` is not in the charter"),
                    Vec::new(),
                );
            }
        },
    };
    if !(req.args.is_object() || req.args.is_null()) {
        return d.error("arguments must be a JSON object".to_owned(), Vec::new());
    }

    // Candidates come from the tool index, most strict tier first: once a rule matched,
    // rules of a lower tier cannot change the outcome and are not evaluated.
    let candidates = charter.candidate_rules(req.tool);
    let mut best: Option<Tier> = None;
    let mut matched: Vec<&Rule> = Vec::new();
    let mut failed: Vec<&Rule> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for index in candidates.iter() {
        let Some(rule) = usize::try_from(*index)
            .ok()
            .and_then(|i| charter.rules.get(i))
        else {
            return d.error(format!("rule index {index} is out of range"), Vec::new());
        };
        if best.is_some_and(|b| rule.tier < b) {
            continue;
        }
        match eval_rule(charter, rule, req, principal) {
            RuleMatch::Match => {
                if best.is_none_or(|b| rule.tier > b) {
                    best = Some(rule.tier);
                    matched.clear();
                }
                matched.push(rule);
            }
            RuleMatch::NoMatch => {}
            RuleMatch::Error(e) => {
                if rule.tier.is_restrictive() {
                    failed.push(rule);
                }
                errors.push(format!("rule `{}`: {e}", rule.id));
            }
        }
    }
    if !failed.is_empty() {
        let refs = failed.iter().map(|r| r.reference.clone()).collect();
        return Decision {
            errors,
            provenance: explain(&failed, req.args, req.provenance),
            ..d.error_decision(refs)
        };
    }
    let Some(tier) = best else {
        return match charter.default_posture {
            DefaultPosture::Ask => d.finish(
                Tier::Approval,
                Reason::DefaultPosture,
                None,
                Vec::new(),
                errors,
                Some(charter.default_approval),
                principal,
            ),
            DefaultPosture::Deny => Decision {
                errors,
                ..d.deny(
                    Reason::DefaultPosture,
                    Some("the default posture is `deny`".to_owned()),
                    Vec::new(),
                )
            },
        };
    };
    let refs: Vec<RuleRef> = matched.iter().map(|r| r.reference.clone()).collect();
    let approval = combined_approval(&matched);
    let decision = decide_matched(&d, &matched, tier, refs, errors, approval, principal);
    Decision {
        provenance: explain(&matched, req.args, req.provenance),
        ..decision
    }
}

/// The decision of the matched rules (all of tier `tier`): the preapproved scope, then the
/// principal's authority and the posture.
fn decide_matched(
    d: &Draft<'_, '_>,
    matched: &[&Rule],
    tier: Tier,
    refs: Vec<RuleRef>,
    mut errors: Vec<String>,
    approval: Option<ApprovalSettings>,
    principal: Option<&Principal>,
) -> Decision {
    let req = d.req;
    if tier == Tier::Preapproved {
        match scope_check(matched, req) {
            Ok(None) => {}
            Ok(Some(detail)) => {
                return d.finish(
                    Tier::Approval,
                    Reason::ScopeExceeded,
                    Some(detail),
                    refs,
                    errors,
                    approval,
                    principal,
                );
            }
            Err(e) => {
                errors.push(e);
                return Decision {
                    errors,
                    ..d.error_decision(refs)
                };
            }
        }
    }
    d.finish(tier, Reason::Rule, None, refs, errors, approval, principal)
}

struct Draft<'c, 'r> {
    charter: &'c CompiledCharter,
    req: &'r Request<'r>,
}

impl Draft<'_, '_> {
    fn deny(&self, reason: Reason, detail: Option<String>, rules: Vec<RuleRef>) -> Decision {
        Decision {
            tier: Tier::Prohibited,
            verdict: Verdict::Deny,
            reason,
            detail,
            rules,
            posture: self.req.controls.posture,
            charter: self.charter.hash,
            errors: Vec::new(),
            approval: None,
            provenance: Vec::new(),
        }
    }

    fn error(&self, message: String, rules: Vec<RuleRef>) -> Decision {
        Decision {
            errors: vec![message],
            ..self.error_decision(rules)
        }
    }

    fn error_decision(&self, rules: Vec<RuleRef>) -> Decision {
        self.deny(Reason::EvaluationError, None, rules)
    }

    /// Applies the principal's authority and the conservative posture, then sets the verdict.
    #[expect(
        clippy::too_many_arguments,
        reason = "one place assembles every decision"
    )]
    fn finish(
        &self,
        mut tier: Tier,
        mut reason: Reason,
        mut detail: Option<String>,
        rules: Vec<RuleRef>,
        errors: Vec<String>,
        approval: Option<ApprovalSettings>,
        principal: Option<&Principal>,
    ) -> Decision {
        if tier <= Tier::Preapproved {
            if let Some(p) = principal.filter(|p| tier > p.max_direct) {
                detail = Some(format!(
                    "principal `{}` may direct up to `{}`, and this action is `{tier}`",
                    p.id, p.max_direct
                ));
                tier = Tier::Approval;
                reason = Reason::PrincipalAuthority;
            } else if self.req.controls.posture == Posture::Conservative {
                tier = Tier::Approval;
                reason = Reason::ConservativePosture;
            }
        }
        let verdict = match tier {
            Tier::Autonomous | Tier::Preapproved => Verdict::Allow,
            Tier::Approval => Verdict::Ask,
            Tier::Prohibited => Verdict::Deny,
        };
        let approval = (verdict == Verdict::Ask).then(|| {
            let a = approval.unwrap_or(self.charter.default_approval);
            ApprovalSpec {
                timeout_seconds: a.timeout.as_secs(),
                quorum: a.quorum,
            }
        });
        Decision {
            tier,
            verdict,
            reason,
            detail,
            rules,
            posture: self.req.controls.posture,
            charter: self.charter.hash,
            errors,
            approval,
            provenance: Vec::new(),
        }
    }
}

/// The strictest approval settings of the determining rules: the shortest timeout and the
/// largest quorum.
fn combined_approval(rules: &[&Rule]) -> Option<ApprovalSettings> {
    rules
        .iter()
        .map(|r| r.approval)
        .reduce(|a, b| ApprovalSettings {
            timeout: a.timeout.min(b.timeout),
            quorum: a.quorum.max(b.quorum),
        })
}

/// Checks every determining preapproved rule's scope. `Ok(Some(why))` when one is exceeded;
/// `Err` when the spend argument cannot be read (which denies).
fn scope_check(rules: &[&Rule], req: &Request<'_>) -> Result<Option<String>, String> {
    for rule in rules {
        let Some(scope) = &rule.scope else {
            continue;
        };
        let id = &rule.id;
        if let Some(expires) = scope.expires
            && req.now >= expires
        {
            let at = warden_core::text::rfc3339(expires);
            return Ok(Some(format!("the preapproval of `{id}` expired at {at}")));
        }
        let used = req.usage.rule(id);
        if let Some(limit) = scope.per_session
            && used.session_count >= limit
        {
            return Ok(Some(format!(
                "`{id}` allows {limit} use(s) per session, all used"
            )));
        }
        if let Some(limit) = scope.per_day
            && used.day_count >= limit
        {
            return Ok(Some(format!(
                "`{id}` allows {limit} use(s) per day, all used"
            )));
        }
        if let Some(spend) = &scope.spend {
            let value = lookup(req.args, &spend.path).ok_or_else(|| {
                format!(
                    "rule `{id}`: spend argument `{}` is missing",
                    spend.argument
                )
            })?;
            let amount = Amount::from_json(value)
                .map_err(|e| format!("rule `{id}`: spend argument `{}`: {e}", spend.argument))?;
            if amount.is_negative() {
                return Err(format!(
                    "rule `{id}`: spend argument `{}` is negative",
                    spend.argument
                ));
            }
            for (limit, so_far, window) in [
                (spend.per_session, used.session_spend, "session"),
                (spend.per_day, used.day_spend, "day"),
            ] {
                let Some(limit) = limit else { continue };
                let total = so_far
                    .checked_add(amount)
                    .ok_or_else(|| format!("rule `{id}`: spend overflows"))?;
                if total > limit {
                    return Ok(Some(format!(
                        "`{id}` allows a spend of {limit} per {window}; {so_far} spent, {amount} asked"
                    )));
                }
            }
        }
    }
    Ok(None)
}
