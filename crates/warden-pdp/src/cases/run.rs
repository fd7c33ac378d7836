//! Running one case: the decision as the gateway would take it, compared with what the case
//! expects.

use std::sync::Arc;

use time::OffsetDateTime;
use warden_charter::CompiledCharter;
use warden_core::{Reason, Tier, TrustedSource, Verdict};
use warden_provenance::{Limits, Origin, SessionProvenance};

use super::{Case, Expect, NOT_INVENTORIED, Outcome};
use crate::{Request, decide};

/// The session provenance of a case, as the gateway builds it: the task and instructions as
/// trusted text, then each result (numbered 1, 2, … in order) indexed under its untrusted
/// labels; content past the index's bound marks it incomplete.
fn provenance(charter: &CompiledCharter, case: &Case) -> Result<SessionProvenance, String> {
    let limits = Limits::default();
    let mut p = SessionProvenance::new(limits);
    let trusted = case.task.iter().map(|t| (t, TrustedSource::Task)).chain(
        case.instructions
            .iter()
            .map(|t| (t, TrustedSource::Instruction { seq: None })),
    );
    for (text, source) in trusted {
        p.add_trusted(text, source.clone())
            .map_err(|e| format!("{source}: {e}"))?;
    }
    let mut seq = 0u64;
    for r in &case.results {
        seq = seq.saturating_add(1);
        let untrusted: Vec<Arc<str>> = r
            .labels
            .iter()
            .filter(|l| charter.data.untrusted.contains(*l))
            .cloned()
            .collect();
        if untrusted.is_empty() {
            continue;
        }
        let mut end = r.content.len().min(limits.max_untrusted_bytes);
        while !r.content.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        p.add_untrusted(
            r.content.get(..end).unwrap_or_default(),
            Origin {
                seq,
                labels: untrusted,
            },
        );
        if end < r.content.len() {
            p.mark_incomplete();
        }
    }
    Ok(p)
}

/// Decides `case` against `charter` as the gateway would (a tool outside the inventory is
/// refused before any rule; otherwise [`decide`] with the case's state, at the case's `at` or
/// else `now`) and compares with what it expects.
pub fn run(charter: &CompiledCharter, case: &Case, now: OffsetDateTime) -> Outcome {
    let inventoried =
        charter.is_inventoried(&case.tool) || CompiledCharter::is_model_tool(&case.tool);
    let mut outcome = if !inventoried {
        Outcome {
            verdict: Verdict::Deny,
            tier: Tier::Prohibited,
            reason: NOT_INVENTORIED,
            rules: Vec::new(),
            decision: None,
            failures: Vec::new(),
        }
    } else {
        let provenance = match provenance(charter, case) {
            Ok(p) => p,
            Err(message) => {
                // Trusted text over its bound cannot be a session's: the case is wrong.
                return Outcome {
                    verdict: Verdict::Deny,
                    tier: Tier::Prohibited,
                    reason: Reason::EvaluationError.as_str(),
                    rules: Vec::new(),
                    decision: None,
                    failures: vec![format!(
                        "the session's trusted text cannot be built: {message}"
                    )],
                };
            }
        };
        let decision = decide(
            charter,
            &Request {
                tool: &case.tool,
                args: &case.args,
                principal: case.principal.as_deref(),
                labels: &case.labels,
                provenance: &provenance,
                controls: case.controls,
                usage: &case.usage,
                now: case.at.unwrap_or(now),
            },
        );
        Outcome {
            verdict: decision.verdict,
            tier: decision.tier,
            reason: decision.reason.as_str(),
            rules: decision.rules.clone(),
            decision: Some(decision),
            failures: Vec::new(),
        }
    };
    outcome.failures = compare(&case.expect, &outcome);
    outcome
}

/// Each difference between what was expected and what was reached.
fn compare(expect: &Expect, got: &Outcome) -> Vec<String> {
    let mut failures = Vec::new();
    if expect.verdict != got.verdict {
        failures.push(format!(
            "expected {}, got {} (tier {})",
            expect.verdict, got.verdict, got.tier
        ));
    }
    if let Some(tier) = expect.tier.filter(|t| *t != got.tier) {
        failures.push(format!("expected tier {tier}, got tier {}", got.tier));
    }
    if let Some(reason) = expect.reason.filter(|r| r.as_str() != got.reason) {
        failures.push(format!(
            "expected reason {}, got reason {}",
            reason.as_str(),
            got.reason
        ));
    }
    if let Some(rules) = &expect.rules {
        let mut ids: Vec<&str> = got.rules.iter().map(|r| &*r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids != rules.iter().map(String::as_str).collect::<Vec<_>>() {
            failures.push(format!(
                "expected rules [{}], got rules [{}]",
                rules.join(", "),
                ids.join(", ")
            ));
        }
    }
    failures
}
