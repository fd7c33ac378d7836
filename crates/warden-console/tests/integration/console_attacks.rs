//! The console's security surface under attack, against a real gateway: forged, replayed and
//! revoked cookies; the agent's token and an observer credential at sign-in; missing and
//! forged CSRF tokens; forms from another origin, of the wrong type, oversized or malformed;
//! an approver reaching for admin pages and for decisions it may not take; too many live
//! streams; the security headers on every answer, errors and redirects included.

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

use common::{Client, Harness, admin, approver, start, start_with};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use warden_core::ManualClock;

const FORM: &str = "application/x-www-form-urlencoded";

/// Issues an operator credential (as the admin, on the API); its id and token.
async fn issue(h: &Harness, body: Value) -> (String, String) {
    let (status, got) = h
        .operator(
            reqwest::Method::POST,
            "/v1/operator-tokens",
            &h.operator_token,
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{got}");
    (
        got["id"].as_str().unwrap().to_owned(),
        got["token"].as_str().unwrap().to_owned(),
    )
}

fn origin(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("origin", HeaderValue::from_str(value).unwrap());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_cookie_signs_nothing_in() {
    let h = start().await;
    let mut c = Client::new(&h);
    c.cookies.push((
        "warden_console".to_owned(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
    ));
    let page = c.get("/ui/approvals").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/ui/login");
    page.assert_secure_headers();
    let post = c
        .post_raw("/ui/logout", FORM, "csrf=x", HeaderMap::new())
        .await;
    assert_eq!(post.status, 401, "{}", post.body);
    post.assert_secure_headers();
    // A very long cookie is not even hashed.
    c.cookies = vec![("warden_console".to_owned(), "A".repeat(4000))];
    assert_eq!(c.get("/ui/approvals").await.status, 303);
    // The console cookie is no credential on the API.
    let mut admin_client = admin(&h).await;
    let cookie = admin_client.cookie_header();
    let api = reqwest::Client::new()
        .get(format!("{}/v1/sessions", admin_client.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    let _ = admin_client.get("/ui/approvals").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_token_an_observer_credential_and_garbage_are_refused_at_sign_in() {
    let h = start().await;
    let (_session, agent_token) = h.open_session("1h").await;
    let (_, observer) = issue(&h, json!({ "name": "obs", "role": "observer" })).await;
    let cases = [
        (agent_token.as_str(), 403, "agent"),
        ("wa_not-even-a-real-one", 403, "agent"),
        (
            observer.as_str(),
            403,
            "nothing here for an observer credential",
        ),
        (
            "wo_forged0000000000000000000000000000000000",
            401,
            "unknown or revoked",
        ),
        ("hunter2", 401, "not an operator credential"),
        ("", 400, "paste an operator credential"),
    ];
    for (token, status, says) in cases {
        let mut c = Client::new(&h);
        let page = c.try_sign_in(token).await;
        assert_eq!(page.status, status, "{token}: {}", page.body);
        assert!(page.body.contains(says), "{token}: {}", page.body);
        page.assert_secure_headers();
        assert!(c.cookie("warden_console").is_none());
        // Refused with the form again, ready for another try; never echoing the token.
        assert!(page.body.contains("name=\"token\""));
        assert!(token.is_empty() || !page.body.contains(token));
    }
    let long = format!("wo_{}", "a".repeat(300));
    let page = Client::new(&h).try_sign_in(&long).await;
    assert_eq!(page.status, 400);
    assert!(h.records_of("console_signed_in").await.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_credential_ends_its_console_sessions_at_once() {
    let h = start().await;
    let (id, token) = issue(
        &h,
        json!({ "name": "bob-laptop", "role": "approver", "principal": "bob" }),
    )
    .await;
    let mut bob = Client::new(&h);
    bob.sign_in(&token).await;
    let mut stream = bob.live().await;
    let mut seen = String::new();
    assert!(common::read_until(&mut stream, &mut seen, "event: head").await);
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/operator-tokens/{id}/revoke"),
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let page = bob.get("/ui/approvals").await;
    assert_eq!(page.status, 303, "{}", page.body);
    common::read_to_end(&mut stream, &mut seen).await;
    let out = h.records_of("console_signed_out").await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["reason"], "revoked");
    // Signing in again with it is refused.
    let again = Client::new(&h).try_sign_in(&token).await;
    assert_eq!(again.status, 401);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_replayed_after_sign_out_or_expiry_is_refused() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let h = start_with(clock.clone()).await;
    let mut c = admin(&h).await;
    let saved = c.cookies.clone();
    let csrf = c.csrf.clone();
    assert_eq!(c.post("/ui/logout", &[]).await.status, 303);
    c.cookies = saved;
    c.csrf = csrf;
    let replay = c.get("/ui/approvals").await;
    assert_eq!(replay.status, 303);
    assert_eq!(replay.location(), "/ui/login");
    let replay = c.post("/ui/logout", &[]).await;
    assert_eq!(replay.status, 401);
    assert_eq!(h.records_of("console_signed_out").await.len(), 1);

    // Expiry: 8 hours after sign-in, whatever happened in between.
    let mut c = admin(&h).await;
    clock.advance(time::Duration::hours(7));
    assert_eq!(c.get("/ui/approvals").await.status, 200, "still within 8 h");
    clock.advance(time::Duration::hours(1));
    let expired = c.get("/ui/approvals").await;
    assert_eq!(expired.status, 303);
    let expired = c.post("/ui/logout", &[]).await;
    assert_eq!(expired.status, 401);
    let reasons: Vec<Value> = h
        .records_of("console_signed_out")
        .await
        .iter()
        .map(|p| p["reason"].clone())
        .collect();
    assert_eq!(reasons, vec![json!("signed_out"), json!("expired")]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_right_csrf_token_or_from_another_site_are_refused() {
    let h = start().await;
    let mut c = admin(&h).await;
    let good_csrf = c.csrf.clone();
    let same = c.base.clone();

    let missing = c.post_raw("/ui/logout", FORM, "", origin(&same)).await;
    assert_eq!(missing.status, 403, "{}", missing.body);
    assert!(missing.body.contains("CSRF"));
    missing.assert_secure_headers();
    let forged = c
        .post_raw("/ui/logout", FORM, "csrf=forged", origin(&same))
        .await;
    assert_eq!(forged.status, 403);
    let repeated = format!("csrf={good_csrf}&csrf={good_csrf}");
    let twice = c
        .post_raw("/ui/logout", FORM, repeated, origin(&same))
        .await;
    assert_eq!(twice.status, 400);

    let good = format!("csrf={good_csrf}");
    for bad_origin in ["http://evil.example", "null", "https://127.0.0.1"] {
        let cross = c
            .post_raw("/ui/logout", FORM, good.clone(), origin(bad_origin))
            .await;
        assert_eq!(cross.status, 403, "{bad_origin}: {}", cross.body);
        assert!(cross.body.contains("another site"));
    }
    let mut fetch_site = HeaderMap::new();
    fetch_site.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
    let cross = c
        .post_raw("/ui/logout", FORM, good.clone(), fetch_site)
        .await;
    assert_eq!(cross.status, 403);
    assert!(h.records_of("console_signed_out").await.is_empty());

    // The sign-in form: its token must match the pre-sign-in cookie, from this origin.
    let mut fresh = Client::new(&h);
    let _ = fresh.get("/ui/login").await;
    let body = format!("csrf=wrong&token={}", h.operator_token);
    let login = fresh.post_raw("/ui/login", FORM, body, origin(&same)).await;
    assert_eq!(login.status, 403, "{}", login.body);
    let mut no_cookie = Client::new(&h);
    let body = format!("csrf=anything&token={}", h.operator_token);
    let login = no_cookie
        .post_raw("/ui/login", FORM, body, origin(&same))
        .await;
    assert_eq!(login.status, 403);
    let mut other_site = Client::new(&h);
    let _ = other_site.get("/ui/login").await;
    let body = format!("csrf={}&token={}", other_site.csrf, h.operator_token);
    let login = other_site
        .post_raw("/ui/login", FORM, body, origin("http://evil.example"))
        .await;
    assert_eq!(login.status, 403);
    assert_eq!(
        h.records_of("console_signed_in").await.len(),
        1,
        "only the admin's"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_type_oversized_and_malformed_forms_are_refused_with_a_page() {
    let h = start().await;
    let mut c = admin(&h).await;
    let same = origin(&c.base.clone());
    let good = format!("csrf={}", c.csrf);

    for ct in [
        "application/json",
        "multipart/form-data; boundary=x",
        "text/plain",
    ] {
        let page = c
            .post_raw("/ui/logout", ct, good.clone(), same.clone())
            .await;
        assert_eq!(page.status, 415, "{ct}: {}", page.body);
        page.assert_secure_headers();
    }
    let big = format!("{good}&reason={}", "x".repeat(70 * 1024));
    let page = c
        .post_raw("/ui/logout", FORM, big.clone(), same.clone())
        .await;
    assert_eq!(page.status, 413, "{}", page.body);
    page.assert_secure_headers();
    let mut fresh = Client::new(&h);
    let _ = fresh.get("/ui/login").await;
    let page = fresh.post_raw("/ui/login", FORM, big, same.clone()).await;
    assert_eq!(page.status, 413);
    page.assert_secure_headers();

    // A decision form with a field it does not have, or without its choice.
    let unknown = format!("{good}&choice=approve&admin=true");
    let page = c
        .post_raw("/ui/approvals/x/decide", FORM, unknown, same.clone())
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    let page = c
        .post_raw("/ui/approvals/x/decide", FORM, good.clone(), same.clone())
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    // Bytes that are not text.
    let page = c
        .post_raw(
            "/ui/logout",
            FORM,
            vec![0xff, 0xfe, b'=', 0x80],
            same.clone(),
        )
        .await;
    assert!(page.status == 400 || page.status == 403, "{}", page.body);
    page.assert_secure_headers();
    assert!(h.records_of("console_signed_out").await.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_reaches_neither_admin_pages_nor_decisions_it_may_not_take() {
    let h = Arc::new(start().await);
    let (_session, token) = h.open_session("1h").await;
    let (h2, t2) = (h.clone(), token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "ask for it").await });
    let id = h.wait_for_approval_id(&h.operator_token).await;
    let mut dave = approver(&h, "dave").await;
    for path in ["/ui/controls", "/ui/controls/alerts"] {
        let page = dave.get(path).await;
        assert_eq!(page.status, 403, "{path}");
        page.assert_secure_headers();
    }
    let lift = dave
        .post("/ui/controls/whatever/lift", &[("reason", "x")])
        .await;
    assert_eq!(lift.status, 403);
    let decide = dave
        .post(
            &format!("/ui/approvals/{id}/decide"),
            &[("choice", "approve")],
        )
        .await;
    assert_eq!(decide.status, 403, "{}", decide.body);
    assert!(decide.body.contains("no_authority"), "{}", decide.body);
    let detail = dave.get(&format!("/ui/approvals/{id}")).await;
    assert_eq!(detail.status, 404);
    // Still pending: an authorised approver releases it.
    let (status, _) = h
        .decide_approval(&h.approver_token("bob").await, &id, "approve", None)
        .await;
    assert_eq!(status, 200);
    call.await.unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_paths_get_a_clear_page_with_the_headers() {
    let h = start().await;
    let mut c = admin(&h).await;
    for path in [
        "/ui/approvals/00000000-0000-0000-0000-000000000000",
        &format!("/ui/approvals/{}", "x".repeat(500)),
        "/ui/nothing-here",
        "/ui/assets/nothing.css",
    ] {
        let page = c.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        page.assert_secure_headers();
    }
    let page = c
        .post(
            "/ui/approvals/00000000-0000-0000-0000-000000000000/decide",
            &[("choice", "deny")],
        )
        .await;
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(page.body.contains("unknown_approval"), "{}", page.body);
    // The assets and the sign-in form carry the headers too.
    for path in [
        "/ui/assets/console.css",
        "/ui/assets/console.js",
        "/ui/login",
    ] {
        let page = c.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        page.assert_secure_headers();
    }
    // No page has inline script or style (the CSP would block them).
    for path in ["/ui/login", "/ui/approvals", "/ui/controls"] {
        let page = c.get(path).await;
        assert!(
            !page.body.contains("<script>") && !page.body.contains("style="),
            "{path}"
        );
        assert!(!page.body.contains("<style"), "{path}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_bounded() {
    let h = start().await;
    let c = admin(&h).await;
    let mut open = Vec::new();
    for _ in 0..warden_console::live::MAX_LIVE_STREAMS {
        let s = c.live().await;
        assert_eq!(s.status(), 200);
        open.push(s);
    }
    let refused = c.live().await;
    assert_eq!(refused.status(), 503);
    let mut c2 = c.clone();
    let page = c2.get("/ui/approvals").await;
    assert_eq!(page.status, 200, "pages still answer");
    // One closes: a place is free again (once the server has seen it go).
    drop(open.pop());
    let mut freed = false;
    for _ in 0..200 {
        let s = c.live().await;
        if s.status() == 200 {
            freed = true;
            open.push(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(freed, "a closed stream gives its place back");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_the_ledger_cannot_record_is_refused() {
    let h = Harness::builder(common::charter)
        .configure(|c| c.ledger_max_bytes = Some(64 * 1024))
        .start()
        .await;
    let bob = h.approver_token("bob").await;
    // Fill the ledger (alerts, with shorter reasons as it fills) until it refuses even a
    // short record.
    let mut refused = 0;
    for size in [1000, 100, 1] {
        for i in 0..500 {
            let (status, _) = h
                .operator(
                    reqwest::Method::POST,
                    "/v1/controls",
                    &h.operator_token,
                    Some(json!({
                        "action": "alert", "scope": "gateway",
                        "reason": format!("{i} {}", "x".repeat(size)),
                    })),
                )
                .await;
            if status != 201 {
                assert_eq!(status, 503);
                refused += 1;
                break;
            }
        }
    }
    assert_eq!(refused, 3, "the ledger never refused an append");
    // Sign in until the ledger cannot record one more: that one is refused, without a
    // session; every one let in is recorded.
    let mut signed_in = 0;
    let mut refusal = None;
    for _ in 0..200 {
        let mut c = Client::new(&h);
        let page = c.try_sign_in(&bob).await;
        if page.status == 303 {
            signed_in += 1;
            continue;
        }
        assert!(
            c.cookie("warden_console").is_none(),
            "no session without its record"
        );
        refusal = Some(page);
        break;
    }
    let page = refusal.expect("the ledger never refused a sign-in");
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(
        page.body.contains("cannot record the sign-in"),
        "{}",
        page.body
    );
    assert_eq!(h.records_of("console_signed_in").await.len(), signed_in);
    h.take().shutdown().await;
}
