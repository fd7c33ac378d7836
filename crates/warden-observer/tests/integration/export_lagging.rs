#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
//! The gateway's `export_lagging` record becomes an alert: gateway-wide, citing the record,
//! naming the sink; never an intervention, even with escalation; at most once a minute.

use super::common;

use common::*;
use serde_json::json;
use warden_audit::RecordKind;
use warden_observer::synth::Synth;
use warden_observer::{Action, EXPORT_LAGGING, Engine, Scope};

fn lagging(s: &mut Synth, sink: &str) -> u64 {
    s.push(
        None,
        RecordKind::ExportLagging,
        json!({ "sink": sink, "acked": 10, "head": 200_010, "lag": 200_000, "error": "the sink answered 503" }),
    )
}

#[test]
fn export_lagging_alerts_gateway_wide_and_never_intervenes() {
    // Escalation on, a strict ceiling: the export alert stays an alert.
    let c = charter(
        "  escalate_within: 30m\n  ceiling: frozen\n  detectors:\n    - { id: chain, kind: ledger_integrity, response: frozen }\n",
    );
    let mut s = Synth::new(START_MS);
    s.open("s1", "demo", "alice");
    let first = lagging(&mut s, "offsite");
    s.advance(10_000);
    let again = lagging(&mut s, "offsite");
    s.advance(2 * MIN);
    let later = lagging(&mut s, "offsite");
    s.push(
        None,
        RecordKind::ExportRecovered,
        json!({ "sink": "offsite", "acked": 200_011, "head": 200_011 }),
    );
    let mut engine = Engine::new(c);
    let out = run(&mut engine, &s);
    let seqs: Vec<u64> = out.iter().map(|(q, _)| *q).collect();
    assert_eq!(seqs, vec![first, later], "once a minute at most: {out:#?}");
    assert!(!seqs.contains(&again));
    for (seq, r) in &out {
        assert_eq!(r.action, Action::Alert);
        assert_eq!(r.scope, Scope::Gateway);
        assert_eq!(r.detector, EXPORT_LAGGING);
        assert_eq!(r.evidence, vec![*seq]);
        assert!(
            r.reason.contains("`offsite`") && r.reason.contains("200000 records behind"),
            "{}",
            r.reason
        );
        assert!(r.reason.contains("503"), "{}", r.reason);
        assert_eq!(r.signals[0].kind, EXPORT_LAGGING);
    }
}

#[test]
fn a_charter_detector_named_export_lagging_of_another_kind_does_not_take_it_over() {
    let c = charter(
        "  detectors:\n    - { id: export_lagging, kind: denial_storm, response: frozen, alone: true }\n",
    );
    let mut s = Synth::new(START_MS);
    lagging(&mut s, "x");
    let mut engine = Engine::new(c);
    let out = run(&mut engine, &s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.action, Action::Alert);
}
