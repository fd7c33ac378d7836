//! The HTTP client of a Streamable HTTP upstream: rmcp's reqwest client with the server's
//! credentials, and the OAuth 2.0 client credentials grant.
//!
//! Static headers are the reqwest client's default headers (marked sensitive). An OAuth token
//! is chosen per request by [`AuthClient`], which wraps the reqwest client and puts the current
//! token in rmcp's `Authorization: Bearer` slot, so a token that expires during a long-lived
//! connection is replaced on the next request. The token is fetched with a plain reqwest
//! request (RFC 6749, section 4.4: the client id and secret in HTTP Basic, the scopes in the
//! form body), not the `oauth2` crate, which would bring a second reqwest major version. It is
//! cached until shortly before it expires (a quarter of its lifetime, at most 30 s, early).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use http::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::Sse;
use tokio::time::Instant;

use crate::credentials::OAuthSettings;

/// The largest token endpoint answer read, in bytes.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// How long a token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a token without `expires_in` is reused.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// A reqwest client for an upstream: idle connections pooled, no redirects followed (the
/// credentials would follow them), `headers` sent with every request.
pub(crate) fn reqwest_client(headers: &HeaderMap) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers.clone())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

struct Cached {
    token: String,
    refresh_at: Instant,
}

/// The tokens of one server's client credentials grant, cached until they near expiry.
pub(crate) struct OAuthTokens {
    settings: OAuthSettings,
    client: reqwest::Client,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the client secret nor a token.
        f.debug_struct("OAuthTokens")
            .field("token_url", &self.settings.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl OAuthTokens {
    pub(crate) fn new(settings: OAuthSettings) -> Result<OAuthTokens, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TOKEN_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(OAuthTokens {
            settings,
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
        let s = &self.settings;
        // The serializer is not `Send`: the body is made before anything is awaited.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !s.scopes.is_empty() {
                form.append_pair("scope", &s.scopes.join(" "));
            }
            form.finish()
        };
        let encode =
            |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let started = Instant::now();
        let resp = self
            .client
            .post(s.token_url.clone())
            .basic_auth(encode(&s.client_id), Some(encode(&s.client_secret)))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the OAuth token endpoint is unreachable: {}",
                    e.without_url()
                )
            })?;
        let status = resp.status();
        let body = read_bounded(resp).await?;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if !status.is_success() {
            // Only the standard error code: a description could echo what was sent.
            let code = json
                .get("error")
                .and_then(serde_json::Value::as_str)
                .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                .unwrap_or("unknown");
            return Err(format!(
                "the OAuth token endpoint refused the client credentials ({status}, error `{code}`)"
            ));
        }
        let token = json
            .get("access_token")
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty() && HeaderValue::from_str(&format!("Bearer {t}")).is_ok())
            .ok_or("the OAuth token endpoint answered without a usable `access_token`")?;
        let bearer = json
            .get("token_type")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer"));
        if !bearer {
            return Err(
                "the OAuth token endpoint answered a token that is not a bearer token".to_owned(),
            );
        }
        let lifetime = json
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let early = (lifetime / 4).min(Duration::from_secs(30));
        tracing::debug!(token_url = %s.token_url, lifetime_s = lifetime.as_secs(), "OAuth token fetched for an upstream server.");
        Ok(Cached {
            token: token.to_owned(),
            refresh_at: started + lifetime.saturating_sub(early),
        })
    }
}

async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        format!(
            "the OAuth token endpoint's answer broke off: {}",
            e.without_url()
        )
    })? {
        if body.len().saturating_add(chunk.len()) > MAX_TOKEN_RESPONSE_BYTES {
            return Err(format!(
                "the OAuth token endpoint's answer is longer than {MAX_TOKEN_RESPONSE_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// rmcp's reqwest client, with the OAuth token (when the server has a grant) put in every
/// request's `Authorization: Bearer`.
#[derive(Clone)]
pub(crate) struct AuthClient {
    inner: reqwest::Client,
    oauth: Option<Arc<OAuthTokens>>,
}

impl AuthClient {
    pub(crate) fn new(inner: reqwest::Client, oauth: Option<Arc<OAuthTokens>>) -> AuthClient {
        AuthClient { inner, oauth }
    }

    async fn auth(
        &self,
        given: Option<String>,
    ) -> Result<Option<String>, StreamableHttpError<reqwest::Error>> {
        match &self.oauth {
            None => Ok(given),
            Some(tokens) => tokens
                .token()
                .await
                .map(Some)
                .map_err(|e| StreamableHttpError::UnexpectedServerResponse(Cow::Owned(e))),
        }
    }
}

type Headers = HashMap<HeaderName, HeaderValue>;

impl StreamableHttpClient for AuthClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let auth = self.auth(auth_header).await?;
        self.inner
            .post_message(uri, message, session_id, auth, custom_headers)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let auth = self.auth(auth_header).await?;
        self.inner
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        let auth = self.auth(auth_header).await?;
        self.inner
            .delete_session(uri, session_id, auth, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let auth = self.auth(auth_header).await?;
        self.inner
            .get_stream(uri, session_id, last_event_id, auth, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let auth = self.auth(auth_header).await?;
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}
