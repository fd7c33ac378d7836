//! The OAuth 2.0 client credentials grant of a Streamable HTTP upstream (RFC 6749, section
//! 4.4), through the `oauth2` crate.
//!
//! The crate builds the token request (the client id and secret in HTTP Basic, each
//! form-encoded first as section 2.3.1 asks; `grant_type` and the scopes in the form body) and
//! reads the answer: a token response (section 5.1) or an error response (section 5.2). It is
//! used without its `reqwest` feature, which would bring a second reqwest major version:
//! [`TokenHttp`] adapts the gateway's reqwest client to the crate's `AsyncHttpClient`. That
//! adapter keeps the guarantees of the grant: no redirect followed (the credentials would follow
//! it), the whole exchange bounded by [`TOKEN_TIMEOUT`], the answer by
//! [`MAX_TOKEN_RESPONSE_BYTES`].
//!
//! A token is cached until shortly before it expires (a quarter of its lifetime, at most 30 s,
//! early); one without `expires_in` is reused for [`DEFAULT_TOKEN_LIFETIME`], and a lifetime is
//! taken as at most [`MAX_TOKEN_LIFETIME`]. Every failure is an error (the server is then
//! unreachable for the call, never called without a token), and no error message holds the
//! client secret, a token, or the endpoint's answer: an error response shows its status, its
//! standard code with what it means, and its `error_description` when that is short printable
//! text that does not repeat the secret.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AccessToken, AsyncHttpClient, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, RefreshToken, RequestTokenError, Scope, StandardRevocableToken, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::time::Instant;

use crate::credentials::OAuthSettings;

/// The largest token endpoint answer read, in bytes.
pub(crate) const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// How long a token request may take, answer included.
pub(crate) const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a token without `expires_in` is reused.
pub(crate) const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// The longest lifetime a token is taken to have, whatever its `expires_in`.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest `error_description` shown, in characters.
const MAX_DESCRIPTION_CHARS: usize = 200;

/// The crate's client, with [`TokenAnswer`] as its token response (and its token endpoint
/// set, unless said otherwise).
type Grant<HasTokenUrl = EndpointSet> = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasTokenUrl,
>;

/// A token response (RFC 6749, section 5.1), read leniently where providers differ: the token
/// type in any case, and `expires_in` as a number or a string of digits (some providers send
/// `"3599"`); any other `expires_in` counts as absent, so the token is reused for
/// [`DEFAULT_TOKEN_LIFETIME`] only. Other fields are ignored. Its `Debug` shows no token.
#[derive(Deserialize, Serialize)]
pub(crate) struct TokenAnswer {
    access_token: AccessToken,
    #[serde(deserialize_with = "oauth2::helpers::deserialize_untagged_enum_case_insensitive")]
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<u64>,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl TokenResponse for TokenAnswer {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        // A client credentials grant has none (RFC 6749, section 4.4.3).
        None
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        None
    }
}

/// `expires_in` as a JSON number or a string of digits; anything else is `None`.
fn lenient_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

struct Cached {
    token: String,
    refresh_at: Instant,
}

/// The tokens of one server's client credentials grant, cached until they near expiry.
pub(crate) struct OAuthTokens {
    token_url: url::Url,
    grant: Grant,
    /// The client secret as given and form-encoded, for keeping it out of error messages.
    secret_forms: [ClientSecret; 2],
    scopes: Vec<Scope>,
    client: reqwest::Client,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the client secret nor a token.
        f.debug_struct("OAuthTokens")
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl OAuthTokens {
    /// The grant of `settings`; no request is made until a token is needed.
    pub(crate) fn new(settings: OAuthSettings) -> Result<OAuthTokens, String> {
        OAuthTokens::with_timeout(settings, TOKEN_TIMEOUT)
    }

    /// [`OAuthTokens::new`] with `timeout` instead of [`TOKEN_TIMEOUT`] for each token request.
    pub(crate) fn with_timeout(
        settings: OAuthSettings,
        timeout: Duration,
    ) -> Result<OAuthTokens, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let encoded = url::form_urlencoded::byte_serialize(settings.client_secret.as_bytes())
            .collect::<String>();
        let secret_forms = [
            ClientSecret::new(settings.client_secret.clone()),
            ClientSecret::new(encoded),
        ];
        let grant = Grant::<EndpointNotSet>::new(ClientId::new(settings.client_id))
            .set_client_secret(ClientSecret::new(settings.client_secret))
            .set_token_uri(TokenUrl::from_url(settings.token_url.clone()));
        Ok(OAuthTokens {
            token_url: settings.token_url,
            grant,
            secret_forms,
            scopes: settings.scopes.into_iter().map(Scope::new).collect(),
            client,
            cache: tokio::sync::Mutex::new(None),
        })
    }

    /// A token that has not neared its expiry: the cached one, or a new one.
    pub(crate) async fn token(&self) -> Result<String, String> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = &*cache
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    async fn fetch(&self) -> Result<Cached, String> {
        let http = TokenHttp {
            client: self.client.clone(),
            status: AtomicU16::new(0),
        };
        let started = Instant::now();
        let answer = self
            .grant
            .exchange_client_credentials()
            .add_scopes(self.scopes.iter().cloned())
            .request_async(&http)
            .await;
        let status = StatusCode::from_u16(http.status.load(Ordering::Relaxed)).ok();
        let answer = answer.map_err(|e| self.describe(e, status))?;
        let token = answer.access_token().secret();
        if token.is_empty() || HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return Err(
                "the OAuth token endpoint answered an `access_token` that cannot be sent as a bearer token"
                    .to_owned(),
            );
        }
        if *answer.token_type() != BasicTokenType::Bearer {
            return Err(
                "the OAuth token endpoint answered a token that is not a bearer token".to_owned(),
            );
        }
        let lifetime = answer
            .expires_in()
            .unwrap_or(DEFAULT_TOKEN_LIFETIME)
            .min(MAX_TOKEN_LIFETIME);
        let early = (lifetime / 4).min(Duration::from_secs(30));
        tracing::debug!(token_url = %self.token_url, lifetime_s = lifetime.as_secs(), "OAuth token fetched for an upstream server.");
        Ok(Cached {
            token: token.clone(),
            refresh_at: started + lifetime.saturating_sub(early),
        })
    }

    /// What went wrong, in words that hold neither the secret nor the endpoint's answer.
    fn describe(
        &self,
        error: RequestTokenError<TokenHttpError, BasicErrorResponse>,
        status: Option<StatusCode>,
    ) -> String {
        let ok = status == Some(StatusCode::OK);
        let status = status.map_or_else(|| "no status".to_owned(), |s| s.to_string());
        match error {
            RequestTokenError::Request(e) => e.0,
            RequestTokenError::ServerResponse(r) => {
                let (code, meaning) = error_code(r.error());
                let description = r
                    .error_description()
                    .and_then(|d| self.shown_description(d))
                    .map(|d| format!("; the endpoint says: \"{d}\""))
                    .unwrap_or_default();
                format!(
                    "the OAuth token endpoint refused the client credentials grant ({status}, error `{code}`: {meaning}){description}"
                )
            }
            RequestTokenError::Parse(e, _) if ok => {
                let inner = e.inner().to_string();
                let what = if inner.starts_with("missing field `") {
                    // The field's name is the crate's, not the endpoint's.
                    inner
                        .split(" at line")
                        .next()
                        .unwrap_or("a field is missing")
                        .to_owned()
                } else {
                    let path = e.path().to_string();
                    let path: String = path
                        .chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(64)
                        .collect();
                    format!("`{path}` is not what RFC 6749, section 5.1 asks for")
                };
                format!("the OAuth token endpoint's answer is not a token response: {what}")
            }
            RequestTokenError::Parse(..) => format!(
                "the OAuth token endpoint answered {status} without an OAuth error response (RFC 6749, section 5.2)"
            ),
            RequestTokenError::Other(message) => {
                let message: String = message
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(160)
                    .collect();
                format!("the OAuth token endpoint's answer ({status}) cannot be used: {message}")
            }
        }
    }

    /// `description` when it is short printable text (RFC 6749, section 5.2 allows nothing
    /// else) that does not repeat the client secret, whole or encoded.
    fn shown_description<'d>(&self, description: &'d str) -> Option<&'d str> {
        let printable = description
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
        let repeats = self
            .secret_forms
            .iter()
            .any(|s| !s.secret().is_empty() && description.contains(s.secret().as_str()));
        (printable
            && !repeats
            && !description.is_empty()
            && description.len() <= MAX_DESCRIPTION_CHARS)
            .then_some(description)
    }
}

/// The standard error code of RFC 6749, section 5.2 and what it means here; an extension code
/// is shown when it is a plain word.
fn error_code(code: &BasicErrorResponseType) -> (&str, &'static str) {
    match code {
        BasicErrorResponseType::InvalidClient => (
            "invalid_client",
            "the client id or secret is wrong, or the client may not authenticate with HTTP Basic",
        ),
        BasicErrorResponseType::InvalidGrant => ("invalid_grant", "the grant was refused"),
        BasicErrorResponseType::InvalidRequest => (
            "invalid_request",
            "the endpoint found the request malformed",
        ),
        BasicErrorResponseType::InvalidScope => (
            "invalid_scope",
            "the endpoint does not grant the scopes in `oauth.scopes`",
        ),
        BasicErrorResponseType::UnauthorizedClient => (
            "unauthorized_client",
            "the client may not use the client credentials grant",
        ),
        BasicErrorResponseType::UnsupportedGrantType => (
            "unsupported_grant_type",
            "the endpoint does not offer the client credentials grant",
        ),
        BasicErrorResponseType::Extension(code) => {
            let plain = code.len() <= 64
                && !code.is_empty()
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
            (
                if plain { code } else { "unknown" },
                "a code RFC 6749 does not define",
            )
        }
    }
}

/// Why the token request could not be made or its answer read; the message holds no URL,
/// secret or answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TokenHttpError(String);

/// The `oauth2` crate's HTTP client: one token request on the gateway's reqwest client (no
/// redirects, a timeout), its answer read up to [`MAX_TOKEN_RESPONSE_BYTES`]; the status of
/// the answer is kept for the error message.
struct TokenHttp {
    client: reqwest::Client,
    status: AtomicU16,
}

impl<'c> AsyncHttpClient<'c> for TokenHttp {
    type Error = TokenHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TokenHttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(|e| {
                TokenHttpError(format!(
                    "the OAuth token request cannot be made: {}",
                    e.without_url()
                ))
            })?;
            let resp = self
                .client
                .execute(request)
                .await
                .map_err(|e| transport_error("is unreachable", e))?;
            self.status.store(resp.status().as_u16(), Ordering::Relaxed);
            let mut answer = http::Response::builder().status(resp.status());
            if let Some(content_type) = resp.headers().get(http::header::CONTENT_TYPE) {
                answer = answer.header(http::header::CONTENT_TYPE, content_type);
            }
            let body = read_bounded(resp).await?;
            answer.body(body).map_err(|e| {
                TokenHttpError(format!(
                    "the OAuth token endpoint's answer is unusable: {e}"
                ))
            })
        })
    }
}

/// The failure `e` of the exchange, which `what` the endpoint did; a timeout says so.
fn transport_error(what: &str, e: reqwest::Error) -> TokenHttpError {
    if e.is_timeout() {
        return TokenHttpError(
            "the OAuth token endpoint did not answer within the time allowed".to_owned(),
        );
    }
    TokenHttpError(format!(
        "the OAuth token endpoint {what}: {}",
        e.without_url()
    ))
}

async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, TokenHttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error("broke off its answer", e))?
    {
        if body.len().saturating_add(chunk.len()) > MAX_TOKEN_RESPONSE_BYTES {
            return Err(TokenHttpError(format!(
                "the OAuth token endpoint's answer is longer than {MAX_TOKEN_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
