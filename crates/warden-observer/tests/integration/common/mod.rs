//! Shared helpers: charters, ledgers and an engine run over them.

#![allow(clippy::panic, reason = "test helpers: a failed step is a failed test")]

use std::sync::Arc;

use warden_charter::{CompiledCharter, Source, compile};
use warden_observer::synth::{Rng, Synth};
use warden_observer::{Action, Engine, Response};

/// 2026-12-01T00:00:00Z.
pub(crate) const START_MS: i64 = 1_796_083_200_000;
pub(crate) const MIN: i64 = 60_000;
pub(crate) const HOUR: i64 = 60 * MIN;
pub(crate) const DAY: i64 = 24 * HOUR;

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

/// A charter with this `observer` section (indented by two spaces).
pub(crate) fn charter(observer: &str) -> Arc<CompiledCharter> {
    let text = format!("{BASE}observer:\n{observer}");
    match compile(&[Source::new("charter.yaml", &text)]) {
        Ok(c) => Arc::new(c.charter),
        Err(e) => panic!("charter does not compile:\n{e}"),
    }
}

/// An example charter from `examples/`.
pub(crate) fn example(path: &str) -> Arc<CompiledCharter> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    match warden_charter::load(&root.join(path)) {
        Ok(c) => Arc::new(c.charter),
        Err(e) => panic!("example does not compile:\n{e}"),
    }
}

/// The design scenario's observer: burst, rate and intent mismatch may not act alone; a
/// burst with a rate or an intent mismatch on one session → conservative.
pub(crate) const CORRELATED: &str = "  baseline_window: 14d
  detectors:
    - { id: burst, kind: new_resource_burst, threshold: 15, window: 5m, response: conservative }
    - { id: rate, kind: rate, threshold: 3, window: 1m, response: conservative }
    - { id: unproposed, kind: intent_mismatch, threshold: 3, window: 5m, response: conservative }
  correlate:
    - { id: exploring, signals: [burst, rate], within: 5m, response: conservative }
    - { id: exploring-unproposed, signals: [burst, unproposed], within: 5m, response: conservative }
";

/// Two days of benign history for agent `demo` in the usual directories.
pub(crate) fn history(s: &mut Synth, seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..48 {
        s.benign(
            &mut rng,
            "demo",
            2,
            &["/workspace/src", "/workspace/docs", "/workspace/tests"],
            &["fs.read_file", "fs.write_file"],
        );
        s.advance(HOUR / 2);
    }
}

/// Runs every record through `engine`; returns (seq, response) pairs.
pub(crate) fn run(engine: &mut Engine, s: &Synth) -> Vec<(u64, Response)> {
    let mut out = Vec::new();
    for r in &s.records {
        for resp in engine.ingest(r) {
            out.push((r.seq, resp));
        }
    }
    out
}

/// The interventions (anything but an alert).
pub(crate) fn interventions(out: &[(u64, Response)]) -> Vec<&(u64, Response)> {
    out.iter()
        .filter(|(_, r)| r.action != Action::Alert)
        .collect()
}
