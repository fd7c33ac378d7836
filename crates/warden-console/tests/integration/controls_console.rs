//! Alerts and controls in the console, end to end: the observer's alerts with their evidence
//! linked, paged; the controls in force; lifting one (recorded, as the API does).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

use super::common;

use common::{admin, approver, start};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_alerts_and_controls_and_lifts_a_control_with_a_reason() {
    let h = start().await;
    let control = h
        .set_control(json!({
            "action": "frozen", "scope": "gateway",
            "reason": "<i>too many</i> denials", "evidence": [1, 2],
        }))
        .await;
    let id = control["id"].as_str().unwrap().to_owned();
    h.set_control(json!({
        "action": "alert", "scope": "gateway", "reason": "odd hours",
        "detector": "night-owl", "evidence": [3],
    }))
    .await;
    let alert_seq = h
        .records()
        .await
        .iter()
        .rfind(|r| r.kind.as_str() == "observer_alert")
        .unwrap()
        .seq;

    let mut root = admin(&h).await;
    let page = root.get("/ui/controls").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_secure_headers();
    for shown in [
        "frozen",
        "&#60;i&#62;too many&#60;/i&#62; denials",
        "href=\"/ui/records/1\"",
        "href=\"/ui/records/2\"",
        "night-owl",
        "odd hours",
        "href=\"/ui/records/3\"",
        &format!("href=\"/ui/records/{alert_seq}\""),
        &format!("action=\"/ui/controls/{id}/lift\""),
        "data-live=\"/ui/controls/in-force\"",
        "data-live=\"/ui/controls/alerts\"",
    ] {
        assert!(page.body.contains(shown), "{shown} not in {}", page.body);
    }
    assert!(!page.body.contains("<i>too many"));
    let part = root.get("/ui/controls/in-force").await;
    assert!(part.body.contains(&id) && !part.body.contains("<html"));
    let part = root.get("/ui/controls/alerts").await;
    assert!(part.body.contains("night-owl") && !part.body.contains("<html"));

    // A lift needs a reason.
    let lift = format!("/ui/controls/{id}/lift");
    let refused = root.post(&lift, &[("reason", "  ")]).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(h.records_of("control_lifted").await.is_empty());

    let lifted = root.post(&lift, &[("reason", "false alarm")]).await;
    assert_eq!(lifted.status, 303, "{}", lifted.body);
    assert_eq!(lifted.location(), "/ui/controls");
    let records = h.records_of("control_lifted").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], id.as_str());
    assert_eq!(records[0]["reason"], "false alarm");
    assert_eq!(records[0]["by"]["role"], "admin");
    let page = root.get("/ui/controls").await;
    assert!(!page.body.contains(&lift), "{}", page.body);
    assert!(page.body.contains("No control is in force"));

    // Twice, or an unknown control: refused with a page.
    let again = root.post(&lift, &[("reason", "again")]).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let unknown = root
        .post("/ui/controls/nope/lift", &[("reason", "x")])
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    unknown.assert_secure_headers();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_paged_newest_first() {
    let h = start().await;
    for i in 0..53 {
        h.set_control(json!({
            "action": "alert", "scope": "gateway", "reason": format!("alert number {i}"),
        }))
        .await;
    }
    let mut root = admin(&h).await;
    let first = root.get("/ui/controls").await;
    assert!(first.body.contains("alert number 52"));
    assert!(!first.body.contains("alert number 2<"), "{}", first.body);
    let start = first.body.find("/ui/controls?before=").unwrap() + "/ui/controls?before=".len();
    let seq: String = first.body[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let older = root.get(&format!("/ui/controls?before={seq}")).await;
    assert_eq!(older.status, 200);
    for i in 0..3 {
        assert!(
            older.body.contains(&format!("alert number {i}<")),
            "{}",
            older.body
        );
    }
    assert!(!older.body.contains("alert number 3<"));
    assert!(
        !older.body.contains("data-live=\"/ui/controls/alerts\""),
        "a past page is not live"
    );
    let bad = root.get("/ui/controls?before=yesterday").await;
    assert_eq!(bad.status, 400);
    bad.assert_secure_headers();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_may_neither_see_nor_lift_controls() {
    let h = start().await;
    let control = h
        .set_control(json!({ "action": "frozen", "scope": "gateway", "reason": "stop" }))
        .await;
    let id = control["id"].as_str().unwrap();
    let mut bob = approver(&h, "bob").await;
    for path in [
        "/ui/controls",
        "/ui/controls/in-force",
        "/ui/controls/alerts",
    ] {
        let page = bob.get(path).await;
        assert_eq!(page.status, 403, "{path}: {}", page.body);
        page.assert_secure_headers();
    }
    let refused = bob
        .post(
            &format!("/ui/controls/{id}/lift"),
            &[("reason", "mine now")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(h.records_of("control_lifted").await.is_empty());
    h.stop().await;
}
