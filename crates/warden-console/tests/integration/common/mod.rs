//! What the console's integration tests share: a gateway started with the testkit's harness
//! (a real `warden serve` on loopback, the echo MCP server behind it), and a browser-like
//! client that signs in, keeps its console cookie and the page's CSRF token, and sends GETs
//! and form POSTs as the console's own pages would.
//!
//! ```ignore
//! let h = common::start().await;
//! let admin = common::admin(&h).await;          // signed in with the bootstrap credential
//! let page = admin.get("/ui/approvals").await;  // status, headers, body
//! let done = admin.post("/ui/logout", &[]).await; // the csrf field is added
//! ```

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support shared by the test modules, and a failed step is a failed test"
)]

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue};
use warden_core::{Clock, SystemClock};
pub use warden_testkit::harness::Harness;

/// The charter the console tests run on: the echo server's tool at every tier, approval rules
/// (one of quorum 2, one that lets an approver remember the `text`), and an authority
/// section with approvers `bob` and `carol`, `alice` (the sessions' principal, so never her
/// own approver under separation of duties) and `dave` (no authority for the echo rules).
pub fn charter(echo_url: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: tests, serves: the test suite }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
actions:
  approval: {{ timeout: 60s }}
  rules:
    - {{ id: echo-hello, tool: echo.echo, tier: autonomous, args: {{ text: {{ prefix: hello }} }} }}
    - {{ id: echo-ask, tool: echo.echo, tier: approval, args: {{ text: {{ prefix: ask }} }}, approval: {{ timeout: 60s }} }}
    - {{ id: echo-quorum, tool: echo.echo, tier: approval, args: {{ text: {{ prefix: quorum }} }}, approval: {{ timeout: 60s, quorum: 2 }} }}
    - {{ id: echo-payee, tool: echo.echo, tier: approval, args: {{ text: {{ prefix: payee }} }}, approval: {{ timeout: 60s, remember: [text] }} }}
authority:
  separation_of_duties: true
  roles:
    - {{ id: ops, approve: [default] }}
    - {{ id: approver, approve: [default, "echo-*"] }}
    - {{ id: viewer, approve: [default] }}
  principals:
    - {{ id: alice, roles: [ops, approver] }}
    - {{ id: bob, roles: [approver] }}
    - {{ id: carol, roles: [approver] }}
    - {{ id: dave, roles: [viewer] }}
  enrolment:
    - {{ by: admin, principals: ["*"] }}
"#
    )
}

/// A gateway on [`charter`], with the system clock.
pub async fn start() -> Harness {
    start_with(Arc::new(SystemClock)).await
}

/// A gateway on [`charter`], with `clock`.
pub async fn start_with(clock: Arc<dyn Clock>) -> Harness {
    Harness::builder(charter).clock(clock).start().await
}

/// An answer: status, headers and body.
#[derive(Debug)]
pub struct Page {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Page {
    /// The `Location` header (of a redirect).
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .map_or("", |v| v.to_str().unwrap())
    }

    /// Panics unless the console's security headers are all there.
    pub fn assert_secure_headers(&self) {
        let h = &self.headers;
        let csp = h
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap());
        let csp = csp.unwrap_or_else(|| panic!("no CSP on {} {}", self.status, self.body));
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
        assert_eq!(h.get("cache-control").unwrap(), "no-store");
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(h.get("referrer-policy").unwrap(), "same-origin");
    }
}

/// The value of the hidden input `name` in `html` (the first).
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// A browser-like client of the console: it keeps the cookies it is given (by name), never
/// follows redirects (tests look at them), and adds the page's CSRF token to its forms.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT` of the operator plane.
    pub base: String,
    /// The cookies held, `name=value`.
    pub cookies: Vec<(String, String)>,
    /// The CSRF token of the last signed-in page read (the layout's sign-out form).
    pub csrf: String,
}

impl Client {
    /// A client with no cookies for `h`'s operator plane.
    pub fn new(h: &Harness) -> Client {
        Client {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: format!("http://{}", h.operator_addr),
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    /// The `Cookie` header this client sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The value of cookie `name`, if held.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for v in headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() && !attrs.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.keep_cookies(&headers);
        let body = resp.text().await.unwrap();
        if let Some(csrf) = hidden(&body, "csrf") {
            // The layout's sign-out form (or the sign-in form) carries the current token.
            self.csrf = csrf;
        }
        Page {
            status,
            headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Page {
        self.get_with(path, HeaderMap::new()).await
    }

    /// `GET path` with extra headers.
    pub async fn get_with(&mut self, path: &str, headers: HeaderMap) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .headers(headers)
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    /// `POST path` with the form `fields` and this client's CSRF token, from this origin (as
    /// the console's own pages send it).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone();
        all.push(("csrf", &csrf));
        let body = serde_urlencoded_pairs(&all);
        let mut h = HeaderMap::new();
        h.insert("origin", HeaderValue::from_str(&self.base).unwrap());
        self.post_raw(path, "application/x-www-form-urlencoded", body, h)
            .await
    }

    /// `POST path` with exactly this content type, body and extra headers.
    pub async fn post_raw(
        &mut self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
        headers: HeaderMap,
    ) -> Page {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", content_type)
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    /// Opens the sign-in form and posts `token`; the answer to the post.
    pub async fn try_sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/ui/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        self.post("/ui/login", &[("token", token)]).await
    }

    /// Signs in with `token` (panics unless it is accepted), then reads the landing page so
    /// the client holds the console session's CSRF token.
    pub async fn sign_in(&mut self, token: &str) -> Page {
        let done = self.try_sign_in(token).await;
        assert_eq!(done.status, 303, "sign-in refused: {}", done.body);
        let home = done.location().to_owned();
        // Read the approvals page (every role has it) for the session's CSRF token.
        let page = self.get("/ui/approvals").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let _ = home;
        done
    }
}

/// `a=1&b=2`, form-encoded.
pub fn serde_urlencoded_pairs(fields: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        out.append_pair(k, v);
    }
    out.finish()
}

/// A client signed in as the admin (the harness's bootstrap credential).
pub async fn admin(h: &Harness) -> Client {
    let mut c = Client::new(h);
    c.sign_in(&h.operator_token).await;
    c
}

/// A client signed in as an approver for `principal` (a credential issued for it).
pub async fn approver(h: &Harness, principal: &str) -> Client {
    let token = h.approver_token(principal).await;
    let mut c = Client::new(h);
    c.sign_in(&token).await;
    c
}

impl Client {
    /// Opens `GET /ui/live` (the status, and the stream to read with [`read_until`]).
    pub async fn live(&self) -> reqwest::Response {
        self.http
            .get(format!("{}/ui/live", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap()
    }
}

/// Reads `stream` until its text so far contains `needle` (`Some(text)`) or it ends
/// (`None`); gives up (panics) after 20 s.
pub async fn read_until(stream: &mut reqwest::Response, seen: &mut String, needle: &str) -> bool {
    let deadline = std::time::Duration::from_secs(20);
    tokio::time::timeout(deadline, async {
        loop {
            if seen.contains(needle) {
                return true;
            }
            match stream.chunk().await {
                Ok(Some(bytes)) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) | Err(_) => return false,
            }
        }
    })
    .await
    .expect("the live stream neither said it nor ended within 20 s")
}

/// Reads `stream` to its end (panics unless it ends within 20 s).
pub async fn read_to_end(stream: &mut reqwest::Response, seen: &mut String) {
    let ended = read_until(stream, seen, "\u{0}never\u{0}").await;
    assert!(!ended);
}
