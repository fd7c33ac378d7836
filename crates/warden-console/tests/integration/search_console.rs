//! Search over HTTP, against a real gateway and its real search index: hits linked to their
//! records and sessions, snippets escaped, narrowing to a session, empty, oversized and
//! query-syntax input, admins only.

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
async fn search_finds_captured_text_and_shows_it_escaped() {
    let h = common::start().await;
    let (sid, token) = h.open_session("1h").await;
    let (other, other_token) = h.open_session("1h").await;
    h.call(
        &token,
        "hello zebra <script>alert(1)</script> \"><img src=x>",
    )
    .await;
    h.call(&other_token, "hello zebra elsewhere").await;
    let mut c = admin(&h).await;
    let q = |fields: &[(&str, &str)]| format!("/ui/search?{}", serde_urlencoded_pairs(fields));

    let all = c.get(&q(&[("q", "zebra")])).await;
    assert_eq!(all.status, 200, "{}", all.body);
    all.assert_secure_headers();
    assert!(all.body.contains("2 hits"), "{}", all.body);
    assert!(all.body.contains("<mark>zebra</mark>"));
    assert!(!all.body.contains("<script>alert") && !all.body.contains("<img src=x>"));
    assert!(all.body.contains("&#60;script&#62;"), "{}", all.body);
    assert!(all.body.contains(&format!("/ui/sessions/{sid}")));
    assert!(all.body.contains(&format!("/ui/sessions/{other}")));
    let attempt = h
        .records()
        .await
        .into_iter()
        .find(|r| {
            r.session.as_deref() == Some(sid.as_str()) && r.kind.as_str() == "action_attempted"
        })
        .unwrap()
        .seq;
    assert!(
        all.body
            .contains(&format!("href=\"/ui/records/{attempt}\""))
    );

    let narrowed = c.get(&q(&[("q", "zebra"), ("session", &sid)])).await;
    assert!(narrowed.body.contains("1 hits"), "{}", narrowed.body);
    assert!(!narrowed.body.contains(&format!("/ui/sessions/{other}")));

    // Query syntax is text: no error, no match.
    let syntax = c.get(&q(&[("q", "zebra OR \" NEAR( *")])).await;
    assert_eq!(syntax.status, 200, "{}", syntax.body);
    assert!(syntax.body.contains("No match."));

    let opened = c.get("/ui/search").await;
    assert_eq!(opened.status, 200);
    assert!(!opened.body.contains("class=\"bad problem\""));
    let empty = c.get(&q(&[("q", "  ")])).await;
    assert_eq!(empty.status, 200);
    assert!(empty.body.contains("type some words to search for"));
    let long = c.get(&q(&[("q", &"z".repeat(513))])).await;
    assert_eq!(long.status, 400);
    assert!(long.body.contains("longer than 512 bytes"));
    let long_session = c
        .get(&q(&[("q", "zebra"), ("session", &"s".repeat(200))]))
        .await;
    assert_eq!(long_session.status, 400);

    let mut bob = approver(&h, "bob").await;
    assert_eq!(bob.get(&q(&[("q", "zebra")])).await.status, 403);
}
