//! The overview over HTTP, against a real gateway: what it shows, the activity followed from
//! the ledger, the verification run from the console (CSRF checked, admins only), the live
//! part, and approvers sent to their inbox.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use super::common;

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};

use common::{admin, approver};

/// Reads `path` until its body contains `needle` (the console follows the ledger on its own
/// task); panics after many tries.
async fn until(c: &mut common::Client, path: &str, needle: &str) -> String {
    for _ in 0..200 {
        let p = c.get(path).await;
        assert_eq!(p.status, 200, "{}", p.body);
        if p.body.contains(needle) {
            return p.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{needle}` never showed on {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_sessions_approvals_activity_and_the_head() {
    let h = common::start().await;
    let (sid, token) = h.open_session("1h").await;
    h.call(&token, "hello").await;
    h.call(&token, "hello twice").await;
    // A call that waits for approval: pending in the inbox.
    let tasks = tokio_util::task::TaskTracker::new();
    let waiting = {
        let token = token.clone();
        let h2 = h.http.clone();
        let addr = h.agent_addr;
        tasks.spawn(async move {
            let _ = h2
                .post(format!("http://{addr}/mcp"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .json(
                    &serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": { "name": "echo.echo", "arguments": { "text": "ask for it" } } }),
                )
                .send()
                .await;
        })
    };
    h.wait_for_approval(&h.operator_token, 1).await;
    let mut c = admin(&h).await;
    let page = c.get("/ui").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_secure_headers();
    assert!(page.body.contains("data-live=\"/ui/overview/live\""));
    assert!(page.body.contains(&format!("/ui/sessions/{sid}")));
    assert!(!page.body.contains("style="));
    // The live part: two allowed, one sent to approval, one pending request, the head.
    let live = until(
        &mut c,
        "/ui/overview/live",
        "allowed 2 · denied 0 · sent to approval 1",
    )
    .await;
    assert!(live.contains("<a href=\"/ui/approvals\">1</a>"), "{live}");
    let head = h.records().await.last().unwrap().seq;
    assert!(live.contains("<h2>Ledger head</h2>"));
    let shown_head: u64 = {
        let at = live.find("<h2>Ledger head</h2><p class=\"big\">").unwrap()
            + "<h2>Ledger head</h2><p class=\"big\">".len();
        live[at..live[at..].find('<').unwrap() + at]
            .parse()
            .unwrap()
    };
    assert!(shown_head >= head.saturating_sub(5) && shown_head > 0);
    assert!(!live.contains("<html"), "a fragment, not a page");
    waiting.abort();
}

/// The follower reads only decisions and completions: long stretches of other records (more
/// than a page of them) are stepped over, and nothing is counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_activity_counts_each_decision_once_across_long_stretches_of_other_records() {
    let h = common::start().await;
    let (_sid, token) = h.open_session("1h").await;
    let mut c = admin(&h).await;
    until(&mut c, "/ui/overview/live", "allowed 0 · denied 0").await;
    let ledger = h.app_state().governor.ledger().clone();
    let filler = |n: usize| -> Vec<warden_audit::NewRecord> {
        (0..n)
            .map(|i| {
                warden_audit::NewRecord::new(
                    None,
                    warden_audit::RecordKind::ActionAttempted,
                    serde_json::json!({ "filler": i }),
                )
            })
            .collect()
    };
    ledger.append_batch(filler(2_500)).await.unwrap();
    for _ in 0..3 {
        h.call(&token, "hello").await;
    }
    until(&mut c, "/ui/overview/live", "allowed 3 · denied 0").await;
    ledger.append_batch(filler(1_200)).await.unwrap();
    h.call(&token, "hello again").await;
    let live = until(&mut c, "/ui/overview/live", "allowed 4 · denied 0").await;
    assert!(live.contains("sent to approval 0"), "{live}");
    // Later reads step over what was counted: the figure stays.
    ledger.append_batch(filler(10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = c.get("/ui/overview/live").await;
    assert!(
        again.body.contains("allowed 4 · denied 0"),
        "{}",
        again.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_runs_from_the_console_for_admins_with_their_csrf_token() {
    let h = common::start().await;
    let mut c = admin(&h).await;
    let before = c.get("/ui").await;
    assert!(before.body.contains("none since the gateway started"));
    // Without the token, or with another one: refused, nothing run.
    let mut h2 = HeaderMap::new();
    h2.insert("origin", HeaderValue::from_str(&c.base).unwrap());
    let forged = c
        .post_raw(
            "/ui/verify",
            "application/x-www-form-urlencoded",
            "csrf=forged",
            h2,
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let mut none = common::Client::new(&h);
    let anon = none.post("/ui/verify", &[]).await;
    assert!(anon.status == 401 || anon.status == 403, "{}", anon.status);
    assert!(
        c.get("/ui")
            .await
            .body
            .contains("none since the gateway started")
    );
    // With it: run, kept, shown.
    let done = c.post("/ui/verify", &[]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/ui?verify=done");
    let page = c.get("/ui?verify=done").await;
    assert!(page.body.contains("The verification ended"));
    assert!(page.body.contains("class=\"ok\">intact: "), "{}", page.body);
    // An approver may not run it, and is sent to the inbox from the overview.
    let mut bob = approver(&h, "bob").await;
    let refused = bob.post("/ui/verify", &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let home = bob.get("/ui").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location(), "/ui/approvals");
    assert_eq!(bob.get("/ui/overview/live").await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_last_hour_is_counted_again_from_the_ledger() {
    let h = common::start().await;
    let (_sid, token) = h.open_session("1h").await;
    h.call(&token, "hello").await;
    h.call(&token, "hello again").await;
    h.call(&token, "hello thrice").await;
    h.restart().await;
    let mut c = admin(&h).await;
    until(
        &mut c,
        "/ui/overview/live",
        "allowed 3 · denied 0 · sent to approval 0",
    )
    .await;
}
