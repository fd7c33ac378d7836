use askama::Template;
use serde_json::{Value, json};
use warden_audit::Record;
use warden_charter::{CompiledCharter, Source, compile};
use warden_core::RecordKind;

use super::rows::{IntentMatch, intents, row};
use super::*;

pub(crate) fn charter() -> CompiledCharter {
    let text = include_str!("../../../tests/fixtures/charter.yaml");
    compile(&[Source::new("charter.yaml", text)])
        .unwrap()
        .charter
}

fn rec(seq: u64, kind: RecordKind, payload: Value) -> Record {
    Record {
        seq,
        time: time::macros::datetime!(2026-01-01 12:00:00 UTC)
            + time::Duration::seconds(seq as i64),
        session: Some("s-1".to_owned()),
        kind,
        payload,
        prev_hash: [0; 32],
        hash: [0; 32],
    }
}

fn hostile() -> Vec<Record> {
    vec![
        rec(
            1,
            RecordKind::ModelRequested,
            json!({ "alias": "m", "request": { "messages": [
                { "role": "user", "content": "please <script>alert(1)</script> now" }
            ] } }),
        ),
        rec(
            2,
            RecordKind::ModelIntent,
            json!({ "tool": "echo\"quoted", "arguments": { "text": "hi" } }),
        ),
        rec(
            3,
            RecordKind::ActionAttempted,
            json!({ "tool": "echo\"quoted", "via": "mcp", "arguments": { "text": "<b>x</b>" } }),
        ),
        rec(
            4,
            RecordKind::ActionDecided,
            json!({ "decision": { "verdict": "allow", "tier": "autonomous", "reason": "rule",
                "rules": [{ "id": "echo-hello", "tier": "autonomous",
                    "location": { "file": "charter.yaml", "line": 11, "column": 7 } }, "echo-ask"] } }),
        ),
        rec(
            5,
            RecordKind::LabelsAdded,
            json!({ "labels": ["\"><img src=x onerror=alert(1)>"] }),
        ),
        rec(
            6,
            RecordKind::ActionAttempted,
            json!({ "tool": "echo.echo", "via": "mcp" }),
        ),
    ]
}

#[test]
fn attempts_are_matched_to_intents_as_the_observer_matches_them() {
    let records = [
        rec(1, RecordKind::ActionAttempted, json!({ "tool": "fs.read" })),
        rec(2, RecordKind::ModelIntent, json!({ "tool": "read" })),
        rec(3, RecordKind::ModelIntent, json!({ "tool": "fs__read" })),
        rec(4, RecordKind::ActionAttempted, json!({ "tool": "fs.read" })),
        rec(
            5,
            RecordKind::ActionAttempted,
            json!({ "tool": "fs.write" }),
        ),
        rec(
            6,
            RecordKind::ActionAttempted,
            json!({ "tool": "other.x", "called_as": "fs__read" }),
        ),
        rec(7, RecordKind::ActionAttempted, json!({ "tool": "fs.read" })),
    ];
    let m = intents(records.iter(), None);
    // Before any model call, an attempt is neither matched nor "no intent".
    assert_eq!(m.get(&1), None);
    assert_eq!(m.get(&4), Some(&IntentMatch::From(2)));
    assert_eq!(m.get(&5), Some(&IntentMatch::NoIntent));
    assert_eq!(m.get(&6), Some(&IntentMatch::From(3)));
    assert_eq!(m.get(&7), Some(&IntentMatch::NoIntent));
    // Past the window, an intent is no longer pending: #2 expired, #3 is the one taken.
    let m = intents(records.iter(), Some(time::Duration::seconds(1)));
    assert_eq!(m.get(&4), Some(&IntentMatch::From(3)));
    assert_eq!(m.get(&6), Some(&IntentMatch::NoIntent));
}

#[test]
fn rows_carry_decisions_rules_with_locations_and_intent_links() {
    let c = charter();
    let records = hostile();
    let m = intents(records.iter(), None);
    let on_page = |s: u64| s <= 6;
    let rows: Vec<Row> = records
        .iter()
        .map(|r| row(r, Some(&c), m.get(&r.seq).copied(), &on_page))
        .collect();
    let decided = rows.get(3).unwrap();
    assert_eq!(decided.rules.len(), 2);
    assert_eq!(decided.rules[0].location, "charter.yaml:11:7");
    // A bare rule id is looked up in the charter in force.
    assert_eq!(decided.rules[1].id, "echo-ask");
    assert!(
        decided.rules[1].location.starts_with("charter.yaml:"),
        "{:?}",
        decided.rules[1]
    );
    assert_eq!(decided.rules[1].tier, "approval");
    let attempt = rows.get(2).unwrap();
    assert_eq!(attempt.links[0].href, "#seq-2");
    assert_eq!(attempt.links[0].text, "from intent #2");
    assert!(rows.get(5).unwrap().no_intent);
    // An intent on another page is linked through /ui/records/N.
    let elsewhere = row(&records[2], Some(&c), Some(IntentMatch::From(2)), &|_| {
        false
    });
    assert_eq!(elsewhere.links[0].href, "/ui/records/2");
}

#[test]
fn hostile_content_is_rendered_escaped_and_long_values_clipped() {
    let c = charter();
    let mut records = hostile();
    records.push(rec(
        7,
        RecordKind::ActionResult,
        json!({ "status": "ok", "content": [{ "type": "text", "text": "y".repeat(5000) }] }),
    ));
    let m = intents(records.iter(), None);
    let rows: Vec<Row> = records
        .iter()
        .map(|r| row(r, Some(&c), m.get(&r.seq).copied(), &|_| true))
        .collect();
    let page = TimelinePage {
        layout: Layout::default(),
        session: "s-1<i>".to_owned(),
        session_q: percent_encode("s-1<i>"),
        about: None,
        count: 7,
        rows,
        paging: Paging::default(),
        live: Some(("/ui/sessions/s-1/rows".to_owned(), 7)),
        shown: Some("gw-<b>".to_owned()),
        elsewhere: vec![super::instances::Elsewhere {
            instance: "gw-\"x".to_owned(),
            count: 3,
            href: "/ui/sessions/s-1?instance=gw-%22x".to_owned(),
        }],
    };
    let html = page.render().unwrap();
    // Instance names (from the shared store) are escaped like everything else.
    assert!(
        html.contains("instance <code>gw-&#60;b&#62;</code>"),
        "{html}"
    );
    assert!(html.contains("gw-&#34;x</a> (3 records)"), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    assert!(!html.contains("<img"));
    assert!(html.contains("&#34;&#62;&#60;img src=x onerror=alert(1)&#62;"));
    assert!(!html.contains("echo\"quoted"));
    assert!(html.contains("echo&#34;quoted"));
    assert!(!html.contains("<b>x</b>"));
    assert!(!html.contains("s-1<i>"));
    for seq in 1..=7 {
        assert!(html.contains(&format!("id=\"seq-{seq}\"")));
    }
    assert!(html.contains("data-live-append=\"/ui/sessions/s-1/rows\" data-after=\"7\""));
    // The 5,000-character result shows its head and expands to the whole.
    assert!(html.contains("<details class=\"clip\">"));
    assert!(html.contains(&"y".repeat(5000)));
    assert!(html.contains("4760 more characters"));
    // No inline style or script (the CSP forbids them).
    assert!(!html.contains("style="));
    assert!(!html.contains("<script>"));
}

#[test]
fn bounds_are_one_sequence_number_or_a_clear_error() {
    let b = |before: Option<&str>, after: Option<&str>, around: Option<&str>| Bounds {
        before: before.map(str::to_owned),
        after: after.map(str::to_owned),
        around: around.map(str::to_owned),
        instance: None,
    };
    assert_eq!(bound_of(&b(None, None, None)), Ok(None));
    assert_eq!(bound_of(&b(Some("5"), None, None)), Ok(Some(("before", 5))));
    assert_eq!(
        bound_of(&b(None, None, Some(" 9 "))),
        Ok(Some(("around", 9)))
    );
    assert!(
        bound_of(&b(Some("x"), None, None))
            .unwrap_err()
            .contains("`before`")
    );
    assert!(bound_of(&b(Some("-1"), None, None)).is_err());
    assert!(
        bound_of(&b(Some("1"), Some("2"), None))
            .unwrap_err()
            .contains("not several")
    );
}

#[test]
fn prompts_read_both_protocols() {
    let openai = json!({ "messages": [{ "role": "system", "content": "be brief" },
        { "role": "user", "content": [{ "type": "text", "text": "hi" }, { "type": "image_url" }] }] });
    assert_eq!(
        rows::prompt_text(&openai),
        "system: be brief\nuser: hi\n[image_url]"
    );
    let anthropic = json!({ "system": "sys", "messages": [{ "role": "user", "content": "yo" }] });
    assert_eq!(rows::prompt_text(&anthropic), "system: sys\nuser: yo");
}

#[test]
fn alerts_link_their_evidence_and_unknown_kinds_show_their_payload() {
    let c = charter();
    let alert = rec(
        9,
        RecordKind::ControlSet,
        json!({ "action": "freeze_tool", "scope": "session", "reason": "burst", "evidence": [3, 4] }),
    );
    let r = row(&alert, Some(&c), None, &|_| true);
    assert_eq!(r.class, "alert");
    assert_eq!(r.title, "control set: freeze_tool");
    let hrefs: Vec<&str> = r.links.iter().map(|l| l.href.as_str()).collect();
    assert_eq!(hrefs, ["/ui/records/3", "/ui/records/4"]);
    assert_eq!(r.time, "2026-01-01 12:00:09.000");
    let other = rec(10, RecordKind::SessionOpened, json!({ "task": "t" }));
    let r = row(&other, Some(&c), None, &|_| true);
    assert_eq!(r.fields[0].name, "payload");
    assert_eq!(r.fields[0].value.head, r#"{"task":"t"}"#);
}

#[test]
fn shadow_decisions_and_redecided_approvals_have_rows_of_their_own() {
    let c = charter();
    let shadow = rec(
        7,
        RecordKind::ShadowDecided,
        json!({
            "action": "a-7",
            "charter": "blake3:00",
            "decision": { "verdict": "deny", "tier": "prohibited", "reason": "rule", "rules": [{ "id": "echo-ask" }] },
            "live": { "verdict": "allow", "tier": "autonomous" },
            "diverged": true,
        }),
    );
    let row_of = |r: &Record| row(r, Some(&c), None, &|_| true);
    let s = row_of(&shadow);
    assert_eq!(s.class, "decision");
    assert_eq!(
        s.title,
        "shadow charter would decide: deny (tier prohibited), not enforced"
    );
    assert_eq!(s.rules[0].id, "echo-ask");
    assert!(
        s.fields
            .iter()
            .any(|f| f.name == "diverged" && f.value.head == "true"),
        "{:?}",
        s.fields
    );
    let redecided = rec(
        8,
        RecordKind::ApprovalRedecided,
        json!({ "approval": "ap-1", "outcome": "voided", "was": "ask", "now": "deny", "action": "a-6" }),
    );
    let r = row_of(&redecided);
    assert_eq!(r.class, "approval");
    assert_eq!(r.title, "approval re-decided under a new charter: voided");
    assert!(
        r.fields
            .iter()
            .any(|f| f.name == "now" && f.value.head == "deny"),
        "{:?}",
        r.fields
    );
}
