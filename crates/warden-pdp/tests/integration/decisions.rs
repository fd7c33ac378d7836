//! Table-driven decision tests: every `fixtures/decisions/*.yaml` holds a charter and cases,
//! each with the expected verdict, tier, reason and determining rules.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warden_charter::amount::Amount;
use warden_charter::{Source, compile};
use warden_core::Posture;
use warden_pdp::{Controls, Request, RuleUsage, decide};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    charter: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    tool: String,
    #[serde(default)]
    args: serde_json::Value,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    posture: Option<String>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    frozen: bool,
    #[serde(default)]
    usage: HashMap<String, UsageCase>,
    #[serde(default)]
    at: Option<String>,
    expect: Expect,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UsageCase {
    #[serde(default)]
    session_count: u32,
    #[serde(default)]
    day_count: u32,
    #[serde(default)]
    session_spend: Option<String>,
    #[serde(default)]
    day_spend: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    verdict: String,
    tier: String,
    #[serde(default)]
    reason: Option<String>,
    rules: Vec<String>,
    #[serde(default)]
    quorum: Option<u32>,
    #[serde(default)]
    error_contains: Option<String>,
}

fn run_fixture(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let fixture: Fixture =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let compiled = compile(&[Source::new(name.as_str(), fixture.charter)])
        .unwrap_or_else(|d| panic!("{name}: charter does not compile:\n{d}"));
    let charter = compiled.charter;
    let mut failures = Vec::new();
    for case in &fixture.cases {
        let labels: Vec<Arc<str>> = case.labels.iter().map(|l| Arc::from(l.as_str())).collect();
        let usage: HashMap<String, RuleUsage> = case
            .usage
            .iter()
            .map(|(k, u)| {
                let amount = |s: &Option<String>| {
                    s.as_deref()
                        .map_or(Amount::ZERO, |s| Amount::parse(s).unwrap())
                };
                (
                    k.clone(),
                    RuleUsage {
                        session_count: u.session_count,
                        day_count: u.day_count,
                        session_spend: amount(&u.session_spend),
                        day_spend: amount(&u.day_spend),
                    },
                )
            })
            .collect();
        let posture = match case.posture.as_deref() {
            None | Some("normal") => Posture::Normal,
            Some("conservative") => Posture::Conservative,
            Some("frozen") => Posture::Frozen,
            Some(other) => panic!("{name}: unknown posture {other}"),
        };
        let now = case.at.as_deref().map_or_else(
            || OffsetDateTime::parse("2026-11-21T12:00:00Z", &Rfc3339).unwrap(),
            |t| OffsetDateTime::parse(t, &Rfc3339).unwrap(),
        );
        let args = if case.args.is_null() {
            serde_json::json!({})
        } else {
            case.args.clone()
        };
        let decision = decide(
            &charter,
            &Request {
                tool: &case.tool,
                args: &args,
                principal: case.user.as_deref(),
                labels: &labels,
                provenance: warden_provenance::SessionProvenance::empty(),
                controls: Controls {
                    posture,
                    session_revoked: case.revoked,
                    tool_frozen: case.frozen,
                },
                usage: &usage,
                now,
            },
        );
        let rules: Vec<&str> = decision.rules.iter().map(|r| &*r.id).collect();
        let mut wrong = Vec::new();
        if decision.verdict.as_str() != case.expect.verdict {
            wrong.push(format!(
                "verdict {} (expected {})",
                decision.verdict, case.expect.verdict
            ));
        }
        if decision.tier.as_str() != case.expect.tier {
            wrong.push(format!(
                "tier {} (expected {})",
                decision.tier, case.expect.tier
            ));
        }
        if let Some(reason) = &case.expect.reason
            && decision.reason.as_str() != reason
        {
            wrong.push(format!("reason {} (expected {reason})", decision.reason));
        }
        let mut got = rules.clone();
        got.sort_unstable();
        let mut want: Vec<&str> = case.expect.rules.iter().map(String::as_str).collect();
        want.sort_unstable();
        if got != want {
            wrong.push(format!("rules {got:?} (expected {want:?})"));
        }
        if let Some(q) = case.expect.quorum
            && decision.approval.as_ref().map(|a| a.quorum) != Some(q)
        {
            wrong.push(format!(
                "approval {:?} (expected quorum {q})",
                decision.approval
            ));
        }
        if let Some(text) = &case.expect.error_contains {
            let all = format!("{:?} {:?}", decision.errors, decision.detail);
            if !all.contains(text.as_str()) {
                wrong.push(format!(
                    "errors/detail {all} (expected to contain {text:?})"
                ));
            }
        }
        // Invariants that hold for every decision.
        if decision.reason == warden_core::Reason::EvaluationError
            && decision.verdict != warden_core::Verdict::Deny
        {
            wrong.push("an evaluation error did not deny".to_owned());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{name}: case `{}`: {}\n    {}",
                case.name,
                wrong.join("; "),
                decision.summary()
            ));
        }
    }
    assert!(!fixture.cases.is_empty(), "{name} has no cases");
    failures
}

#[test]
fn decision_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decisions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 6,
        "expected the decision fixtures in {}",
        dir.display()
    );
    let failures: Vec<String> = files.iter().flat_map(|f| run_fixture(f)).collect();
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
