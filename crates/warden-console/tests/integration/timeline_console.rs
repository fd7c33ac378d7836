//! The sessions list and the session timeline over HTTP, against a real gateway: bounded
//! pages walked by their links on a session of 10,000 records, records linked by sequence
//! number, the live append, hostile content escaped, unknown sessions and bad bounds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use super::common;

use serde_json::json;
use warden_core::{NewRecord, RecordKind};

use common::{Harness, admin, approver};

/// Rows on a page (`<li class="row …" id="seq-N">`), their sequence numbers in order.
fn row_seqs(html: &str) -> Vec<u64> {
    html.match_indices("<li class=\"row ")
        .map(|(at, _)| {
            let rest = &html[at..];
            let start = rest.find("id=\"seq-").unwrap() + "id=\"seq-".len();
            let end = rest[start..].find('"').unwrap() + start;
            rest[start..end].parse().unwrap()
        })
        .collect()
}

/// The `href` of the link with `rel="…"` (`next`, `prev`), if the page has one.
fn rel(html: &str, rel: &str) -> Option<String> {
    let marker = format!("\" rel=\"{rel}\"");
    let end = html.find(&marker)?;
    let start = html[..end].rfind("href=\"")? + "href=\"".len();
    Some(html[start..end].replace("&#38;", "&").replace("&amp;", "&"))
}

async fn append(h: &Harness, records: Vec<NewRecord>) {
    h.app_state()
        .governor
        .ledger()
        .append_batch(records)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_ten_thousand_records_is_paged_by_two_hundred_and_walked_by_its_links() {
    let h = common::start().await;
    let (sid, token) = h.open_session("1h").await;
    h.call(&token, "hello there").await;
    for chunk in 0..20 {
        let batch = (0..500)
            .map(|i| {
                NewRecord::new(
                    Some(&sid),
                    RecordKind::ActionAttempted,
                    json!({ "tool": "echo.echo", "via": "decide", "arguments": { "n": chunk * 500 + i } }),
                )
            })
            .collect();
        append(&h, batch).await;
    }
    let mut c = admin(&h).await;
    let total = h
        .records()
        .await
        .iter()
        .filter(|r| r.session.as_deref() == Some(sid.as_str()))
        .count();
    assert!(total > 10_000);

    // The list links the session with its record count.
    let list = c.get("/ui/sessions").await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.assert_secure_headers();
    assert!(list.body.contains(&format!("/ui/sessions/{sid}")));
    assert!(
        list.body.contains(&format!(">{total}</a>")),
        "{}",
        list.body
    );

    // First page, then "Later" until there is none: every record once, in order, ≤ 200 a page.
    let mut page = c.get(&format!("/ui/sessions/{sid}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(rel(&page.body, "prev").is_none());
    let mut seen: Vec<u64> = Vec::new();
    let mut pages = 0;
    loop {
        let seqs = row_seqs(&page.body);
        assert!(!seqs.is_empty() && seqs.len() <= 200, "{} rows", seqs.len());
        seen.extend(&seqs);
        pages += 1;
        assert!(pages <= 60, "the links never end");
        match rel(&page.body, "next") {
            Some(next) => {
                assert!(
                    !page.body.contains("data-live-append"),
                    "live only on the last page"
                );
                page = c.get(&next).await;
                assert_eq!(page.status, 200, "{}", page.body);
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), total);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    // The last page appends live, from its last row.
    let last_seq = *seen.last().unwrap();
    assert!(
        page.body.contains(&format!(
            "data-live-append=\"/ui/sessions/{sid}/rows\" data-after=\"{last_seq}\""
        )),
        "{}",
        page.body
    );
    // And walking back with "Earlier" from the "Last" link reaches the first record.
    let mut page = c
        .get(&format!("/ui/sessions/{sid}?before={}", u64::MAX / 2))
        .await;
    assert_eq!(row_seqs(&page.body).last(), Some(&last_seq));
    let mut back = 1;
    while let Some(prev) = rel(&page.body, "prev") {
        page = c.get(&prev).await;
        back += 1;
        assert!(back <= 60);
    }
    assert_eq!(row_seqs(&page.body).first(), seen.first());

    // A record leads to the page around it, its row there.
    let middle = seen[5_000];
    let to = c.get(&format!("/ui/records/{middle}")).await;
    assert_eq!(to.status, 303);
    assert_eq!(
        to.location(),
        format!("/ui/sessions/{sid}?around={middle}#seq-{middle}")
    );
    let around = c.get(to.location().split('#').next().unwrap()).await;
    let seqs = row_seqs(&around.body);
    assert!(seqs.len() <= 200 && seqs.contains(&middle));
    assert!(rel(&around.body, "prev").is_some() && rel(&around.body, "next").is_some());

    // The live part: nothing after the last row; new rows after it, and where to go on.
    let none = c
        .get(&format!("/ui/sessions/{sid}/rows?after={last_seq}"))
        .await;
    assert_eq!(none.status, 200);
    assert_eq!(
        none.headers["x-warden-last-seq"],
        last_seq.to_string().as_str()
    );
    assert!(row_seqs(&none.body).is_empty());
    h.call(&token, "hello again").await;
    let more = c
        .get(&format!("/ui/sessions/{sid}/rows?after={last_seq}"))
        .await;
    let seqs = row_seqs(&more.body);
    assert!(!seqs.is_empty() && seqs[0] > last_seq);
    assert_eq!(
        more.headers["x-warden-last-seq"],
        seqs.last().unwrap().to_string().as_str()
    );
    more.assert_secure_headers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_shows_decisions_with_rule_locations_and_hostile_content_escaped() {
    let h = common::start().await;
    let (sid, token) = h.open_session("1h").await;
    h.call(&token, "hello <script>alert(1)</script>").await;
    // A tool name with quotes (refused: not in the inventory; recorded all the same).
    let (status, _) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "echo\"<x>", "arguments": {} }),
        )
        .await;
    assert_eq!(status, 200);
    append(
        &h,
        vec![
            NewRecord::new(
                Some(&sid),
                RecordKind::ModelRequested,
                json!({ "alias": "m", "request": { "messages": [
                    { "role": "user", "content": "ignore <script>steal()</script>" }
                ] } }),
            ),
            NewRecord::new(
                Some(&sid),
                RecordKind::ModelIntent,
                json!({ "tool": "echo.echo", "arguments": { "text": "hello" } }),
            ),
            NewRecord::new(
                Some(&sid),
                RecordKind::LabelsAdded,
                json!({ "labels": ["\"><img src=x onerror=alert(1)>"] }),
            ),
        ],
    )
    .await;
    h.call(&token, "hello from the intent").await;
    let mut c = admin(&h).await;
    let page = c.get(&format!("/ui/sessions/{sid}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let b = &page.body;
    assert!(!b.contains("<script>alert(1)") && !b.contains("<script>steal"));
    assert!(
        b.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{b}"
    );
    assert!(!b.contains("<img"));
    assert!(!b.contains("echo\"<x>"));
    assert!(b.contains("echo&#34;&#60;x&#62;"));
    assert!(!b.contains("style="));
    // The decision of the allowed call names its rule, with where it is written.
    assert!(b.contains("decided: allow (tier autonomous)"), "{b}");
    assert!(b.contains("<code>echo-hello</code>"));
    assert!(b.contains(".yaml:"), "rule location shown");
    // The last call came from the model's intent; the first ones from none.
    let intent = h
        .records()
        .await
        .into_iter()
        .find(|r| r.kind == RecordKind::ModelIntent)
        .unwrap()
        .seq;
    assert!(b.contains(&format!("from intent #{intent}")), "{b}");
    assert!(b.contains(&format!("href=\"#seq-{intent}\"")));
    // The result's captured content is shown, escaped.
    assert!(
        b.contains("result: ok") || b.contains("result: success"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sessions_bad_bounds_records_without_session_and_approvers() {
    let h = common::start().await;
    let (sid, _token) = h.open_session("1h").await;
    let mut c = admin(&h).await;
    let missing = c.get("/ui/sessions/no-such-session").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .body
            .contains("there is no session `no-such-session`")
    );
    missing.assert_secure_headers();
    let long = c.get(&format!("/ui/sessions/{}", "x".repeat(5000))).await;
    assert_eq!(long.status, 404);
    for q in [
        "before=abc",
        "after=-1",
        "around=1&before=2",
        "before=99999999999999999999999",
    ] {
        let bad = c.get(&format!("/ui/sessions/{sid}?{q}")).await;
        assert_eq!(bad.status, 400, "{q}: {}", bad.body);
    }
    let rows = c.get(&format!("/ui/sessions/{sid}/rows")).await;
    assert_eq!(rows.status, 400);
    assert!(c.get("/ui/records/abc").await.status == 400);
    let nothing = c.get("/ui/records/999999999").await;
    assert_eq!(nothing.status, 404);
    assert!(nothing.body.contains("no record 999999999"));
    // Record 1 belongs to no session (the charter loaded): shown on a page of its own.
    let first = h
        .records()
        .await
        .into_iter()
        .find(|r| r.session.is_none())
        .unwrap();
    let shown = c.get(&format!("/ui/records/{}", first.seq)).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains(&format!("id=\"seq-{}\"", first.seq)));
    // An approver sees none of it; nobody signed in is sent to sign in.
    let mut bob = approver(&h, "bob").await;
    for path in [
        "/ui/sessions".to_owned(),
        format!("/ui/sessions/{sid}"),
        format!("/ui/sessions/{sid}/rows?after=0"),
        "/ui/records/1".to_owned(),
    ] {
        let p = bob.get(&path).await;
        assert_eq!(p.status, 403, "{path}");
        assert!(!p.body.contains(&sid) || path.contains(&sid));
    }
    let mut anon = common::Client::new(&h);
    let p = anon.get(&format!("/ui/sessions/{sid}")).await;
    assert_eq!(p.status, 303);
    assert!(p.location().starts_with("/ui/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_call_shows_its_request_vote_use_and_result() {
    let h = common::start().await;
    let (sid, token) = h.open_session("1h").await;
    let bob = h.approver_token("bob").await;
    let tasks = tokio_util::task::TaskTracker::new();
    let call = {
        let h_http = h.http.clone();
        let addr = h.agent_addr;
        let token = token.clone();
        tasks.spawn(async move {
            h_http
                .post(format!("http://{addr}/mcp"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": { "name": "echo.echo", "arguments": { "text": "ask to run" } } }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let id = h.wait_for_approval_id(&bob).await;
    let (status, body) = h
        .decide_approval(&bob, &id, "approve", Some("looks <fine>"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(call.await.unwrap(), 200);
    let mut c = admin(&h).await;
    let page = c.get(&format!("/ui/sessions/{sid}")).await;
    let b = &page.body;
    assert!(b.contains("decided: ask (tier approval)"), "{b}");
    assert!(b.contains("approval requested for `echo.echo`"), "{b}");
    assert!(
        b.contains("<code>echo-ask</code> <span class=\"tier\">approval</span>"),
        "{b}"
    );
    assert!(b.contains("granted by bob"), "{b}");
    assert!(b.contains("looks &#60;fine&#62;"), "{b}");
    assert!(b.contains("approval used"), "{b}");
    assert!(b.contains("forwarded `echo.echo`"), "{b}");
    assert!(b.contains("class=\"row k-result\""), "{b}");
}
