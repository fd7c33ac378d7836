//! Property tests of the decision: the strictest tier wins whatever the rule order, and no
//! generated error ever yields an allow.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use std::fmt::Write as _;

use proptest::prelude::*;
use time::OffsetDateTime;
use warden_charter::{CompiledCharter, Source, compile};
use warden_core::Verdict;
use warden_pdp::{Controls, NoScopeUsage, Request, decide};

const TIERS: [&str; 4] = ["autonomous", "preapproved", "approval", "prohibited"];

/// One generated rule: a tier and a constraint on the argument `v` (or none).
#[derive(Debug, Clone)]
struct GenRule {
    tier: usize,
    constraint: usize,
}

/// Constraints of every matcher kind, each of which fails on some argument types.
const CONSTRAINTS: [&str; 10] = [
    "",
    "args: { v: { glob: '/ws/**' } }",
    "args: { v: { not: { glob: '/ws/**' } } }",
    "args: { v: { min: 0, max: 10.5 } }",
    "args: { v: { regex: '[a-z]+' } }",
    "args: { v: { one_of: [a, 1, true] } }",
    "args: { v: { sql: read_only } }",
    "args: { v: { host: ['*.example.com'] } }",
    "args: { v: { prefix: '/ws' } }",
    "when: 'args.v > 3'",
];

fn charter_text(rules: &[GenRule]) -> String {
    let mut s = String::from(
        "version: 1\nidentity: { id: t, name: T, purpose: p, serves: s }\ninventory:\n  servers:\n    - { id: s, command: [x], tools: [t] }\nactions:\n  rules:\n",
    );
    for (i, r) in rules.iter().enumerate() {
        let tier = TIERS[r.tier];
        let _ = writeln!(s, "    - id: r{i}\n      tool: s.t\n      tier: {tier}");
        if tier == "preapproved" {
            s.push_str("      scope: { per_session: 1000 }\n");
        }
        let c = CONSTRAINTS[r.constraint];
        if !c.is_empty() {
            let _ = writeln!(s, "      {c}");
        }
    }
    s
}

fn build(rules: &[GenRule]) -> CompiledCharter {
    compile(&[Source::new("gen.yaml", charter_text(rules))])
        .unwrap_or_else(|d| panic!("{d}\n{}", charter_text(rules)))
        .charter
}

fn value_strategy() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-20.0f64..20.0).prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "/ws/a",
            "/ws/../etc",
            "/etc/passwd",
            "/ws/%2e%2e/x",
            "abc",
            "a",
            "SELECT 1",
            "DELETE FROM t",
            "https://api.example.com/",
            "https://example.com",
            "not sql (",
            "/ws/\u{FF0E}\u{FF0E}/x",
            "5",
            "1e3",
        ])
        .prop_map(serde_json::Value::from),
        prop::collection::vec(
            prop_oneof![
                Just(serde_json::Value::from("/ws/a")),
                Just(serde_json::Value::from("/etc")),
                any::<i32>().prop_map(serde_json::Value::from)
            ],
            0..4
        )
        .prop_map(serde_json::Value::Array),
        Just(serde_json::json!({"nested": 1})),
    ]
}

fn rules_strategy() -> impl Strategy<Value = Vec<GenRule>> {
    prop::collection::vec(
        (0..TIERS.len(), 0..CONSTRAINTS.len())
            .prop_map(|(tier, constraint)| GenRule { tier, constraint }),
        1..8,
    )
}

fn decide_v(charter: &CompiledCharter, v: &serde_json::Value) -> warden_core::Decision {
    let args = serde_json::json!({ "v": v });
    decide(
        charter,
        &Request {
            tool: "s.t",
            args: &args,
            principal: None,
            labels: &[],
            provenance: warden_provenance::SessionProvenance::empty(),
            controls: Controls::default(),
            usage: &NoScopeUsage,
            now: OffsetDateTime::UNIX_EPOCH,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Reversing or rotating the rules never changes the verdict, the tier or the set of
    /// determining rules.
    #[test]
    fn strictest_wins_whatever_the_order(rules in rules_strategy(), v in value_strategy(), rot in 0usize..8) {
        let forward = build(&rules);
        let mut reordered: Vec<(usize, GenRule)> = rules.iter().cloned().enumerate().collect();
        reordered.reverse();
        let len = reordered.len();
        reordered.rotate_left(rot % len);
        // Keep the original ids so determining rules compare by id.
        let mut text = charter_text(&[]);
        for (i, r) in &reordered {
            let one = charter_text(std::slice::from_ref(r));
            let body = one.split_once("  rules:\n").unwrap().1.replacen("id: r0", &format!("id: r{i}"), 1);
            text.push_str(&body);
        }
        let shuffled = compile(&[Source::new("gen.yaml", text)]).unwrap().charter;
        let a = decide_v(&forward, &v);
        let b = decide_v(&shuffled, &v);
        prop_assert_eq!(a.verdict, b.verdict);
        prop_assert_eq!(a.tier, b.tier);
        prop_assert_eq!(a.reason, b.reason);
        let ids = |d: &warden_core::Decision| {
            let mut v: Vec<String> = d.rules.iter().map(|r| r.id.to_string()).collect();
            v.sort();
            v
        };
        prop_assert_eq!(ids(&a), ids(&b));
    }

    /// If any restrictive rule, decided alone, matches or errors, the full charter never
    /// allows; and an evaluation error always denies.
    #[test]
    fn no_error_ever_yields_an_allow(rules in rules_strategy(), v in value_strategy()) {
        let full = decide_v(&build(&rules), &v);
        if full.reason == warden_core::Reason::EvaluationError {
            prop_assert_eq!(full.verdict, Verdict::Deny);
        }
        for r in rules.iter().filter(|r| r.tier >= 2) {
            let alone = decide_v(&build(std::slice::from_ref(r)), &v);
            let restrictive_hit = !alone.rules.is_empty();
            if restrictive_hit {
                prop_assert_ne!(full.verdict, Verdict::Allow, "rule {:?} hit alone: {}", r, alone.summary());
                if alone.verdict == Verdict::Deny {
                    prop_assert_eq!(full.verdict, Verdict::Deny);
                }
            }
        }
        // The outcome tier is never below the strictest rule that matched alone.
        let strictest_alone = rules
            .iter()
            .map(|r| decide_v(&build(std::slice::from_ref(r)), &v))
            .filter(|d| !d.rules.is_empty())
            .map(|d| d.tier)
            .max();
        if let Some(t) = strictest_alone {
            prop_assert!(full.tier >= t, "full {} below {t}", full.summary());
        }
    }
}
