//! Issue 11, point 3: the client credentials grant through the `oauth2` crate, against a real
//! HTTP token endpoint on loopback.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use axum::http::HeaderMap;
use serde_json::json;

use super::*;

const SECRET: &str = "s3cr:t/+%client-secret";

/// What the endpoint answers: status, content type, body.
type Answer = (u16, &'static str, String);

#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    redirected: AtomicUsize,
    last: Mutex<Option<(HeaderMap, String)>>,
}

/// A token endpoint on loopback answering `answer` (after `delay`); `/elsewhere` counts the
/// requests that followed a redirect.
async fn endpoint(answer: Answer, delay: Duration) -> (url::Url, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let (s1, s2) = (seen.clone(), seen.clone());
    let app = axum::Router::new()
        .route(
            "/token",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (seen, answer) = (s1.clone(), answer.clone());
                async move {
                    seen.calls.fetch_add(1, Ordering::SeqCst);
                    *seen.last.lock().unwrap() = Some((headers, body));
                    tokio::time::sleep(delay).await;
                    let (status, content_type, body) = answer;
                    let mut r = axum::response::Response::new(axum::body::Body::from(body));
                    *r.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
                    r.headers_mut()
                        .insert("content-type", content_type.parse().unwrap());
                    if status == 302 {
                        r.headers_mut()
                            .insert("location", "/elsewhere".parse().unwrap());
                    }
                    r
                }
            }),
        )
        .route(
            "/elsewhere",
            axum::routing::any(move || {
                let seen = s2.clone();
                async move {
                    seen.redirected.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({ "access_token": "followed", "token_type": "bearer" }))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Served until the test ends.
    tokio_util::task::TaskTracker::new().spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/token").parse().unwrap(), seen)
}

fn tokens(token_url: url::Url, timeout: Duration) -> OAuthTokens {
    OAuthTokens::with_timeout(
        OAuthSettings {
            token_url,
            client_id: "warden client".to_owned(),
            client_secret: SECRET.to_owned(),
            scopes: vec!["repo".to_owned(), "read:org".to_owned()],
        },
        timeout,
    )
    .unwrap()
}

fn json_answer(status: u16, body: serde_json::Value) -> Answer {
    (status, "application/json", body.to_string())
}

/// The error of one fetch against an endpoint answering `answer`.
async fn refusal(answer: Answer) -> String {
    let (url, _) = endpoint(answer, Duration::ZERO).await;
    tokens(url, TOKEN_TIMEOUT).token().await.unwrap_err()
}

/// The request is RFC 6749's client credentials grant (section 4.4, client authentication
/// per section 2.3.1), the token is cached until it nears expiry, and `Debug` shows neither
/// the secret nor the token.
#[tokio::test]
async fn issue_11_oauth_request_is_the_rfc_6749_grant_and_the_token_is_cached() {
    let answer = json_answer(
        200,
        json!({ "access_token": "tok-7f3a", "token_type": "Bearer", "expires_in": 3600 }),
    );
    let (url, seen) = endpoint(answer, Duration::ZERO).await;
    let t = tokens(url, TOKEN_TIMEOUT);
    assert_eq!(t.token().await.unwrap(), "tok-7f3a");
    assert_eq!(t.token().await.unwrap(), "tok-7f3a");
    assert_eq!(
        seen.calls.load(Ordering::SeqCst),
        1,
        "the token was not reused"
    );
    let (headers, body) = seen.last.lock().unwrap().clone().unwrap();
    // base64("warden+client:s3cr%3At%2F%2B%25client-secret")
    assert_eq!(
        headers["authorization"],
        "Basic d2FyZGVuK2NsaWVudDpzM2NyJTNBdCUyRiUyQiUyNWNsaWVudC1zZWNyZXQ="
    );
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(body, "grant_type=client_credentials&scope=repo+read%3Aorg");
    assert!(!body.contains("client_secret"), "{body}");
    let debug = format!("{t:?}");
    assert!(
        !debug.contains("s3cr") && !debug.contains("tok-7f3a"),
        "{debug}"
    );
    // The lifetime counts from the request: refreshed 30 s before the hour is up.
    let c = t.fetch().await.unwrap();
    let left = c.refresh_at.saturating_duration_since(Instant::now());
    assert!(
        left > Duration::from_secs(3565) && left <= Duration::from_secs(3570),
        "{left:?}"
    );
}

/// Error responses (RFC 6749, section 5.2) show the status, the standard code and what it
/// means, and a short printable `error_description`, never one that repeats the secret.
#[tokio::test]
async fn issue_11_oauth_error_responses_are_surfaced_without_the_secret() {
    let e = refusal(json_answer(
        400,
        json!({ "error": "invalid_scope", "error_description": "scope read:org is not granted to this client" }),
    ))
    .await;
    assert!(
        e.contains("refused the client credentials grant (400 Bad Request, error `invalid_scope`")
            && e.contains("`oauth.scopes`")
            && e.contains("the endpoint says: \"scope read:org is not granted to this client\""),
        "{e}"
    );
    let e = refusal(json_answer(401, json!({ "error": "invalid_client" }))).await;
    assert!(
        e.contains("401 Unauthorized, error `invalid_client`: the client id or secret is wrong"),
        "{e}"
    );
    for code in [
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_request",
        "invalid_grant",
    ] {
        let e = refusal(json_answer(400, json!({ "error": code }))).await;
        assert!(e.contains(&format!("error `{code}`: ")), "{e}");
    }
    // An extension code is shown when it is a plain word, and only then.
    let e = refusal(json_answer(400, json!({ "error": "slow_down" }))).await;
    assert!(
        e.contains("error `slow_down`: a code RFC 6749 does not define"),
        "{e}"
    );
    let e = refusal(json_answer(400, json!({ "error": "<b>\nx" }))).await;
    assert!(e.contains("error `unknown`") && !e.contains("<b>"), "{e}");
    // A description repeating the secret (as sent, or form-encoded) is not shown.
    for echoed in [SECRET, "s3cr%3At%2F%2B%25client-secret"] {
        let e = refusal(json_answer(
            401,
            json!({ "error": "invalid_client", "error_description": format!("bad secret {echoed}") }),
        ))
        .await;
        assert!(
            e.contains("invalid_client") && !e.contains("bad secret"),
            "{e}"
        );
    }
    // Neither is one that is not short printable text.
    for odd in ["line\nbreak", &"x".repeat(201), "quote \" inside"] {
        let e = refusal(json_answer(
            400,
            json!({ "error": "invalid_request", "error_description": odd }),
        ))
        .await;
        assert!(!e.contains("the endpoint says"), "{e}");
    }
}

/// A token without `expires_in` is reused for a minute (refreshed 15 s early), and so is one
/// whose `expires_in` is not a number; a string of digits is read as one; a huge `expires_in`
/// is taken as a day, not an overflow (before, the expiry instant overflowed: a panic).
#[tokio::test]
async fn issue_11_oauth_expires_in_absent_or_huge() {
    let (url, seen) = endpoint(
        json_answer(
            200,
            json!({ "access_token": "tok-1", "token_type": "bearer" }),
        ),
        Duration::ZERO,
    )
    .await;
    let t = tokens(url, TOKEN_TIMEOUT);
    let c = t.fetch().await.unwrap();
    let left = c.refresh_at.saturating_duration_since(Instant::now());
    assert!(
        left > Duration::from_secs(40) && left <= Duration::from_secs(45),
        "{left:?}"
    );
    assert_eq!(t.token().await.unwrap(), "tok-1");
    assert_eq!(t.token().await.unwrap(), "tok-1");
    assert_eq!(
        seen.calls.load(Ordering::SeqCst),
        2,
        "one fetch above, one for token()"
    );
    for (expires_in, lifetime) in [(json!("3600"), 3600), (json!("soon"), 60), (json!(-5), 60)] {
        let (url, _) = endpoint(
            json_answer(
                200,
                json!({ "access_token": "tok-3", "token_type": "BEARER", "expires_in": expires_in }),
            ),
            Duration::ZERO,
        )
        .await;
        let c = tokens(url, TOKEN_TIMEOUT).fetch().await.unwrap();
        let left = c
            .refresh_at
            .saturating_duration_since(Instant::now())
            .as_secs();
        let expected = lifetime - (lifetime / 4).min(30);
        assert!(
            left + 5 >= expected && left <= expected,
            "{expires_in}: {left}"
        );
    }
    let (url, _) = endpoint(
        json_answer(
            200,
            json!({ "access_token": "tok-2", "token_type": "bearer", "expires_in": u64::MAX }),
        ),
        Duration::ZERO,
    )
    .await;
    let c = tokens(url, TOKEN_TIMEOUT).fetch().await.unwrap();
    let left = c.refresh_at.saturating_duration_since(Instant::now());
    assert!(
        left <= MAX_TOKEN_LIFETIME && left > MAX_TOKEN_LIFETIME - Duration::from_secs(31),
        "{left:?}"
    );
}

/// Answers that are not a usable bearer token fail closed, without echoing the answer: a
/// token type other than bearer, a missing or unsendable token, a mistyped field, the wrong
/// content type, an error status without an OAuth error, a redirect (not followed), an
/// answer over the bound.
#[tokio::test]
async fn issue_11_oauth_answers_that_are_not_tokens_fail_closed() {
    let cases: Vec<(Answer, &str)> = vec![
        (
            json_answer(
                200,
                json!({ "access_token": "tok-mac-9", "token_type": "mac" }),
            ),
            "not a bearer token",
        ),
        (
            json_answer(200, json!({ "token_type": "bearer" })),
            "not a token response: missing field `access_token`",
        ),
        (
            json_answer(
                200,
                json!({ "access_token": "tok-a\nb", "token_type": "bearer" }),
            ),
            "cannot be sent as a bearer token",
        ),
        (
            json_answer(200, json!({ "access_token": 42, "token_type": "bearer" })),
            "not a token response: `access_token` is not what RFC 6749",
        ),
        (
            (200, "text/html", "<html>tok-html-3</html>".to_owned()),
            "cannot be used: unexpected response Content-Type",
        ),
        (
            (
                502,
                "text/html",
                "<html>tok-gw-4 bad gateway</html>".to_owned(),
            ),
            "answered 502 Bad Gateway without an OAuth error response",
        ),
        (
            (302, "text/plain", String::new()),
            "(302 Found) cannot be used",
        ),
        (
            (
                200,
                "application/json",
                format!(
                    "{{\"access_token\":\"tok-big-8\",\"pad\":\"{}\"}}",
                    "x".repeat(70_000)
                ),
            ),
            "longer than 65536 bytes",
        ),
    ];
    for (answer, expect) in cases {
        let body = answer.2.clone();
        let (url, seen) = endpoint(answer, Duration::ZERO).await;
        let e = tokens(url, TOKEN_TIMEOUT).token().await.unwrap_err();
        assert!(e.contains(expect), "{body:.80}: {e}");
        assert!(!e.contains("tok-") && !e.contains("s3cr"), "{e}");
        assert_eq!(
            seen.redirected.load(Ordering::SeqCst),
            0,
            "a redirect was followed"
        );
    }
}

/// An endpoint that does not answer in time, or cannot be reached, fails the fetch.
#[tokio::test]
async fn issue_11_oauth_slow_or_unreachable_endpoints_fail_closed() {
    let answer = json_answer(
        200,
        json!({ "access_token": "tok-late", "token_type": "bearer" }),
    );
    let (url, _) = endpoint(answer, Duration::from_secs(3)).await;
    let started = Instant::now();
    let e = tokens(url, Duration::from_millis(300))
        .token()
        .await
        .unwrap_err();
    assert!(e.contains("did not answer within the time allowed"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url: url::Url = format!("http://{}/token", closed.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(closed);
    let e = tokens(url, TOKEN_TIMEOUT).token().await.unwrap_err();
    assert!(e.contains("the OAuth token endpoint is unreachable"), "{e}");
    assert!(!e.contains("127.0.0.1"), "{e}");
}
