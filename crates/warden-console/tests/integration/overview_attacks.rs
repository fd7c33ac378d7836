//! Adversarial tests of the views' surfaces (overview, verification, timeline, records,
//! charter, explain, search): no console session, a forged or replayed cookie, the agent's
//! token, a cross-site or token-less verification, an oversized form, hostile path and query
//! values. Nothing is shown and nothing runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use super::common;

use reqwest::header::{HeaderMap, HeaderValue};

use common::{Client, admin};

/// Every GET route of the views, for a session `sid`.
fn pages(sid: &str) -> Vec<String> {
    vec![
        "/ui".to_owned(),
        "/ui/overview/live".to_owned(),
        "/ui/sessions".to_owned(),
        format!("/ui/sessions/{sid}"),
        format!("/ui/sessions/{sid}/rows?after=0"),
        "/ui/records/1".to_owned(),
        "/ui/charter".to_owned(),
        "/ui/charter/explain?tool=echo.echo&args=%7B%7D".to_owned(),
        "/ui/search?q=hello".to_owned(),
    ]
}

/// Panics unless `page` gave nothing away: sent to sign in (a GET) or refused.
fn refused(page: &common::Page, sid: &str, what: &str) {
    assert!(
        (page.status == 303 && page.location().starts_with("/ui/login"))
            || page.status == 401
            || page.status == 403,
        "{what}: {} {}",
        page.status,
        page.body
    );
    assert!(!page.body.contains(sid), "{what}: the session leaked");
    assert!(!page.body.contains("hello there"), "{what}: content leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_forged_replayed_or_agent_credential_reads_a_view() {
    let h = common::start().await;
    let (sid, token) = h.open_session("1h").await;
    h.call(&token, "hello there").await;
    for path in pages(&sid) {
        // No console session.
        let mut anon = Client::new(&h);
        refused(&anon.get(&path).await, &sid, &format!("anonymous {path}"));
        // A forged cookie.
        let mut forged = Client::new(&h);
        forged
            .cookies
            .push(("warden_console".to_owned(), "A".repeat(43)));
        refused(&forged.get(&path).await, &sid, &format!("forged {path}"));
        // The agent's token, as the cookie and as a bearer token.
        let mut agent = Client::new(&h);
        agent
            .cookies
            .push(("warden_console".to_owned(), token.clone()));
        refused(
            &agent.get(&path).await,
            &sid,
            &format!("agent cookie {path}"),
        );
        let mut bearer = HeaderMap::new();
        bearer.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let mut agent = Client::new(&h);
        refused(
            &agent.get_with(&path, bearer).await,
            &sid,
            &format!("agent bearer {path}"),
        );
        // The operator token itself as a bearer: the console takes only its cookie.
        let mut op = HeaderMap::new();
        op.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", h.operator_token)).unwrap(),
        );
        let mut bare = Client::new(&h);
        refused(
            &bare.get_with(&path, op).await,
            &sid,
            &format!("operator bearer {path}"),
        );
    }
    // A cookie replayed after sign-out.
    let mut c = admin(&h).await;
    let stolen = c.clone();
    let out = c.post("/ui/logout", &[]).await;
    assert!(out.status == 303 || out.status == 200, "{}", out.body);
    let mut replay = stolen;
    for path in pages(&sid) {
        refused(&replay.get(&path).await, &sid, &format!("replayed {path}"));
    }
    let verify = replay.post("/ui/verify", &[]).await;
    refused(&verify, &sid, "replayed verify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_refuses_cross_site_tokenless_and_oversized_forms() {
    let h = common::start().await;
    let mut c = admin(&h).await;
    let csrf = c.csrf.clone();
    let form = format!("csrf={csrf}");
    // Another origin, with the right token.
    let mut evil = HeaderMap::new();
    evil.insert("origin", HeaderValue::from_static("https://evil.example"));
    let p = c
        .post_raw(
            "/ui/verify",
            "application/x-www-form-urlencoded",
            form.clone(),
            evil,
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    // No token, an empty one.
    let mut same = HeaderMap::new();
    same.insert("origin", HeaderValue::from_str(&c.base).unwrap());
    for body in ["", "csrf=", "other=1"] {
        let p = c
            .post_raw(
                "/ui/verify",
                "application/x-www-form-urlencoded",
                body,
                same.clone(),
            )
            .await;
        assert_eq!(p.status, 403, "{body:?}: {}", p.body);
    }
    // Not a form.
    let p = c
        .post_raw(
            "/ui/verify",
            "application/json",
            format!("{{\"csrf\":\"{csrf}\"}}"),
            same.clone(),
        )
        .await;
    assert!(
        p.status == 403 || p.status == 415 || p.status == 400,
        "{}",
        p.status
    );
    // Over the form limit.
    let big = format!("csrf={csrf}&pad={}", "x".repeat(70 * 1024));
    let p = c
        .post_raw(
            "/ui/verify",
            "application/x-www-form-urlencoded",
            big,
            same.clone(),
        )
        .await;
    assert!(p.status == 413 || p.status == 403, "{}", p.status);
    // A GET does not verify.
    let p = c.get("/ui/verify").await;
    assert!(p.status == 405 || p.status == 404, "{}", p.status);
    // Nothing ran.
    assert!(
        c.get("/ui")
            .await
            .body
            .contains("none since the gateway started")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_and_queries_get_clear_pages() {
    let h = common::start().await;
    let mut c = admin(&h).await;
    for path in [
        "/ui/sessions/..%2F..%2Fetc%2Fpasswd",
        "/ui/sessions/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/ui/sessions/%00",
    ] {
        let p = c.get(path).await;
        assert_eq!(p.status, 404, "{path}: {}", p.body);
        assert!(!p.body.contains("<script>alert"), "{path}");
        p.assert_secure_headers();
    }
    for path in [
        "/ui/records/-1",
        "/ui/records/1e3",
        "/ui/records/99999999999999999999999999",
        "/ui/sessions/x/rows?after=%3Cb%3E",
    ] {
        let p = c.get(path).await;
        assert_eq!(p.status, 400, "{path}: {}", p.body);
    }
    let q = format!("/ui/search?q={}", "%22".repeat(600));
    let p = c.get(&q).await;
    assert_eq!(p.status, 400);
    let p = c.get("/ui/search?q=%00%00%00").await;
    assert_eq!(p.status, 200, "{}", p.body);
    let p = c
        .get("/ui/charter/explain?tool=echo.echo&args=%7B%22a%22%3A%5B%5B%5B%5B%5B%5B%5B%5B%5B%5B%5D%5D%5D%5D%5D%5D%5D%5D%5D%5D%7D")
        .await;
    assert_eq!(
        p.status, 200,
        "deeply nested but small arguments are decided"
    );
    let deep = format!(
        "/ui/charter/explain?tool=echo.echo&args={}",
        "%5B".repeat(5000)
    );
    let p = c.get(&deep).await;
    assert_eq!(p.status, 400, "{}", p.body);
}
