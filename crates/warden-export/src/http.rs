//! The HTTP sinks: a batch POSTed as JSON (`{"ledger": <id>, "records": [<record>, ...]}`, each
//! record the object of its JSON line) to a URL, or as OTLP/HTTP protobuf logs to
//! `{endpoint}/v1/logs` ([`crate::otlp`]). A 2xx acknowledges the batch. Connection errors,
//! timeouts, 408, 429 and 5xx are retried soon (429 and 503 honour `Retry-After`); any other
//! answer (a 3xx — redirects are not followed, so credentials never go elsewhere — or a 4xx)
//! is a refusal, retried slowly: a batch is never skipped. Every request is bounded by
//! [`REQUEST_TIMEOUT`], and at most [`MAX_RESPONSE_BYTES`] of an answer are read.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use warden_core::canonical::write_json_string;

use crate::ExportError;
use crate::batch::Batch;
use crate::retry::{Failure, parse_retry_after};

/// How long one request may take (connecting, sending, the answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of an answer read (the rest is dropped with the connection).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    OtlpLogs,
}

/// One HTTP sink.
pub struct HttpSink {
    url: String,
    headers: HeaderMap,
    client: reqwest::Client,
    format: Format,
    ledger: String,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// A JSON sink POSTing to `url`.
    pub fn json(
        sink: &str,
        url: &str,
        headers: &[(String, String)],
        ledger: &str,
    ) -> Result<HttpSink, ExportError> {
        HttpSink::new(sink, url.to_owned(), headers, ledger, Format::Json)
    }

    /// An OTLP logs sink POSTing to `{endpoint}/v1/logs`.
    pub fn otlp_logs(
        sink: &str,
        endpoint: &str,
        headers: &[(String, String)],
        ledger: &str,
    ) -> Result<HttpSink, ExportError> {
        let url = format!("{}/v1/logs", endpoint.trim_end_matches('/'));
        HttpSink::new(sink, url, headers, ledger, Format::OtlpLogs)
    }

    fn new(
        sink: &str,
        url: String,
        headers: &[(String, String)],
        ledger: &str,
        format: Format,
    ) -> Result<HttpSink, ExportError> {
        let setup = |reason: String| ExportError::Setup {
            sink: sink.to_owned(),
            reason,
        };
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| setup("its HTTP client could not be built".to_owned()))?;
        Ok(HttpSink {
            url,
            headers: header_map(headers).map_err(setup)?,
            client,
            format,
            ledger: ledger.to_owned(),
        })
    }

    /// The URL the batches go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `batch` once: `Ok` when the sink answered 2xx.
    pub async fn send(&self, batch: &Batch) -> Result<(), Failure> {
        let (content_type, body) = match self.format {
            Format::Json => (
                "application/json",
                json_body(&self.ledger, batch).into_bytes(),
            ),
            Format::OtlpLogs => (
                "application/x-protobuf",
                crate::otlp::encode(&self.ledger, batch),
            ),
        };
        let sent = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            // Never reqwest's text: it may hold the URL.
            Err(e) if e.is_timeout() => {
                return Err(Failure::transient("the sink did not answer in time"));
            }
            Err(e) if e.is_connect() => {
                return Err(Failure::transient("the sink could not be reached"));
            }
            Err(_) => return Err(Failure::transient("the request to the sink failed")),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // A bounded read of the answer (nothing in it is used; reading lets the connection be
        // kept): at most MAX_RESPONSE_BYTES, within the request's timeout.
        let mut read = 0usize;
        while read <= MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read = read.saturating_add(chunk.len()),
                Ok(None) | Err(_) => break,
            }
        }
        let code = status.as_u16();
        if status.is_success() {
            Ok(())
        } else if code == 408 || code == 429 || status.is_server_error() {
            Err(Failure {
                reason: format!("the sink answered {code}"),
                refused: false,
                retry_after: if code == 429 || code == 503 {
                    retry_after
                } else {
                    None
                },
            })
        } else {
            Err(Failure {
                reason: format!("the sink refused the batch ({code})"),
                refused: true,
                retry_after: None,
            })
        }
    }
}

/// `{"ledger": <ledger>, "records": [<line>, ...]}`: the lines are JSON objects already.
pub fn json_body(ledger: &str, batch: &Batch) -> String {
    let mut body =
        String::with_capacity(batch.bytes.saturating_add(batch.len()).saturating_add(96));
    body.push_str("{\"ledger\":");
    write_json_string(&mut body, ledger);
    body.push_str(",\"records\":[");
    for (i, item) in batch.items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&item.line);
    }
    body.push_str("]}");
    body
}

/// The headers as an HTTP header map, values marked sensitive; `Err` names the first header
/// that is not valid (never its value).
pub fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("`{k}` is not a valid HTTP header name"))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| format!("the value of header `{k}` is not a valid HTTP header value"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}
