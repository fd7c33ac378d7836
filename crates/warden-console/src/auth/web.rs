//! What sign-in and the forms share: cookies, random tokens, the same-origin check, reading
//! a form body.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use warden_session::tokens;

/// The console session cookie's name without TLS.
pub(crate) const COOKIE: &str = "warden_console";
/// The console session cookie's name with TLS (`__Host-`: `Secure`, `Path=/`, no `Domain`).
pub(crate) const COOKIE_TLS: &str = "__Host-warden_console";
/// The pre-sign-in cookie's name without TLS (double-submit CSRF of the sign-in form).
pub(crate) const LOGIN_COOKIE: &str = "warden_console_login";
/// The pre-sign-in cookie's name with TLS.
pub(crate) const LOGIN_COOKIE_TLS: &str = "__Host-warden_console_login";
/// How long the sign-in form stays usable, in seconds.
pub(crate) const LOGIN_FORM_SECS: i64 = 600;
/// The longest cookie value looked at (ours are 43 characters).
const MAX_COOKIE_VALUE: usize = 128;

/// A refusal: a status and a sentence for the page.
pub(crate) type Refusal = (StatusCode, &'static str);

/// The session cookie's name on this plane.
pub(crate) fn session_cookie(tls: bool) -> &'static str {
    if tls { COOKIE_TLS } else { COOKIE }
}

/// The pre-sign-in cookie's name on this plane.
pub(crate) fn login_cookie(tls: bool) -> &'static str {
    if tls { LOGIN_COOKIE_TLS } else { LOGIN_COOKIE }
}

/// 32 random bytes, base64url (43 characters).
pub(crate) fn random_token() -> Result<String, Refusal> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "The random number generator failed.");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the random number generator failed; try again",
        )
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A `Set-Cookie` value: `Path=/` (the one path a `__Host-` cookie may have; the cookie means
/// nothing outside `/ui`, where only the console reads it), `HttpOnly`, `SameSite=Strict`,
/// `Secure` with TLS. `max_age` 0 clears it.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: i64, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// The value of cookie `name` in the request's `Cookie` headers, if present and short.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.len() <= MAX_COOKIE_VALUE)
}

/// Constant-time equality of two secrets (compared through their BLAKE3 hashes).
pub(crate) fn secrets_equal(a: &str, b: &str) -> bool {
    tokens::hashes_equal(&tokens::hash(a), &tokens::hash(b))
}

/// Refuses a request another site made: `Sec-Fetch-Site` `cross-site` or `same-site` (a
/// sibling host is another origin), or an `Origin` that is not this request's own
/// (`https://` + its `Host` with TLS; `http://` or `https://` + its `Host` without, for a
/// TLS-terminating proxy that passes the `Host` through). A request without either header (an old browser, a script
/// on the operator's machine) passes; the CSRF token and the `SameSite=Strict` cookie still
/// hold it.
pub(crate) fn same_origin(headers: &HeaderMap, tls: bool) -> Result<(), Refusal> {
    const CROSS: Refusal = (
        StatusCode::FORBIDDEN,
        "this form was sent from another site; it is refused",
    );
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("cross-site");
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Err(CROSS);
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    // With TLS on the plane, only `https://`. Without, `http://` or `https://`: a
    // TLS-terminating proxy in front of the plane (a supported set-up) makes the browser's
    // origin `https://` + the same host; another host never matches.
    let schemes: &[&str] = if tls { &["https"] } else { &["http", "https"] };
    match (origin.to_str().ok(), host) {
        (Some(o), Some(h))
            if schemes
                .iter()
                .any(|s| o.eq_ignore_ascii_case(&format!("{s}://{h}"))) =>
        {
            Ok(())
        }
        _ => Err(CROSS),
    }
}

/// The form body of `req`: `application/x-www-form-urlencoded` only, within the console's
/// body limit (`413` beyond), as name/value pairs.
pub(crate) async fn form_pairs<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Vec<(String, String)>, Refusal> {
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the console takes forms (`application/x-www-form-urlencoded`) only",
        ));
    }
    let body = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the form is too large (at most 64 KiB)",
            )
        } else {
            (StatusCode::BAD_REQUEST, "the form could not be read")
        }
    })?;
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .map_err(|_| (StatusCode::BAD_REQUEST, "the form is malformed"))
}

/// Takes the field `name` out of `pairs` (the first; a repeated one is refused).
pub(crate) fn take_field(
    pairs: &mut Vec<(String, String)>,
    name: &str,
) -> Result<Option<String>, Refusal> {
    let mut found: Vec<String> = Vec::new();
    pairs.retain(|(n, v)| {
        if n == name {
            found.push(v.clone());
            false
        } else {
            true
        }
    });
    if found.len() > 1 {
        return Err((StatusCode::BAD_REQUEST, "a form field is repeated"));
    }
    Ok(found.pop())
}

/// The rest of a form as `T`.
pub(crate) fn form_as<T: DeserializeOwned>(pairs: &[(String, String)]) -> Result<T, Refusal> {
    let text = serde_urlencoded::to_string(pairs)
        .map_err(|_| (StatusCode::BAD_REQUEST, "the form is malformed"))?;
    serde_urlencoded::from_str(&text).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "the form's fields are not what this page sends",
        )
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; warden_console_login=x; warden_console=abc"),
        );
        assert_eq!(cookie(&h, "warden_console"), Some("abc"));
        assert_eq!(cookie(&h, "warden_console_login"), Some("x"));
        assert_eq!(cookie(&h, "warden"), None);
    }

    #[test]
    fn another_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9"));
        assert!(same_origin(&h, false).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9"),
        );
        assert!(same_origin(&h, false).is_ok());
        assert!(
            same_origin(&h, true).is_err(),
            "with TLS, http is another origin"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:9"),
        );
        assert!(same_origin(&h, true).is_ok());
        assert!(
            same_origin(&h, false).is_ok(),
            "behind a TLS-terminating proxy"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:10"),
        );
        assert!(
            same_origin(&h, false).is_err(),
            "another port is another origin"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(same_origin(&h, false).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h, false).is_err());
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_origin(&h, false).is_err());
    }

    #[test]
    fn with_tls_the_cookies_are_host_prefixed_and_secure() {
        let name = session_cookie(true);
        assert_eq!(name, "__Host-warden_console");
        assert_eq!(login_cookie(true), "__Host-warden_console_login");
        let c = set_cookie(name, "v", 28800, true);
        // What `__Host-` requires: Secure, Path=/, no Domain.
        assert!(
            c.contains("; Secure") && c.contains("Path=/;") && !c.contains("Domain"),
            "{c}"
        );
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        assert!(!set_cookie(COOKIE, "v", 1, false).contains("Secure"));
    }

    #[test]
    fn a_repeated_field_is_refused() {
        let mut p = vec![
            ("csrf".to_owned(), "a".to_owned()),
            ("csrf".to_owned(), "b".to_owned()),
        ];
        assert!(take_field(&mut p, "csrf").is_err());
    }
}
