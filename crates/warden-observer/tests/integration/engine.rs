//! The engine: each detector, correlation, escalation, the learning window, the design
//! scenario, determinism and the state round-trip.

use super::common;

use common::*;
use serde_json::json;
use warden_observer::synth::Synth;
use warden_observer::{Action, Engine, EngineState, MAX_EVIDENCE, Scope};

/// The design scenario: one `model_intent` proposing `read_file`, then reads in a directory
/// never touched before, fast: the burst, the rate and the unproposed reads agree →
/// `conservative` on that session, out of the ingest of the 15th read, before the 16th is
/// decided.
#[test]
fn design_scenario_conservative_on_the_session_before_the_16th_read() {
    let mut s = Synth::new(START_MS);
    history(&mut s, 1);
    s.advance(HOUR);
    s.open("s-x", "demo", "alice");
    s.turn("s-x", 2000, &["read_file"]);
    let mut reads = Vec::new();
    for i in 0..16 {
        s.advance(1_500);
        reads.push(s.action(
            "s-x",
            "fs.read_file",
            json!({ "path": format!("/home/ops/.ssh/k{i}") }),
            "allow",
        ));
    }
    let mut engine = Engine::new(charter(CORRELATED));
    let out = run(&mut engine, &s);
    let acts = interventions(&out);
    assert_eq!(acts.len(), 1, "{acts:#?}");
    let (seq, r) = acts[0];
    assert_eq!(*seq, reads[14], "out of the 15th read's ingest");
    assert!(*seq < reads[15]);
    assert_eq!(r.action, Action::Conservative);
    assert_eq!(r.scope, Scope::Session("s-x".into()));
    assert_eq!(r.detector, "exploring");
    let kinds: Vec<_> = r.signals.iter().map(|x| x.kind.as_str()).collect();
    assert!(kinds.contains(&"new_resource_burst"), "{kinds:?}");
    assert!(kinds.len() >= 2);
    assert!(r.evidence.contains(&reads[14]) && r.evidence.contains(&reads[0]));
    assert!(r.reason.starts_with("observer: "), "{}", r.reason);
    let burst = r
        .signals
        .iter()
        .find(|x| x.kind == "new_resource_burst")
        .unwrap();
    assert_eq!(burst.baseline["threshold"], 15.0);
    assert_eq!(burst.evidence.len(), 15);
    // Before it, only alerts (the detectors that may not act alone), none about history.
    assert!(
        out.iter()
            .all(|(q, r)| r.action == Action::Alert || *q == reads[14])
    );
    let early: Vec<_> = out
        .iter()
        .filter(|(q, _)| *q < reads[0])
        .map(|(q, r)| (q, &r.detector, &r.reason))
        .collect();
    assert!(
        early.is_empty(),
        "false positives in the history: {early:#?}"
    );
}

/// `alone: false`: one detector's signal only alerts; a second agreeing one acts.
#[test]
fn one_signal_alone_does_not_act_two_agreeing_do() {
    let mut s = Synth::new(START_MS);
    history(&mut s, 2);
    s.advance(HOUR);
    s.open("s-slow", "demo", "alice");
    for i in 0..16 {
        // A burst in a new directory, slowly (no rate signal) and each read proposed.
        s.advance(17_000);
        s.turn("s-slow", 2000, &["read_file"]);
        s.action(
            "s-slow",
            "fs.read_file",
            json!({ "path": format!("/srv/new/{i}") }),
            "allow",
        );
    }
    let mut engine = Engine::new(charter(CORRELATED));
    let out = run(&mut engine, &s);
    assert!(interventions(&out).is_empty(), "{out:#?}");
    let alerts: Vec<_> = out.iter().filter(|(_, r)| r.detector == "burst").collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].1.scope, Scope::Session("s-slow".into()));
}

#[test]
fn a_detector_that_may_act_alone_acts_and_freezes_the_tool() {
    let c = charter(
        "  detectors:\n    - { id: leak, kind: sensitive_then_send, labels: [secret], tools: [web.*], response: freeze_tool }\n",
    );
    let mut s = Synth::new(START_MS);
    s.open("s1", "demo", "alice");
    s.action(
        "s1",
        "web.fetch",
        json!({ "url": "https://example.com/a" }),
        "allow",
    );
    let label = s.labels("s1", &["secret"]);
    let send = s.action(
        "s1",
        "web.fetch",
        json!({ "url": "https://paste.example/x" }),
        "allow",
    );
    let out = run(&mut Engine::new(c), &s);
    assert_eq!(out.len(), 1, "{out:#?}");
    let (seq, r) = &out[0];
    assert_eq!(*seq, send);
    assert_eq!(
        (r.action, r.tool.as_deref()),
        (Action::FreezeTool, Some("web.fetch"))
    );
    assert_eq!(r.evidence, vec![label, send]);
}

#[test]
fn escalation_goes_one_step_at_a_time_up_to_the_ceiling_and_resets_after_the_window() {
    let c = charter(
        "  escalate_within: 30m\n  ceiling: revoke_session\n  detectors:\n    - { id: leak, kind: sensitive_then_send, labels: [secret], tools: [web.fetch], response: conservative }\n",
    );
    let mut s = Synth::new(START_MS);
    s.open("s1", "demo", "alice");
    s.labels("s1", &["secret"]);
    for gap in [0, MIN, MIN, MIN, 31 * MIN] {
        s.advance(gap);
        s.action(
            "s1",
            "web.fetch",
            json!({ "url": "https://x.example/" }),
            "allow",
        );
    }
    let out = run(&mut Engine::new(c), &s);
    let actions: Vec<_> = out.iter().map(|(_, r)| r.action).collect();
    assert_eq!(
        actions,
        [
            Action::Conservative,
            Action::FreezeTool,
            Action::RevokeSession,
            Action::RevokeSession,
            Action::Conservative
        ]
    );
    assert_eq!(out[1].1.tool.as_deref(), Some("web.fetch"));
}

#[test]
fn escalation_without_a_tool_skips_freeze_tool() {
    let c = charter(
        "  escalate_within: 30m\n  ceiling: frozen\n  detectors:\n    - { id: storm, kind: denial_storm, threshold: 3, window: 10m, response: conservative, alone: true }\n",
    );
    let mut s = Synth::new(START_MS);
    s.open("s1", "demo", "alice");
    for _ in 0..12 {
        s.advance(10_000);
        s.action(
            "s1",
            "fs.write_file",
            json!({ "path": "/etc/passwd" }),
            "deny",
        );
    }
    let out = run(&mut Engine::new(c), &s);
    let actions: Vec<_> = out.iter().map(|(_, r)| r.action).collect();
    assert_eq!(
        actions,
        [
            Action::Conservative,
            Action::RevokeSession,
            Action::Frozen,
            Action::Frozen
        ]
    );
    assert_eq!(out[0].1.evidence.len(), 3);
}

#[test]
fn the_learning_window_after_a_charter_change_only_alerts() {
    let c = charter(
        "  learning_window: 1d\n  detectors:\n    - { id: leak, kind: sensitive_then_send, labels: [secret], tools: [web.fetch], response: revoke_session }\n",
    );
    let mut s = Synth::new(START_MS);
    s.charter_loaded("blake3:aa");
    s.open("s1", "demo", "alice");
    s.labels("s1", &["secret"]);
    let before = s.action("s1", "web.fetch", json!({}), "allow");
    s.advance(HOUR);
    s.charter_loaded("blake3:bb");
    s.open("s2", "demo", "alice");
    s.labels("s2", &["secret"]);
    let learning = s.action("s2", "web.fetch", json!({}), "allow");
    s.advance(DAY + MIN);
    s.open("s3", "demo", "alice");
    s.labels("s3", &["secret"]);
    let after = s.action("s3", "web.fetch", json!({}), "allow");
    let mut engine = Engine::new(c);
    let out = run(&mut engine, &s);
    let got: Vec<_> = out.iter().map(|(q, r)| (*q, r.action)).collect();
    assert_eq!(
        got,
        [
            (before, Action::RevokeSession),
            (learning, Action::Alert),
            (after, Action::RevokeSession)
        ]
    );
    assert!(
        out[1].1.reason.contains("learning window"),
        "{}",
        out[1].1.reason
    );
    // The same charter loaded again (a restart) is no change.
    let mut again = Synth::new(START_MS);
    again.charter_loaded("blake3:aa");
    again.charter_loaded("blake3:aa");
    let mut e = Engine::new(charter("  learning_window: 1d\n"));
    run(&mut e, &again);
    assert!(!e.learning());
}

#[test]
fn intent_mismatch_counts_unproposed_actions_and_unattempted_proposals() {
    let c = charter(
        "  detectors:\n    - { id: mm, kind: intent_mismatch, threshold: 2, window: 1m, response: alert }\n",
    );
    let mut s = Synth::new(START_MS);
    s.open("plain", "demo", "alice");
    // A session without model turns (the agent's model is not proxied): never judged.
    for _ in 0..5 {
        s.action("plain", "fs.read_file", json!({}), "allow");
    }
    s.open("s1", "demo", "alice");
    s.turn("s1", 100, &["read_file", "fs__write_file"]);
    s.action("s1", "fs.read_file", json!({}), "allow");
    s.action("s1", "fs.write_file", json!({}), "allow");
    s.turn("s1", 100, &["write_file"]);
    s.advance(2 * MIN);
    let unproposed = s.action("s1", "web.fetch", json!({}), "allow");
    let out = run(&mut Engine::new(c), &s);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].0, unproposed);
    assert_eq!(
        out[0].1.evidence.len(),
        2,
        "the expired proposal and the unproposed action"
    );
}

#[test]
fn token_spike_holds_a_turn_against_the_agents_tokens_per_turn() {
    let c = charter(
        "  detectors:\n    - { id: tokens, kind: token_spike, threshold: 4, response: alert, alone: true }\n",
    );
    let mut s = Synth::new(START_MS);
    s.open("s1", "demo", "alice");
    for _ in 0..12 {
        s.turn("s1", 1_000, &[]);
        s.advance(10 * MIN);
    }
    s.advance(HOUR);
    s.turn("s1", 3_900, &[]);
    let spike = s.turn("s1", 40_000, &[]);
    let out = run(&mut Engine::new(c), &s);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].0, spike);
    let sig = &out[0].1.signals[0];
    assert_eq!(sig.baseline["baseline_tokens_per_turn"], 1000.0);
}

#[test]
fn a_rate_needs_a_baseline_and_a_burst_needs_history() {
    let c = charter(CORRELATED);
    let mut s = Synth::new(START_MS);
    s.open("fresh", "demo", "alice");
    for i in 0..40 {
        s.advance(500);
        s.action(
            "fresh",
            "fs.read_file",
            json!({ "path": format!("/d{i}/f") }),
            "allow",
        );
    }
    let out = run(&mut Engine::new(c), &s);
    assert!(
        out.is_empty(),
        "a new agent has no baseline to be far from: {out:#?}"
    );
}

#[test]
fn a_broken_chain_or_a_gap_answers_gateway_wide() {
    let c =
        charter("  detectors:\n    - { id: chain, kind: ledger_integrity, response: frozen }\n");
    let mut e = Engine::new(c);
    let r = e.chain_broken(7, "hash mismatch");
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].action, &r[0].scope),
        (Action::Frozen, &Scope::Gateway)
    );
    assert_eq!(r[0].evidence, vec![7]);
    assert!(r[0].reason.contains("record 7"), "{}", r[0].reason);
    // Without a declared detector: conservative, gateway-wide (fail closed).
    let mut e = Engine::new(charter("  detectors: []\n"));
    let mut s = Synth::new(START_MS);
    s.open("s1", "demo", "alice");
    s.open("s2", "demo", "alice");
    s.open("s3", "demo", "alice");
    let mut recs = s.records.clone();
    recs.remove(1);
    let mut out = Vec::new();
    for r in &recs {
        out.extend(e.ingest(r));
    }
    assert!(e.ingest(&recs[0]).is_empty(), "an old record is ignored");
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].action, out[0].detector.as_str()),
        (Action::Conservative, "ledger_integrity")
    );
    assert_eq!(e.stats().records, 2);
}

#[test]
fn evidence_is_bounded() {
    let c = charter(
        "  detectors:\n    - { id: storm, kind: denial_storm, threshold: 200, window: 1h, response: alert, alone: true }\n",
    );
    let mut s = Synth::new(START_MS);
    s.open("s1", "demo", "alice");
    for _ in 0..200 {
        s.action("s1", "fs.write_file", json!({}), "deny");
    }
    let out = run(&mut Engine::new(c), &s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.evidence.len(), MAX_EVIDENCE);
}

fn scenario() -> Synth {
    let mut s = Synth::new(START_MS);
    history(&mut s, 3);
    s.open("s-x", "demo", "alice");
    s.turn("s-x", 2000, &["read_file"]);
    for i in 0..40 {
        s.advance(1_000);
        s.action(
            "s-x",
            "fs.read_file",
            json!({ "path": format!("/new/{}/f", i / 20) }),
            "allow",
        );
    }
    s
}

#[test]
fn a_replay_gives_the_same_responses() {
    let s = scenario();
    let a = run(&mut Engine::new(charter(CORRELATED)), &s);
    let b = run(&mut Engine::new(charter(CORRELATED)), &s);
    assert!(!interventions(&a).is_empty());
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

#[test]
fn state_round_trips_and_continues_where_it_stopped() {
    let s = scenario();
    let c = charter(CORRELATED);
    let straight = run(&mut Engine::new(c.clone()), &s);
    let half = s.records.len() - 30;
    let mut first = Engine::new(c.clone());
    let mut got = Vec::new();
    for r in &s.records[..half] {
        got.extend(first.ingest(r).into_iter().map(|x| (r.seq, x)));
    }
    let saved = serde_json::to_string(&first.state()).unwrap();
    let state: EngineState = serde_json::from_str(&saved).unwrap();
    assert_eq!(state, first.state());
    assert_eq!(state.last_seq(), s.records[half - 1].seq);
    let mut second = Engine::restore(c, state);
    for r in &s.records[half..] {
        got.extend(second.ingest(r).into_iter().map(|x| (r.seq, x)));
    }
    assert_eq!(got, straight);
    assert_eq!(second.stats().records, s.records.len() as u64);
}

#[test]
fn rate_signals_a_session_far_above_the_agents_baseline() {
    let mut s = Synth::new(START_MS);
    history(&mut s, 4);
    s.advance(HOUR);
    s.open("s-fast", "demo", "alice");
    let mut seqs = Vec::new();
    for i in 0..12 {
        s.advance(2_000);
        s.turn("s-fast", 1_000, &["read_file"]);
        let path = format!("/workspace/src/f{i}");
        seqs.push(s.action("s-fast", "fs.read_file", json!({ "path": path }), "allow"));
    }
    let out = run(&mut Engine::new(charter(CORRELATED)), &s);
    let fast = Scope::Session("s-fast".into());
    let rate: Vec<_> = out
        .iter()
        .filter(|(_, r)| r.detector == "rate" && r.scope == fast)
        .collect();
    assert_eq!(rate.len(), 1, "{out:#?}");
    let (seq, r) = rate[0];
    assert!(seqs.contains(seq));
    assert_eq!(r.action, Action::Alert, "alone it only alerts");
    let b = &r.signals[0].baseline;
    let per_window = b["baseline_per_window"].as_f64().unwrap();
    assert!(per_window > 0.0, "{b}");
    assert!(b["count"].as_f64().unwrap() > 3.0 * per_window, "{b}");
    assert!(b["history_hours"].as_u64().unwrap() > 24, "{b}");
}

#[test]
fn set_charter_with_a_new_hash_starts_learning() {
    let mut s = Synth::new(START_MS);
    s.charter_loaded("blake3:aa");
    let mut e = Engine::new(charter("  learning_window: 1h\n"));
    run(&mut e, &s);
    assert!(!e.learning());
    e.set_charter(charter("  learning_window: 1h\n  escalate_within: 1m\n"));
    assert!(e.learning());
}

#[test]
fn sessions_tracked_are_bounded_the_least_recently_active_going_first() {
    let mut e = Engine::new(charter("  detectors: []\n"));
    let mut s = Synth::new(START_MS);
    for i in 0..warden_observer::MAX_SESSIONS + 10 {
        s.advance(1);
        s.open(&format!("s{i}"), "demo", "alice");
        if s.records.len() >= 10_000 {
            for r in std::mem::take(&mut s.records) {
                e.ingest(&r);
            }
        }
    }
    for r in std::mem::take(&mut s.records) {
        e.ingest(&r);
    }
    assert_eq!(e.stats().sessions, warden_observer::MAX_SESSIONS as u64);
    assert_eq!(e.stats().records, warden_observer::MAX_SESSIONS as u64 + 10);
}
