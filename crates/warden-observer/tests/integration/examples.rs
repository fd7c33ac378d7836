//! Each example charter's observer section against a benign, varied workload (false
//! positives counted and asserted), and arbitrary records (never a panic).

use super::common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use warden_audit::{Record, RecordKind};
use warden_charter::CompiledCharter;
use warden_observer::synth::{Rng, Synth};
use warden_observer::{Action, Engine};

/// Three days of history, then four days of benign work that now and then opens a directory
/// (or a resource) the agent has not touched before, with a denial now and then.
fn benign_run(
    c: Arc<CompiledCharter>,
    agent: &str,
    dirs: &[&str],
    tools: &[&str],
) -> (usize, usize, usize) {
    let mut rng = Rng::new(42);
    let mut s = Synth::new(START_MS);
    s.charter_loaded(&c.hash.to_prefixed_hex());
    for _ in 0..72 {
        s.benign(&mut rng, agent, 2, dirs, tools);
        s.advance(HOUR / 2);
    }
    let history = s.records.len();
    for day in 0..4 {
        let fresh = format!("/workspace/feature-{day}");
        let mut today: Vec<&str> = dirs.to_vec();
        today.push(&fresh);
        for _ in 0..24 {
            s.benign(&mut rng, agent, 2, &today, tools);
            s.advance(HOUR / 2);
        }
    }
    let out = run(&mut Engine::new(c), &s);
    let acts = interventions(&out);
    assert!(
        acts.is_empty(),
        "a benign run must not be intervened in: {acts:#?}"
    );
    let alerts = out
        .iter()
        .filter(|(_, r)| r.action == Action::Alert)
        .count();
    (s.records.len() - history, alerts, acts.len())
}

#[test]
fn coding_agent_benign_run_is_never_intervened_in() {
    let (records, alerts, acts) = benign_run(
        example("coding-agent/charter.yaml"),
        "coding-agent",
        &[
            "/workspace/src",
            "/workspace/docs",
            "/workspace/tests",
            "/workspace/.github",
        ],
        &[
            "fs.read_file",
            "fs.write_file",
            "fs.list_directory",
            "git.status",
        ],
    );
    assert!(records > 5_000, "{records}");
    assert_eq!(
        (alerts, acts),
        (1, 0),
        "false positives over {records} records"
    );
}

#[test]
fn customer_support_benign_run_is_never_intervened_in() {
    let (records, alerts, acts) = benign_run(
        example("customer-support/charter.yaml"),
        "support-agent",
        &[
            "/srv/support/kb",
            "/srv/support/macros",
            "/srv/support/drafts",
        ],
        &[
            "fs.read_text_file",
            "crm.get_ticket",
            "email.get_thread",
            "crm.update_ticket",
        ],
    );
    assert!(records > 5_000, "{records}");
    assert_eq!(
        (alerts, acts),
        (0, 0),
        "false positives over {records} records"
    );
}

#[test]
fn finance_ops_benign_run_is_never_intervened_in() {
    let (records, alerts, acts) = benign_run(
        example("finance-ops"),
        "finance-ops",
        &["/srv/finance/invoices", "/srv/finance/orders"],
        &[
            "payments.list_invoices",
            "payments.get_invoice",
            "erp.get_purchase_order",
            "erp.match_invoice",
        ],
    );
    assert!(records > 5_000, "{records}");
    assert_eq!(
        (alerts, acts),
        (2, 0),
        "false positives over {records} records"
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("deny"),
            Just("fs.read_file"),
            Just("/a/b/c"),
            Just("https://h.example/x"),
            Just("select * from t")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("tool".to_owned()),
                    Just("arguments".to_owned()),
                    Just("path".to_owned()),
                    Just("decision".to_owned()),
                    Just("verdict".to_owned()),
                    Just("labels".to_owned()),
                    Just("usage".to_owned()),
                    Just("input_tokens".to_owned()),
                    Just("agent".to_owned()),
                    Just("charter".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The coding-agent charter (all seven detector kinds, correlation, escalation), compiled once.
static CODING: std::sync::LazyLock<Arc<CompiledCharter>> =
    std::sync::LazyLock::new(|| example("coding-agent/charter.yaml"));

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary payloads, kinds, sessions, times and sequence jumps never panic the engine.
    #[test]
    fn arbitrary_records_never_panic(
        recs in prop::collection::vec(
            (0..RecordKind::ALL.len(), prop::option::of("[a-c]{1,2}"), json_value(), -5i64..5_000_000_000, 0u64..3),
            1..40,
        ),
        detail in ".{0,64}",
    ) {
        let mut engine = Engine::new(CODING.clone());
        let mut seq = 0u64;
        let mut ms = START_MS;
        for (k, session, payload, dt, jump) in recs {
            seq += 1 + jump;
            ms += dt;
            let record = Record {
                seq,
                time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                session,
                kind: RecordKind::ALL[k],
                payload,
                prev_hash: [0; 32],
                hash: [0; 32],
            };
            for r in engine.ingest(&record) {
                prop_assert!(r.evidence.len() <= 1000);
                prop_assert!(r.reason.len() <= 1024);
            }
        }
        let _ = engine.chain_broken(seq, &detail);
        let state = serde_json::to_string(&engine.state()).unwrap();
        let back: warden_observer::EngineState = serde_json::from_str(&state).unwrap();
        prop_assert_eq!(back, engine.state());
    }
}
