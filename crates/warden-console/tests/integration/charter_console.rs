//! The charter page and explain over HTTP, against a real gateway: rules by tier with their
//! locations and approvers, explain deciding as `warden explain` does, malformed and
//! oversized input refused with a sentence, admins only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use super::common;

use common::{admin, approver, serde_urlencoded_pairs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charter_page_and_explain() {
    let h = common::start().await;
    let mut c = admin(&h).await;
    let page = c.get("/ui/charter").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_secure_headers();
    for id in ["echo-hello", "echo-ask", "echo-quorum", "echo-payee"] {
        assert!(page.body.contains(&format!("<code>{id}</code>")), "{id}");
    }
    assert!(
        page.body.contains("approved by bob, carol (quorum 2)") || page.body.contains("(quorum 2)")
    );
    assert!(
        page.body.contains("text: prefix &#34;hello&#34;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<code>alice</code>"));
    let explain =
        |fields: &[(&str, &str)]| format!("/ui/charter/explain?{}", serde_urlencoded_pairs(fields));

    let allowed = c
        .get(&explain(&[
            ("tool", "echo.echo"),
            ("args", r#"{"text":"hello you"}"#),
            ("user", "alice"),
        ]))
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert!(allowed.body.contains("<dd class=\"verdict\">allow</dd>"));
    assert!(allowed.body.contains(
        "<code>echo-hello</code> <span class=\"tier\">autonomous</span> <span class=\"loc\">"
    ));
    let asked = c
        .get(&explain(&[
            ("tool", "echo.echo"),
            ("args", r#"{"text":"ask me"}"#),
        ]))
        .await;
    assert!(
        asked.body.contains("<dd class=\"verdict\">ask</dd>"),
        "{}",
        asked.body
    );
    assert!(asked.body.contains("quorum 1 within 60s"));

    for (fields, says) in [
        (
            vec![("tool", "echo.echo"), ("args", "{not json")],
            "the arguments are not valid JSON",
        ),
        (
            vec![("tool", "echo.echo"), ("args", "[1]")],
            "the arguments must be a JSON object",
        ),
        (
            vec![("tool", "echo.echo"), ("user", "mallory")],
            "unknown user `mallory`",
        ),
        (
            vec![("tool", "echo.echo"), ("labels", "secret")],
            "unknown label `secret`",
        ),
        (vec![("args", "{}")], "give the tool"),
    ] {
        let p = c.get(&explain(&fields)).await;
        assert_eq!(p.status, 400, "{fields:?}");
        assert!(p.body.contains(says), "{says}: {}", p.body);
    }
    let big = "x".repeat(20_000);
    let p = c
        .get(&explain(&[("tool", "echo.echo"), ("args", &big)]))
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("at most 16 KiB"));
    // What was typed comes back escaped, never as markup.
    let p = c
        .get(&explain(&[
            ("tool", "<script>x</script>"),
            ("args", "</textarea><img src=x>"),
        ]))
        .await;
    assert!(!p.body.contains("<script>x") && !p.body.contains("<img src=x>"));

    let mut bob = approver(&h, "bob").await;
    assert_eq!(bob.get("/ui/charter").await.status, 403);
    assert_eq!(
        bob.get(&explain(&[("tool", "echo.echo")])).await.status,
        403
    );
}
