//! The `observer` section: detector kinds, `alone`, correlation rules and escalation.

use super::*;
use crate::compiled::{CorrelateOn, DetectorKind, Intervention};

const BASE: &str = "\
version: 1
identity:
  id: demo
  name: Demo
  purpose: test
  serves: tests
inventory:
  servers:
    - id: fs
      command: [node, fs.js]
      tools: [read_file, write_file]
    - id: web
      command: [node, web.js]
      tools: [fetch]
actions:
  rules:
    - id: read
      tool: fs.read_file
      tier: autonomous
data:
  labels:
    - id: secret
";

fn with_observer(observer: &str) -> String {
    format!("{BASE}observer:\n{observer}")
}

#[test]
fn the_new_kinds_alone_correlation_and_escalation_compile() {
    let text = with_observer(
        "  baseline_window: 7d
  learning_window: 1d
  escalate_within: 30m
  ceiling: frozen
  detectors:
    - { id: burst, kind: new_resource_burst, threshold: 15, window: 5m, response: conservative }
    - { id: rate, kind: rate, threshold: 3, window: 1m, response: conservative }
    - { id: tokens, kind: token_spike, threshold: 4, response: alert }
    - { id: chain, kind: ledger_integrity, response: frozen }
    - { id: leak, kind: sensitive_then_send, labels: [secret], tools: [web.*], response: freeze_tool }
    - { id: loud, kind: rate, threshold: 9, alone: true, response: alert }
  correlate:
    - id: exploring
      signals: [burst, rate]
      within: 5m
      response: conservative
    - { id: fleet, signals: [burst, rate, tokens], min: 3, within: 1h, on: agent, response: revoke_session }
",
    );
    let c = compile(&[Source::new("charter.yaml", &text)])
        .unwrap()
        .charter;
    let o = &c.observer;
    let kinds: Vec<_> = o.detectors.iter().map(|d| (d.kind, d.alone)).collect();
    assert_eq!(
        kinds,
        [
            (DetectorKind::NewResourceBurst, false),
            (DetectorKind::Rate, false),
            (DetectorKind::TokenSpike, false),
            (DetectorKind::LedgerIntegrity, true),
            (DetectorKind::SensitiveThenSend, true),
            (DetectorKind::Rate, true),
        ]
    );
    assert_eq!(o.detectors[3].response, Intervention::Frozen);
    assert!(o.detectors[4].tool_set.is_match("web.fetch"));
    assert!(!o.detectors[4].tool_set.is_match("fs.read_file"));
    let e = o.escalation.as_ref().unwrap();
    assert_eq!(
        (e.within.as_secs(), e.ceiling),
        (1800, Intervention::Frozen)
    );
    assert_eq!(o.correlate.len(), 2);
    let r = &o.correlate[0];
    assert_eq!(
        (r.min, r.within.as_secs(), r.on),
        (2, 300, CorrelateOn::Session)
    );
    assert_eq!(r.response, Intervention::Conservative);
    let f = &o.correlate[1];
    assert_eq!(
        (f.min, f.on, f.response),
        (3, CorrelateOn::Agent, Intervention::RevokeSession)
    );
    assert!(Intervention::Alert < Intervention::Conservative);
    assert!(Intervention::RevokeSession < Intervention::Frozen);
}

#[test]
fn the_ceiling_defaults_to_revoke_session() {
    let text = with_observer("  escalate_within: 10m\n");
    let c = compile(&[Source::new("charter.yaml", &text)])
        .unwrap()
        .charter;
    let e = c.observer.escalation.unwrap();
    assert_eq!(e.ceiling, Intervention::RevokeSession);
    let c = compile(&[Source::new(
        "charter.yaml",
        with_observer("  detectors: []\n"),
    )])
    .unwrap();
    assert!(c.charter.observer.escalation.is_none());
}

#[test]
fn bad_correlation_and_escalation_are_located() {
    let text = with_observer(
        "  ceiling: frozen
  detectors:
    - { id: burst, kind: new_resource_burst, response: alert }
    - { id: rate, kind: rate, response: alert, alone: maybe }
  correlate:
    - { id: burst, signals: [burst, brust, burst], min: 5, within: 5m, response: conservative }
    - { id: w, signals: [burst], within: soon, on: fleet, response: conservative }
    - { id: x, signals: [burst], within: 5m, response: explode, extra: 1 }
",
    );
    let r = compile(&[Source::new("charter.yaml", &text)])
        .expect_err("must not compile")
        .to_string();
    for e in [
        "charter.yaml:24:12: error: `ceiling` has no effect without `escalate_within`",
        "charter.yaml:27:55: error: `observer.detectors[1].alone`: invalid type",
        "charter.yaml:29:13: error: duplicate detector or correlation id `burst`",
        "charter.yaml:29:29: error: unknown detector `brust`",
        "charter.yaml:29:29: error: detector `burst` is listed twice",
        "charter.yaml:29:57: error: `min` must be between 1 and the number of `signals` (3)",
        "charter.yaml:30:52: error: `observer.correlate[1].on`: unknown variant `fleet`",
        "charter.yaml:31:65: error: `observer.correlate[2].extra`: unknown field `extra`",
    ] {
        assert!(r.contains(e), "missing {e:?} in:\n{r}");
    }
}

#[test]
fn a_bad_escalation_window_is_located() {
    let text = with_observer("  escalate_within: 0s\n  ceiling: sometimes\n");
    let r = compile(&[Source::new("charter.yaml", &text)])
        .expect_err("must not compile")
        .to_string();
    assert!(
        r.contains("charter.yaml:24:20: error: invalid duration `0s`"),
        "{r}"
    );
    assert!(
        r.contains("charter.yaml:25:12: error: `observer.ceiling`: unknown variant `sometimes`"),
        "{r}"
    );
}
