//! Delegation chains: a child session observed under its own agent's charter, intents
//! matched along the chain, alerts naming the chain, refused delegations counted as denials,
//! and the first charter's learning window untouched by another agent's charter.

use super::common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use warden_charter::{CompiledCharter, Source, compile};
use warden_observer::synth::Synth;
use warden_observer::{Action, Engine, Scope};

/// A charter for agent `id` with this `observer` section (indented by two spaces).
#[expect(
    clippy::expect_used,
    reason = "a test charter that does not compile fails the test"
)]
fn agent_charter(id: &str, observer: &str) -> Arc<CompiledCharter> {
    let text = format!(
        "version: 1\nidentity:\n  id: {id}\n  name: {id}\n  purpose: test\n  serves: tests\n\
         inventory:\n  servers:\n    - id: fs\n      command: [node, fs.js]\n      tools: [read_file, write_file]\n\
         actions:\n  rules:\n    - id: read\n      tool: fs.read_file\n      tier: autonomous\n\
         observer:\n{observer}"
    );
    let compiled = compile(&[Source::new("charter.yaml", &text)]);
    Arc::new(compiled.expect("the test charter compiles").charter)
}

const MISMATCH: &str = "  detectors:\n    - { id: mm, kind: intent_mismatch, threshold: 1, window: 5m, response: alert }\n";

/// The coordinator (`demo`, the first charter) and a worker whose own charter has the
/// intent-mismatch detector; the coordinator's charter has none.
fn engine() -> Engine {
    let mut engine = Engine::new(agent_charter("demo", "  detectors: []\n"));
    engine.set_agents([agent_charter("worker", MISMATCH)]);
    engine
}

#[test]
fn a_child_attempt_proposed_by_an_ancestor_is_no_mismatch() {
    let mut s = Synth::new(START_MS);
    s.open("root", "demo", "alice");
    s.turn("root", 100, &["read_file"]);
    s.delegate("child", "root", "worker", "demo", &[("root", "demo")]);
    s.action("child", "fs.read_file", json!({ "path": "/w/a" }), "allow");
    let out = run(&mut engine(), &s);
    assert!(out.is_empty(), "the coordinator proposed it: {out:#?}");
}

#[test]
fn a_child_attempt_nobody_along_the_chain_proposed_is_a_mismatch_naming_the_chain() {
    let mut s = Synth::new(START_MS);
    s.open("root", "demo", "alice");
    s.turn("root", 100, &["read_file"]);
    s.delegate("child", "root", "worker", "demo", &[("root", "demo")]);
    s.action("child", "fs.read_file", json!({ "path": "/w/a" }), "allow");
    let unproposed = s.action("child", "fs.write_file", json!({ "path": "/w/b" }), "allow");
    let out = run(&mut engine(), &s);
    assert_eq!(out.len(), 1, "{out:#?}");
    let (seq, r) = &out[0];
    assert_eq!(*seq, unproposed);
    assert_eq!(r.action, Action::Alert);
    assert_eq!(r.scope, Scope::Session("child".into()));
    assert_eq!(r.detector, "mm", "the worker's own detector");
    let sig = &r.signals[0];
    assert_eq!(sig.agent.as_deref(), Some("worker"));
    assert_eq!(
        sig.baseline["chain"],
        json!([{ "session": "root", "agent": "demo" }, { "session": "child", "agent": "worker" }])
    );
    assert!(
        sig.detail.ends_with("(delegated: demo -> worker)"),
        "{}",
        sig.detail
    );
}

#[test]
fn the_proposal_is_used_once_and_a_stale_one_does_not_cover_a_child() {
    let mut s = Synth::new(START_MS);
    s.open("root", "demo", "alice");
    s.turn("root", 100, &["read_file"]);
    s.delegate("child", "root", "worker", "demo", &[("root", "demo")]);
    s.action("child", "fs.read_file", json!({ "path": "/w/a" }), "allow");
    // One proposal, two reads: the second is unproposed.
    let second = s.action("child", "fs.read_file", json!({ "path": "/w/b" }), "allow");
    // A proposal older than the worker's window covers nothing.
    s.turn("root", 100, &["read_file"]);
    s.advance(6 * MIN);
    let late = s.action("child", "fs.read_file", json!({ "path": "/w/c" }), "allow");
    let out = run(&mut engine(), &s);
    let seqs: Vec<u64> = out.iter().map(|(q, _)| *q).collect();
    assert_eq!(seqs, vec![second, late], "{out:#?}");
}

#[test]
fn a_grandchild_is_matched_against_every_ancestor_and_observed_under_its_own_charter() {
    let mut engine = Engine::new(agent_charter("demo", "  detectors: []\n"));
    engine.set_agents([
        agent_charter("worker", "  detectors: []\n"),
        agent_charter("helper", MISMATCH),
    ]);
    let mut s = Synth::new(START_MS);
    s.open("root", "demo", "alice");
    s.turn("root", 100, &["write_file"]);
    s.delegate("mid", "root", "worker", "demo", &[("root", "demo")]);
    s.delegate(
        "leaf",
        "mid",
        "helper",
        "worker",
        &[("root", "demo"), ("mid", "worker")],
    );
    s.action("leaf", "fs.write_file", json!({ "path": "/w/a" }), "allow");
    let stray = s.action("leaf", "fs.read_file", json!({ "path": "/w/b" }), "allow");
    let out = run(&mut engine, &s);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].0, stray);
    let sig = &out[0].1.signals[0];
    assert!(
        sig.detail
            .ends_with("(delegated: demo -> worker -> helper)"),
        "{}",
        sig.detail
    );
}

#[test]
fn a_session_without_any_model_along_its_chain_is_not_judged() {
    let mut s = Synth::new(START_MS);
    s.open("root", "demo", "alice");
    s.delegate("child", "root", "worker", "demo", &[("root", "demo")]);
    for i in 0..5 {
        s.action(
            "child",
            "fs.read_file",
            json!({ "path": format!("/w/{i}") }),
            "allow",
        );
    }
    assert!(run(&mut engine(), &s).is_empty());
}

#[test]
fn repeated_refused_delegations_are_a_denial_storm_of_the_asking_session() {
    let c = agent_charter(
        "demo",
        "  detectors:\n    - { id: storm, kind: denial_storm, threshold: 3, window: 1m, response: alert }\n",
    );
    let mut s = Synth::new(START_MS);
    s.open("root", "demo", "alice");
    s.delegation_refused("root", "support", "demo", "not_permitted");
    s.delegation_refused("root", "support", "demo", "not_permitted");
    let third = s.delegation_refused("root", "worker", "demo", "depth");
    let out = run(&mut Engine::new(c), &s);
    assert_eq!(out.len(), 1, "{out:#?}");
    let (seq, r) = &out[0];
    assert_eq!(*seq, third);
    assert_eq!(r.scope, Scope::Session("root".into()));
    let sig = &r.signals[0];
    assert_eq!(sig.kind, "denial_storm");
    assert_eq!(sig.evidence.len(), 3);
    assert_eq!(sig.baseline["delegation"]["refusal"], "depth");
    assert!(sig.detail.contains("delegations refused"), "{}", sig.detail);
}

#[test]
fn a_refusal_for_a_session_never_seen_is_attributed_to_the_asking_agent() {
    let mut engine = Engine::new(agent_charter("demo", "  detectors: []\n"));
    engine.set_agents([agent_charter(
        "worker",
        "  detectors:\n    - { id: storm, kind: denial_storm, threshold: 1, window: 1m, response: alert }\n",
    )]);
    let mut s = Synth::new(START_MS);
    s.delegation_refused("unseen", "demo", "worker", "cycle");
    let out = run(&mut engine, &s);
    assert_eq!(out.len(), 1, "the worker's own detector answers: {out:#?}");
    assert_eq!(out[0].1.signals[0].agent.as_deref(), Some("worker"));
}

#[test]
fn another_agents_charter_loaded_does_not_start_the_learning_window() {
    let c = agent_charter(
        "demo",
        "  learning_window: 1h\n  detectors:\n    - { id: storm, kind: denial_storm, threshold: 1, window: 1m, response: conservative, alone: true }\n",
    );
    let mut s = Synth::new(START_MS);
    s.charter_loaded("blake3:aa");
    s.push(
        None,
        warden_audit::RecordKind::CharterLoaded,
        json!({ "charter": "blake3:bb", "agent": "worker", "files": ["w.yaml"], "rules": 1 }),
    );
    s.open("root", "demo", "alice");
    s.action("root", "fs.write_file", json!({}), "deny");
    let out = run(&mut Engine::new(c), &s);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].1.action, Action::Conservative, "not learning");
}

#[test]
fn malformed_delegation_payloads_never_panic_and_are_bounded() {
    let mut s = Synth::new(START_MS);
    let long = "x".repeat(100_000);
    let chain: Vec<_> = (0..1000)
        .map(|i| json!({ "session": format!("s{i}"), "agent": long }))
        .collect();
    for payload in [
        json!(null),
        json!({ "agent": 7, "chain": "no" }),
        json!({ "agent": long, "chain": chain }),
        json!({ "chain": [{ "session": 1 }, null, []] }),
    ] {
        s.push(
            Some("child"),
            warden_audit::RecordKind::SessionDelegated,
            payload.clone(),
        );
        s.push(
            Some("child"),
            warden_audit::RecordKind::DelegationRefused,
            payload,
        );
    }
    s.action("child", "fs.read_file", json!({}), "allow");
    let mut e = engine();
    let _ = run(&mut e, &s);
    let state = serde_json::to_value(e.state()).unwrap();
    let kept = state["sessions"]["child"]["chain"].as_array().unwrap();
    assert!(kept.len() <= 16, "{}", kept.len());
    assert!(
        kept.iter()
            .all(|l| l["agent"].as_str().unwrap().len() <= 256)
    );
}
