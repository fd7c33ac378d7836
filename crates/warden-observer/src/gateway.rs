//! The gateway's operator plane as the observer reaches it: its URL and the observer's
//! credential. The credential is never logged, printed or put in an error: [`Token`]'s `Debug`
//! hides it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Time limit for connecting to the gateway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An operator credential (the observer's). `Debug` shows `Token(…)`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// Wraps a credential (surrounding whitespace, such as a file's final newline, removed).
    pub fn new(value: &str) -> Token {
        Token(Arc::from(value.trim()))
    }

    /// The value, for an `Authorization` header or a constant-time comparison.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, compared in constant time (for the length of the
    /// shorter; a difference in length answers `false`).
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        diff == 0 && a.len() == b.len() && !a.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The gateway's operator plane: its base URL (no trailing slash) and the credential every
/// request carries.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    http: reqwest::Client,
    base: Arc<str>,
    token: Token,
}

/// The HTTP client could not be built (no TLS roots, say).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct ClientError(#[source] reqwest::Error);

impl GatewayClient {
    /// A client for the operator plane at `base` (`http://127.0.0.1:8701`).
    pub fn new(base: &str, token: Token) -> Result<GatewayClient, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(ClientError)?;
        Ok(GatewayClient {
            http,
            base: Arc::from(base.trim_end_matches('/')),
            token,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (starting with `/`) with the credential.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
    }

    /// The plain HTTP client (for the alert webhook, which gets no credential).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// Reads at most `limit` bytes of an answer's body, as text (for an error message).
pub(crate) async fn body_snippet(mut response: reqwest::Response, limit: usize) -> String {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        out.extend_from_slice(&chunk);
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
