//! `observer.required` and `observer.heartbeat_deadline`: defaults, bounds, locations.

use std::time::Duration;

use super::*;

const BASE: &str = "\
version: 1
identity: { id: demo, name: Demo, purpose: test, serves: tests }
inventory:
  servers:
    - { id: fs, command: [node, fs.js], tools: [read_file] }
actions:
  rules:
    - { id: read, tool: fs.read_file, tier: autonomous }
";

fn with(observer: &str) -> Result<Compiled, Diagnostics> {
    compile(&[Source::new(
        "charter.yaml",
        format!("{BASE}observer:\n{observer}"),
    )])
}

#[test]
fn the_observer_is_not_required_by_default_and_the_deadline_is_ten_seconds() {
    let c = compile(&[Source::new("charter.yaml", BASE)]).unwrap();
    assert!(!c.charter.observer.required);
    assert_eq!(
        c.charter.observer.heartbeat_deadline,
        Duration::from_secs(10)
    );
    let c = with("  required: true\n").unwrap();
    assert!(c.charter.observer.required);
    assert_eq!(
        c.charter.observer.heartbeat_deadline,
        Duration::from_secs(10)
    );
    let c = with("  required: true\n  heartbeat_deadline: 2m\n").unwrap();
    assert_eq!(
        c.charter.observer.heartbeat_deadline,
        Duration::from_secs(120)
    );
}

#[test]
fn a_deadline_out_of_bounds_or_a_bad_value_is_reported_where_it_is_written() {
    for (text, expect) in [
        ("  heartbeat_deadline: 11m\n", "must be 1s to 10m"),
        ("  heartbeat_deadline: 0s\n", "invalid duration `0s`"),
        ("  heartbeat_deadline: soon\n", "invalid duration `soon`"),
        ("  required: maybe\n", "observer.required"),
        ("  requried: true\n", "did you mean `required`"),
    ] {
        let diags = with(text).expect_err(text);
        let rendered = diags.to_string();
        assert!(rendered.contains(expect), "{text}: {rendered}");
        assert!(rendered.contains("charter.yaml:10:"), "{text}: {rendered}");
    }
}
