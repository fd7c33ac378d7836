//! The agents pages over HTTP, against a real gateway: the list and one agent as the API
//! computes them, with the console's headers; admins only; hostile ids get a page.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use super::common;

use common::{admin, approver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_pages_admins_only() {
    let h = common::start().await;
    let (session, _) = h.open_session("1h").await;
    let mut c = admin(&h).await;
    let list = c.get("/ui/agents").await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.assert_secure_headers();
    assert!(
        list.body
            .contains(r#"<a href="/ui/agents/agent-1"><code>agent-1</code></a>"#),
        "{}",
        list.body
    );
    assert!(list.body.contains(r#"href="/ui/charter?agent=agent-1""#));

    let page = c.get("/ui/agents/agent-1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_secure_headers();
    assert!(
        page.body.contains(
            r#"<code>echo.echo</code></td><td><span class="tier">autonomous</span> (echo-hello); <span class="tier">approval</span> (echo-ask, echo-quorum, echo-payee); otherwise <span class="tier">approval</span> (default posture)"#
        ),
        "{}",
        page.body
    );
    // Authority, not separation of duties (which is judged per request): alice is listed.
    assert!(
        page.body
            .contains("<code>echo-quorum</code>: alice, bob, carol (quorum 2)"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!(r#"href="/ui/sessions/{session}""#)),
        "{}",
        page.body
    );

    let unknown = c.get("/ui/agents/..%2F..%2Fetc").await;
    assert_eq!(unknown.status, 404);
    unknown.assert_secure_headers();
    assert!(
        unknown.body.contains("is not an agent of this gateway"),
        "{}",
        unknown.body
    );
    let long = c.get(&format!("/ui/agents/{}", "a".repeat(300))).await;
    assert_eq!(long.status, 400);
    let bad = c.get("/ui/agents/%FF").await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // An approver is refused, though the charter names it an approver.
    let mut b = approver(&h, "bob").await;
    for path in ["/ui/agents", "/ui/agents/agent-1"] {
        let refused = b.get(path).await;
        assert_eq!(refused.status, 403, "{path}");
        assert!(!refused.body.contains("echo-quorum"));
    }
    h.stop().await;
}
