//! The HTTP side of a direct `tools/call`: one POST on `hyper`'s pooled client, and what the
//! server sent back, classified as rmcp's Streamable HTTP client classifies it.
//!
//! Why not rmcp's client: it goes through `reqwest` (a request built from a URL string, its
//! middleware and body wrappers, per call) and reads every answer into rmcp's untagged
//! `ServerResult`, which tries about fifteen result types before the tool result. Here the
//! constant headers (the server's credentials, `Accept`, `Content-Type`) are built once, the
//! per-call ones (`Mcp-Session-Id`, `MCP-Protocol-Version`, an OAuth token) are added as
//! values, and the body is handed back as bytes for [`super::parse`].
//!
//! The bounds are rmcp's: a JSON answer within 16 MiB (a larger `Content-Length` is refused
//! before reading), an error body within 64 KiB, each event of an event stream within 16 MiB.
//! No redirect is followed (the credentials would follow it). A server reached through an
//! HTTP proxy named in the environment is not called here ([`Wire::new`] says so): its
//! connection (reqwest, which honours the proxy) carries its calls.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, BodyStream, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rmcp::model::ServerJsonRpcMessage;
use sse_stream::{Sse, SseStream};

use crate::oauth::OAuthTokens;

/// The largest JSON answer read (rmcp's bound).
pub(super) const MAX_JSON_ANSWER: usize = 16 * 1024 * 1024;
/// The largest error body read (rmcp's bound).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The largest event of an event stream (rmcp's bound).
pub(super) const MAX_EVENT: usize = 16 * 1024 * 1024;

/// Idle connections kept to the server. The connections in use are as many as the calls in
/// flight, which the agent plane's connection limit (`agent_max_connections`) bounds.
const MAX_IDLE_CONNECTIONS: usize = 64;

const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// The events of an event-stream answer, each bounded by [`MAX_EVENT`].
pub(super) type Events = BoxStream<'static, Result<Sse, sse_stream::Error>>;

/// What the server did with a POST.
pub(super) enum Posted {
    /// A successful answer with a JSON body (read whole, within [`MAX_JSON_ANSWER`]).
    Json(Bytes),
    /// A successful answer that is an event stream.
    Events(Events),
    /// A JSON-RPC error the server sent with a failure status (read within 64 KiB).
    Error(Box<ServerJsonRpcMessage>),
    /// `202 Accepted` or `204 No Content`: nothing to read.
    Accepted,
    /// `404` to a POST that carried a session: the server expired it.
    Expired,
}

/// The pooled HTTP client of one Streamable HTTP server's direct calls.
pub(in crate::upstream) struct Wire {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    /// The server-wide headers (marked sensitive), `Accept` and `Content-Type`.
    headers: HeaderMap,
    oauth: Option<Arc<OAuthTokens>>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl Wire {
    /// The client of the server at `url`, with `headers` on every request and the OAuth token
    /// (when the server has a grant) in `Authorization`, trusting the platform's roots.
    /// `Ok(None)` when an HTTP proxy named in the environment applies to `url`.
    pub(in crate::upstream) fn new(
        url: &url::Url,
        headers: &HeaderMap,
        oauth: Option<Arc<OAuthTokens>>,
    ) -> Result<Option<Wire>, String> {
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e| format!("the server's URL is not a URI: {e}"))?;
        if hyper_util::client::proxy::matcher::Matcher::from_system()
            .intercept(&uri)
            .is_some()
        {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier)
            .map_err(|e| format!("cannot build the TLS client: {e}"))?
            .with_no_client_auth();
        Ok(Some(Wire::with_tls(uri, headers, oauth, tls)))
    }

    /// The client of the server at `uri` with the TLS configuration `tls`.
    pub(super) fn with_tls(
        uri: Uri,
        headers: &HeaderMap,
        oauth: Option<Arc<OAuthTokens>>,
        tls: rustls::ClientConfig,
    ) -> Wire {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let mut constant = headers.clone();
        constant.insert(
            ACCEPT,
            HeaderValue::from_static("text/event-stream, application/json"),
        );
        constant.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Wire {
            client,
            uri,
            headers: constant,
            oauth,
        }
    }

    /// POSTs `body` (one JSON-RPC request) in `session` (if any) at `version`, and classifies
    /// the answer; `Err` says why there is none. The caller bounds the time.
    pub(super) async fn post(
        &self,
        body: Bytes,
        session: Option<&HeaderValue>,
        version: &HeaderValue,
    ) -> Result<Posted, String> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.clone_from(&self.headers);
        if let Some(tokens) = &self.oauth {
            let token = tokens.token().await?;
            let mut value = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| "the OAuth token is not a header value".to_owned())?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        if let Some(id) = session {
            headers.insert(SESSION_ID, id.clone());
        }
        headers.insert(PROTOCOL_VERSION, version.clone());
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("transport error: {}", chain(&e)))?;
        classify(response, session.is_some()).await
    }
}

/// What rmcp's client makes of an answer to a request, as [`Posted`] or the failure's message.
async fn classify(
    response: http::Response<Incoming>,
    session_attached: bool,
) -> Result<Posted, String> {
    let status = response.status();
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        && response.headers().contains_key(WWW_AUTHENTICATE)
    {
        return Err(format!(
            "the server refused the gateway's credentials (HTTP {})",
            status.as_u16()
        ));
    }
    if matches!(status, StatusCode::ACCEPTED | StatusCode::NO_CONTENT) {
        return Ok(Posted::Accepted);
    }
    if status == StatusCode::NOT_FOUND && session_attached {
        return Ok(Posted::Expired);
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(HeaderValue::as_bytes);
    let is_json = content_type.is_some_and(|t| t.starts_with(b"application/json"));
    let is_events = content_type.is_some_and(|t| t.starts_with(b"text/event-stream"));
    let length = content_length(response.headers());
    // A rate limit, or a server failure that is not JSON: the status is the whole answer.
    let status_failure = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
    if status_failure && (!is_json || status == StatusCode::TOO_MANY_REQUESTS) {
        return Err(format!("HTTP {status}"));
    }
    if !status.is_success() {
        let body = match read_bounded(response.into_body(), length, MAX_ERROR_BODY).await {
            Ok(body) => body,
            Err(Read::TooLarge) if status_failure => return Err(format!("HTTP {status}")),
            Err(e) => return Err(e.message(MAX_ERROR_BODY)),
        };
        let auth_failure = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        if is_json
            && !auth_failure
            && let Some(error) = super::parse::json_rpc_error(&body)
        {
            return Ok(Posted::Error(Box::new(error)));
        }
        if status_failure {
            return Err(format!("HTTP {status}"));
        }
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    if is_events {
        let bytes = BoundedEvents {
            body: BodyStream::new(response.into_body()),
            limiter: EventLimiter::default(),
            failed: false,
        };
        return Ok(Posted::Events(Box::pin(SseStream::from_bytes_stream(
            bytes,
        ))));
    }
    if is_json {
        return match read_bounded(response.into_body(), length, MAX_JSON_ANSWER).await {
            Ok(body) => Ok(Posted::Json(body)),
            Err(e) => Err(e.message(MAX_JSON_ANSWER)),
        };
    }
    let shown = content_type.map(String::from_utf8_lossy);
    Err(format!("Unexpected content type: {shown:?}"))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Why a body was not read.
#[derive(Debug)]
enum Read {
    TooLarge,
    Failed(String),
}

impl Read {
    fn message(self, bound: usize) -> String {
        match self {
            Read::TooLarge => {
                format!("HTTP response body exceeded the maximum size of {bound} bytes")
            }
            Read::Failed(e) => format!("transport error: {e}"),
        }
    }
}

/// The whole body within `bound` bytes (`http-body-util`'s `Limited`): a `Content-Length`
/// over it is refused before reading, and the bytes are counted as they come (a length that
/// lies changes nothing).
async fn read_bounded(body: Incoming, length: Option<u64>, bound: usize) -> Result<Bytes, Read> {
    if length.is_some_and(|l| l > bound as u64) {
        return Err(Read::TooLarge);
    }
    match Limited::new(body, bound).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Read::TooLarge),
        Err(e) => Err(Read::Failed(chain(e.as_ref()))),
    }
}

/// An error and its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The size of the event being read, counted over the bytes of its lines (comments
/// excluded, as rmcp counts): an event boundary (a blank line, after `\n`, `\r\n` or `\r`)
/// starts the count again.
#[derive(Debug, Default)]
pub(super) struct EventLimiter {
    event: usize,
    line: usize,
    comment: bool,
    after_cr: bool,
}

impl EventLimiter {
    /// Counts `chunk`; `false` once the event being read is over [`MAX_EVENT`].
    pub(super) fn admit(&mut self, chunk: &[u8], bound: usize) -> bool {
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\r' | b'\n' => {
                    if self.line == 0 {
                        self.event = 0;
                    } else if !self.comment {
                        self.event = self.event.saturating_add(self.line).saturating_add(1);
                    }
                    self.line = 0;
                    self.comment = false;
                    self.after_cr = byte == b'\r';
                }
                _ => {
                    if self.line == 0 {
                        self.comment = byte == b':';
                    }
                    self.line = self.line.saturating_add(1);
                }
            }
            if self.event.saturating_add(self.line) > bound {
                return false;
            }
        }
        true
    }
}

/// The bytes of an event stream, ended with an error at the first event over [`MAX_EVENT`].
struct BoundedEvents {
    body: BodyStream<Incoming>,
    limiter: EventLimiter,
    failed: bool,
}

impl Stream for BoundedEvents {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut this.body).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(std::io::Error::other(chain(&e)))));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            if !this.limiter.admit(&chunk, MAX_EVENT) {
                this.failed = true;
                return Poll::Ready(Some(Err(std::io::Error::other(format!(
                    "SSE event exceeded the maximum size of {MAX_EVENT} bytes"
                )))));
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
    }
}

#[cfg(test)]
mod tests;
