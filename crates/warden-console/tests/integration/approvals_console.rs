//! The approvals inbox and decisions from the console, end to end: an agent's call waits for
//! approval, approvers see (only) what they may decide, decide it through the same workflow
//! as the API (channel `console`), and the call is released.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

use super::common;

use std::sync::Arc;

use common::{Client, Harness, admin, approver, start};
use serde_json::{Value, json};

/// Starts an agent's `echo.echo` call with `arguments` in the background (it waits for
/// approval); its answer when it ends.
fn call_in_background(
    h: &Arc<Harness>,
    token: &str,
    arguments: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let (h, token) = (h.clone(), token.to_owned());
    tokio::spawn(async move {
        h.mcp(
            &token,
            "tools/call",
            json!({ "name": "echo.echo", "arguments": arguments }),
        )
        .await
    })
}

/// Waits until the admin's inbox lists `n` requests; their ids, in the order listed.
async fn wait_for_inbox(h: &Harness, n: usize) -> Vec<String> {
    h.wait_for_approval(&h.operator_token, n)
        .await
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_sees_what_it_may_decide_and_its_approval_releases_the_call() {
    let h = Arc::new(start().await);
    let (_session, token) = h.open_session("1h").await;
    let call = call_in_background(&h, &token, json!({ "text": "ask for it" }));
    let id = wait_for_inbox(&h, 1).await.remove(0);

    let mut bob = approver(&h, "bob").await;
    let mut dave = approver(&h, "dave").await;
    let mut alice = approver(&h, "alice").await;
    let mut root = admin(&h).await;

    let inbox = bob.get("/ui/approvals").await;
    assert!(
        inbox.body.contains(&format!("/ui/approvals/{id}")),
        "{}",
        inbox.body
    );
    assert!(inbox.body.contains("data-live=\"/ui/approvals/list\""));
    let part = bob.get("/ui/approvals/list").await;
    assert_eq!(part.status, 200);
    assert!(
        part.body.contains(&id) && !part.body.contains("<html"),
        "{}",
        part.body
    );
    part.assert_secure_headers();
    // Dave has no authority for the echo rules; alice asked (separation of duties).
    for other in [&mut dave, &mut alice] {
        let page = other.get("/ui/approvals").await;
        assert!(!page.body.contains(&id), "{}", page.body);
        let detail = other.get(&format!("/ui/approvals/{id}")).await;
        assert_eq!(detail.status, 404, "{}", detail.body);
    }
    // The admin sees everything, and cannot decide.
    let seen = root.get(&format!("/ui/approvals/{id}")).await;
    assert_eq!(seen.status, 200);
    assert!(!seen.body.contains("/decide"), "{}", seen.body);

    let detail = bob.get(&format!("/ui/approvals/{id}")).await;
    assert_eq!(detail.status, 200);
    for shown in [
        "agent-1",
        "alice",
        "testing",
        "echo.echo",
        "ask for it",
        "echo-ask",
        "charter.yaml:",
        "0 of 1 needed",
        &format!("action=\"/ui/approvals/{id}/decide\""),
    ] {
        assert!(
            detail.body.contains(shown),
            "{shown} not in {}",
            detail.body
        );
    }
    assert!(
        !detail.body.contains("name=\"remember\""),
        "echo-ask remembers nothing"
    );

    let done = bob
        .post(
            &format!("/ui/approvals/{id}/decide"),
            &[("choice", "approve"), ("reason", "looks fine")],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), format!("/ui/approvals/{id}"));
    let (status, answer) = call.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    let granted = h.records_of("approval_granted").await;
    assert_eq!(granted.len(), 1);
    let text = granted[0].to_string();
    assert!(text.contains("console") && text.contains("bob"), "{text}");
    let after = bob.get(&format!("/ui/approvals/{id}")).await;
    assert!(after.body.contains("looks fine"), "{}", after.body);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_refuses_in_the_console_what_it_refuses_on_the_api() {
    let h = Arc::new(start().await);
    let (_session, token) = h.open_session("1h").await;
    let call = call_in_background(&h, &token, json!({ "text": "quorum of two" }));
    let id = wait_for_inbox(&h, 1).await.remove(0);
    let mut bob = approver(&h, "bob").await;
    let mut carol = approver(&h, "carol").await;
    let mut dave = approver(&h, "dave").await;
    let mut root = admin(&h).await;
    let decide = format!("/ui/approvals/{id}/decide");

    // No authority, and no principal at all: refused with the workflow's own words.
    let refused = dave.post(&decide, &[("choice", "approve")]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("no_authority"), "{}", refused.body);
    refused.assert_secure_headers();
    let refused = root.post(&decide, &[("choice", "approve")]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    // `remember` where the rules name nothing to remember.
    let refused = bob
        .post(&decide, &[("choice", "approve"), ("remember", "on")])
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("remember_not_allowed"),
        "{}",
        refused.body
    );
    // A bad choice.
    let refused = bob.post(&decide, &[("choice", "maybe")]).await;
    assert_eq!(refused.status, 400, "{}", refused.body);

    // Quorum: one vote counts, the same approver twice is refused, a second approver grants.
    let first = bob.post(&decide, &[("choice", "approve")]).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let page = bob.get(&format!("/ui/approvals/{id}")).await;
    assert!(page.body.contains("1 of 2 needed"), "{}", page.body);
    assert!(page.body.contains("You have approved"), "{}", page.body);
    let twice = bob.post(&decide, &[("choice", "approve")]).await;
    assert_eq!(twice.status, 409, "{}", twice.body);
    let second = carol.post(&decide, &[("choice", "approve")]).await;
    assert_eq!(second.status, 303, "{}", second.body);
    let (status, _) = call.await.unwrap();
    assert_eq!(status, 200);
    // Single use: deciding a used request is refused.
    let late = carol.post(&decide, &[("choice", "deny")]).await;
    assert_eq!(late.status, 409, "{}", late.body);
    let refusals: Vec<String> = h
        .records_of("approval_refused")
        .await
        .iter()
        .map(|p| p["channel"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(refusals.iter().all(|c| c == "console"), "{refusals:?}");
    assert!(refusals.len() >= 5, "{refusals:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_with_remember_offered_and_long_values_clipped() {
    let h = Arc::new(start().await);
    let (_session, token) = h.open_session("1h").await;
    let long = format!("payee {}", "x".repeat(5000));
    let call = call_in_background(
        &h,
        &token,
        json!({ "text": long, "zz_later": "<b>after the long one</b>" }),
    );
    let id = wait_for_inbox(&h, 1).await.remove(0);
    let mut bob = approver(&h, "bob").await;
    let page = bob.get(&format!("/ui/approvals/{id}")).await;
    assert_eq!(page.status, 200);
    // The long value is clipped with the rest behind <details>; the later key is shown, and
    // escaped.
    assert!(page.body.contains("<details>"), "{}", page.body);
    assert!(page.body.contains("more characters"), "{}", page.body);
    assert!(page.body.contains("zz_later"));
    assert!(
        page.body
            .contains("&#60;b&#62;after the long one&#60;/b&#62;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<b>after"));
    assert!(
        page.body.contains("name=\"remember\""),
        "echo-payee remembers `text`"
    );

    let denied = bob
        .post(
            &format!("/ui/approvals/{id}/decide"),
            &[("choice", "deny"), ("reason", "not this payee")],
        )
        .await;
    assert_eq!(denied.status, 303, "{}", denied.body);
    let (status, answer) = call.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(answer["result"]["isError"], json!(true), "{answer}");
    let page = bob.get(&format!("/ui/approvals/{id}")).await;
    assert!(page.body.contains("denied") && page.body.contains("not this payee"));
    assert!(
        !page.body.contains("value=\"approve\""),
        "no vote once decided"
    );
    assert!(
        page.body.contains("value=\"reverse\""),
        "a denial may be reversed"
    );
    let inbox = bob.get("/ui/approvals").await;
    assert!(!inbox.body.contains(&id), "decided: no longer waiting");

    // Reversing the denial (as the API does, channel `console`): pending again.
    let decide = format!("/ui/approvals/{id}/decide");
    let refused = bob
        .post(&decide, &[("choice", "reverse"), ("remember", "on")])
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let mut carol = approver(&h, "carol").await;
    let reversed = carol
        .post(
            &decide,
            &[("choice", "reverse"), ("reason", "it was the right payee")],
        )
        .await;
    assert_eq!(reversed.status, 303, "{}", reversed.body);
    let records = h.records_of("approval_reversed").await;
    assert_eq!(records.len(), 1);
    assert!(records[0].to_string().contains("console"), "{}", records[0]);
    let page = carol.get(&format!("/ui/approvals/{id}")).await;
    assert!(page.body.contains("status-pending"), "{}", page.body);
    assert!(page.body.contains("value=\"approve\""));
    let twice = carol.post(&decide, &[("choice", "reverse")]).await;
    assert_eq!(twice.status, 409, "not denied any more: {}", twice.body);
    let _ = Client::new(&h);
    h.stop().await;
}
