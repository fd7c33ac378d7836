//! `warden replay --shadow`: the recorded `shadow_decided` records summarised, as the
//! contract between the gateway (which writes them) and the replay (which reads them) says.

use serde_json::{Value, json};
use warden_audit::{Ledger, LedgerConfig, LedgerReader, NewRecord, RecordKind};
use warden_core::{ManualClock, Tier, Verdict};
use warden_replay::{Change, Options};

use super::support::START;

fn decision(verdict: &str, tier: &str, rule: Option<&str>) -> Value {
    json!({
        "tier": tier, "verdict": verdict, "reason": if rule.is_some() { "rule" } else { "default_posture" },
        "rules": rule.map(|r| vec![json!({"id": r, "tier": tier, "location": {"file": "c.yaml", "line": 1, "column": 1}})]).unwrap_or_default(),
        "errors": [], "charter": "blake3:00",
    })
}

/// One batch as the gateway writes it for a tool call with a shadow charter.
fn batch(session: &str, action: &str, tool: &str, live: Value, shadow: Value) -> Vec<NewRecord> {
    let (lv, lt) = (live["verdict"].clone(), live["tier"].clone());
    let diverged = lv != shadow["verdict"] || lt != shadow["tier"];
    vec![
        NewRecord::new(
            Some(session),
            RecordKind::ActionAttempted,
            json!({"action": action, "via": "mcp", "tool": tool, "arguments": {"path": "/w"}}),
        ),
        NewRecord::new(
            Some(session),
            RecordKind::ActionDecided,
            json!({"action": action, "decision": live}),
        ),
        NewRecord::new(
            Some(session),
            RecordKind::ShadowDecided,
            json!({
                "action": action, "charter": "blake3:11", "decision": shadow,
                "live": {"verdict": lv, "tier": lt}, "diverged": diverged,
            }),
        ),
    ]
}

#[tokio::test]
async fn shadow_decisions_are_summarised_by_shadow_rule() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::new(START));
    let ledger = Ledger::open(dir.path(), clock.clone(), LedgerConfig::default())
        .await
        .unwrap();
    let allow = || decision("allow", "autonomous", Some("write"));
    ledger
        .append_batch(batch(
            "s1",
            "a1",
            "fs.write",
            allow(),
            decision("ask", "approval", Some("write-ask")),
        ))
        .await
        .unwrap();
    ledger
        .append_batch(batch(
            "s1",
            "a2",
            "fs.write",
            allow(),
            decision("ask", "approval", Some("write-ask")),
        ))
        .await
        .unwrap();
    ledger
        .append_batch(batch(
            "s1",
            "a3",
            "fs.read",
            decision("allow", "autonomous", Some("read")),
            decision("allow", "autonomous", Some("read")),
        ))
        .await
        .unwrap();
    clock.advance(time::Duration::hours(1));
    ledger
        .append_batch(batch(
            "s2",
            "a4",
            "fs.delete",
            decision("deny", "prohibited", Some("no-delete")),
            decision("allow", "autonomous", Some("all")),
        ))
        .await
        .unwrap();
    ledger
        .append(NewRecord::new(
            Some("s2"),
            RecordKind::ShadowDecided,
            json!({"action": "a5"}),
        ))
        .await
        .unwrap();
    ledger.shutdown().await.unwrap();

    let reader = LedgerReader::open(dir.path()).await.unwrap();
    let r = warden_replay::shadow(&reader, &Options::default())
        .await
        .unwrap();
    assert_eq!(r.mode, "shadow");
    assert_eq!(
        (
            r.totals.attempts,
            r.totals.compared,
            r.totals.unchanged,
            r.totals.changed
        ),
        (4, 4, 1, 3),
        "{r:#?}"
    );
    assert_eq!(
        (
            r.totals.newly_asking,
            r.totals.newly_allowed,
            r.totals.malformed
        ),
        (2, 1, 1)
    );
    assert!(r.widens());
    let asking = r
        .changes
        .iter()
        .find(|g| g.change == Change::NewlyAsking)
        .unwrap();
    assert_eq!(
        (
            asking.candidate_rule.as_str(),
            asking.recorded_rule.as_str(),
            asking.count
        ),
        ("write-ask", "write", 2)
    );
    assert_eq!(
        (asking.from.verdict, asking.to.tier),
        (Verdict::Allow, Tier::Approval)
    );
    assert_eq!(asking.examples[0].tool, "fs.write");
    assert_eq!(asking.examples[0].arguments, r#"{"path":"/w"}"#);

    let s2 = Options {
        session: Some("s2".to_owned()),
        ..Options::default()
    };
    let r = warden_replay::shadow(&reader, &s2).await.unwrap();
    assert_eq!(
        (r.totals.attempts, r.totals.newly_allowed),
        (1, 1),
        "{r:#?}"
    );
    let since = Options {
        since: Some(START + time::Duration::minutes(30)),
        ..Options::default()
    };
    let r = warden_replay::shadow(&reader, &since).await.unwrap();
    assert_eq!(r.totals.compared, 1, "{r:#?}");
    reader.close().await;
}
