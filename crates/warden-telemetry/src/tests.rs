//! The metrics' families, labels and bounds.

use super::*;

fn telemetry() -> Telemetry {
    Telemetry::new(Bounds {
        tools: ["fs.read".to_owned()].into(),
        servers: ["fs".to_owned()].into(),
        routes: ["main".to_owned()].into(),
        agents: ["agent".to_owned()].into(),
    })
}

#[test]
fn unknown_tools_count_as_other() {
    let t = telemetry();
    t.decision("allow", "autonomous", "rule", "fs.read", "agent");
    for i in 0..100 {
        t.decision("deny", "prohibited", "rule", &format!("evil.{i}"), "agent");
    }
    let text = t.encode();
    assert!(text.contains(r#"tool="fs.read""#), "{text}");
    assert!(
        text.contains(r#"tool="other",agent="agent"} 100"#),
        "{text}"
    );
    assert!(!text.contains("evil"), "{text}");
}

#[test]
fn export_sinks_are_labelled_by_name_and_bounded() {
    let t = telemetry();
    let m = t.export_sink("offsite");
    m.set_lag(7);
    m.exported(3);
    m.failure();
    for i in 0..20 {
        t.export_sink(&format!("s{i}")).exported(1);
    }
    let text = t.encode();
    assert!(
        text.contains(r#"warden_export_lag_records{sink="offsite"} 7"#),
        "{text}"
    );
    assert!(
        text.contains(r#"warden_export_records_total{sink="offsite"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"warden_export_failures_total{sink="offsite"} 1"#),
        "{text}"
    );
    // Eight names in all: seven more, then `other`.
    assert!(
        text.contains(r#"warden_export_records_total{sink="s6"} 1"#),
        "{text}"
    );
    assert!(!text.contains(r#"sink="s7""#), "{text}");
    assert!(
        text.contains(r#"warden_export_records_total{sink="other"} 13"#),
        "{text}"
    );
}

#[test]
fn every_family_is_named_warden() {
    let t = telemetry();
    t.model_request("main", 200);
    t.model_tokens("main", 10, 5);
    t.upstream_call("fs", Duration::from_millis(3), true);
    t.ledger_commit(Duration::from_millis(1));
    t.set_controls_in_force(&[("frozen", 1)]);
    let text = t.encode();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("warden_"), "{line}");
    }
    assert!(text.contains(r#"warden_model_tokens_total{route="main",direction="input"} 10"#));
    assert!(text.contains(r#"warden_upstream_errors_total{server="fs"} 1"#));
    assert!(text.contains(r#"warden_controls_in_force{action="frozen"} 1"#));
}
