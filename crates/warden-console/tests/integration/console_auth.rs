//! Signing in to the console and out of it, end to end against a real gateway: the cookie,
//! the records, where each role lands, the CSRF token forms carry.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

use super::common;

use common::{Client, admin, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_lands_on_the_overview_and_signs_out() {
    let h = start().await;
    let mut c = Client::new(&h);
    let form = c.get("/ui/login").await;
    assert_eq!(form.status, 200);
    form.assert_secure_headers();
    let pre = form.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(pre.starts_with("warden_console_login="), "{pre}");
    assert!(
        pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
        "{pre}"
    );

    let done = c.post("/ui/login", &[("token", &h.operator_token)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/ui");
    done.assert_secure_headers();
    let set: Vec<_> = done
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = set
        .iter()
        .find(|v| v.starts_with("warden_console="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Secure"), "no TLS here: {session}");
    let value = c.cookie("warden_console").unwrap();
    assert_eq!(value.len(), 43, "32 random bytes, base64url");

    // The bootstrap credential was made offline: its issue is recorded on first use, and
    // the sign-in is recorded; neither holds the cookie or the credential.
    let issued = h.records_of("operator_token_issued").await;
    assert!(issued.iter().any(|p| p["offline"] == true), "{issued:?}");
    let signed_in = h.records_of("console_signed_in").await;
    assert_eq!(signed_in.len(), 1);
    assert_eq!(signed_in[0]["role"], "admin");
    let text = serde_json::to_string(
        &h.records()
            .await
            .iter()
            .map(|r| &r.payload)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!text.contains(&value) && !text.contains(&h.operator_token));

    // Signed in: the layout shows who, and carries the session's CSRF token.
    let page = c.get("/ui/approvals").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("(admin)"), "{}", page.body);
    assert_eq!(c.csrf.len(), 43);

    let out = c.post("/ui/logout", &[]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.location(), "/ui/login");
    out.assert_secure_headers();
    let out_records = h.records_of("console_signed_out").await;
    assert_eq!(out_records.len(), 1);
    assert_eq!(out_records[0]["reason"], "signed_out");
    assert_eq!(
        out_records[0]["console_session"],
        signed_in[0]["console_session"]
    );
    assert!(
        c.cookie("warden_console").is_none(),
        "the cookie is cleared"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_lands_on_its_inbox_and_admin_pages_refuse_it() {
    let h = start().await;
    let mut bob = common::approver(&h, "bob").await;
    let page = bob.get("/ui/approvals").await;
    assert!(page.body.contains("(approver)"), "{}", page.body);
    // Its navigation offers the inbox only.
    assert!(
        !page.body.contains("href=\"/ui/controls\""),
        "{}",
        page.body
    );
    let signed_in = h.records_of("console_signed_in").await;
    assert_eq!(signed_in.last().unwrap()["principal"], "bob");
    let mut again = Client::new(&h);
    let token = h.approver_token("carol").await;
    let landed = again.try_sign_in(&token).await;
    assert_eq!(landed.location(), "/ui/approvals");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_page_without_a_session_redirects_to_the_sign_in_form() {
    let h = start().await;
    let mut c = Client::new(&h);
    let page = c.get("/ui/approvals").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/ui/login");
    page.assert_secure_headers();
    let mut a = admin(&h).await;
    let unknown = a.get("/ui/no-such-page").await;
    assert_eq!(unknown.status, 404);
    unknown.assert_secure_headers();
    h.stop().await;
}
