//! The HTTP client of a Streamable HTTP upstream: rmcp's reqwest client with the server's
//! credentials.
//!
//! Static headers are the reqwest client's default headers (marked sensitive). An OAuth token
//! is chosen per request by [`AuthClient`], which wraps the reqwest client and puts the current
//! token (from [`OAuthTokens`], the client credentials grant) in rmcp's `Authorization: Bearer`
//! slot, so a token that expires during a long-lived connection is replaced on the next request.

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

use crate::oauth::OAuthTokens;

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
