//! `tools/call` to a Streamable HTTP server as one HTTP POST from the calling task.
//!
//! rmcp's client runs a worker task per connection: each request is handed to it over a
//! channel and its answer comes back over another, two task hops per call that are not the
//! work. [`Direct`] posts the call itself, from the task of the agent's request, on pooled
//! keep-alive connections ([`wire`]: `hyper`'s client with the server's headers, and its OAuth
//! token chosen per request), and reads the answer there ([`parse`]: the usual tool result
//! read directly, anything else as rmcp reads it). The session's opening, the replies to the
//! server's own requests and the session's end are rare: they go through rmcp's client
//! ([`AuthClient`]).
//!
//! What it keeps of the connection's guarantees:
//! - an MCP session of its own with the server (`initialize`, then
//!   `notifications/initialized`), opened on the first call; its `Mcp-Session-Id` and the
//!   negotiated `MCP-Protocol-Version` go with every call;
//! - the bounds of rmcp's HTTP client: a JSON answer within 16 MiB, an error body within
//!   64 KiB, each SSE event within 16 MiB; the caller's timeout bounds the whole call (the
//!   session's opening included), and so the number of events read;
//! - an answer sent as an event stream (`text/event-stream`): read until the response that
//!   carries the call's id; notifications are skipped, the server's own requests answered (a
//!   ping; "method not found" for sampling, elicitation and the rest, which are not relayed to
//!   the agent), and an event that is not a JSON-RPC message fails the call;
//! - a session the server expired (HTTP 404 to a call that carried it) is opened again once and
//!   the call retried once: a second 404 fails the call, never a loop;
//! - a server that negotiated a protocol version with per-request standard headers
//!   (2026-07-28 and later) is left to the connection ([`DirectError::Unsupported`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientJsonRpcMessage,
    ClientNotification, ClientRequest, ClientResult, ErrorCode, ErrorData, InitializeRequest,
    InitializeRequestParams, InitializedNotification, JsonRpcMessage, JsonRpcRequest,
    NumberOrString, ProtocolVersion, ServerRequest, ServerResult,
};
use rmcp::transport::streamable_http_client::{StreamableHttpClient, StreamableHttpError};

use super::UpstreamError;
use crate::http_client::AuthClient;
use parse::Event;
use wire::Posted;
pub(super) use wire::Wire;

mod parse;
mod wire;

type Headers = HashMap<HeaderName, HeaderValue>;

/// Why a direct call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DirectError {
    /// The server's session needs what this client does not send: the call goes through the
    /// server's connection instead.
    Unsupported,
    /// The call failed; the message says why.
    Failed(String),
}

/// An open session with the server.
#[derive(Debug)]
struct Session {
    /// `Mcp-Session-Id` (none for a server without sessions).
    id: Option<Arc<str>>,
    /// The same, as a header value.
    id_header: Option<HeaderValue>,
    /// `MCP-Protocol-Version`, as a header value.
    version: HeaderValue,
    /// `MCP-Protocol-Version`, for rmcp's client.
    headers: Headers,
    /// Which opening this is, so a 404 reopens a session only once however many calls saw it.
    epoch: u64,
}

/// The direct client of one Streamable HTTP server (with its server-wide credentials).
pub(super) struct Direct {
    /// The calls' client.
    wire: Wire,
    /// rmcp's client, for the session's opening and end and the replies to the server.
    client: AuthClient,
    uri: Arc<str>,
    session: Mutex<Option<Arc<Session>>>,
    /// Held while a session is opened: one `initialize` at a time.
    opening: tokio::sync::Mutex<()>,
    epochs: AtomicU64,
    ids: AtomicI64,
    /// The server negotiated a version this client does not speak: calls take the connection
    /// until the server is connected again ([`Direct::reset`]).
    unsupported: AtomicBool,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

fn failed(e: &StreamableHttpError<reqwest::Error>) -> DirectError {
    DirectError::Failed(format!("transport error: {e}"))
}

impl Direct {
    /// A client of the server at `uri`: its calls through `wire`, the rest through `client`.
    pub(super) fn new(wire: Wire, client: AuthClient, uri: &url::Url) -> Direct {
        Direct {
            wire,
            client,
            uri: Arc::from(uri.as_str()),
            session: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
            epochs: AtomicU64::new(0),
            ids: AtomicI64::new(1),
            unsupported: AtomicBool::new(false),
        }
    }

    fn next_id(&self) -> NumberOrString {
        NumberOrString::Number(self.ids.fetch_add(1, Ordering::Relaxed))
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the session (the server was connected again): the next call opens another.
    pub(super) fn reset(&self) {
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.unsupported.store(false, Ordering::Relaxed);
    }

    /// Ends the session (the server is stopped): a `DELETE` with its id, waited for at most
    /// `within`; a server that does not answer keeps it until it expires it.
    pub(super) async fn close(&self, within: Duration) {
        let Some(session) = self
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        if let Some(id) = &session.id {
            let delete = self.client.delete_session(
                self.uri.clone(),
                id.clone(),
                None,
                session.headers.clone(),
            );
            if let Ok(Err(e)) = tokio::time::timeout(within, delete).await {
                tracing::debug!(uri = %self.uri, error = %e, "The upstream session could not be ended.");
            }
        }
    }

    /// Calls the tool within `timeout`: `Err(params)` when the call must take the server's
    /// connection instead ([`DirectError::Unsupported`]), else its answer, or its failure as
    /// the connection's path reports it (a timeout, or the server's error).
    pub(super) async fn call(
        &self,
        server: &str,
        params: CallToolRequestParams,
        timeout: Duration,
    ) -> Result<Result<CallToolResult, UpstreamError>, CallToolRequestParams> {
        if self.unsupported.load(Ordering::Relaxed) {
            return Err(params);
        }
        let call = async {
            match self.session(None).await {
                Err(DirectError::Unsupported) => {
                    self.unsupported.store(true, Ordering::Relaxed);
                    Err(params)
                }
                Err(e) => Ok(Err(e)),
                Ok(session) => Ok(self.call_tool(session, params).await),
            }
        };
        let answer = match tokio::time::timeout(timeout, call).await {
            Err(_) => {
                return Ok(Err(UpstreamError::Timeout {
                    server: server.to_owned(),
                    seconds: timeout.as_secs(),
                }));
            }
            Ok(answer) => answer?,
        };
        let failed = |message: String| UpstreamError::Failed {
            server: server.to_owned(),
            message,
        };
        Ok(match answer {
            Ok(CallToolResponse::Complete(result)) => Ok(result),
            Ok(_) => Err(failed(
                "the server asked for input or a task, which the gateway does not relay"
                    .to_owned(),
            )),
            Err(DirectError::Failed(message)) => Err(failed(message)),
            Err(DirectError::Unsupported) => Err(failed(
                "the server's session, opened again, negotiated a protocol version the gateway's direct client does not speak".to_owned(),
            )),
        })
    }

    /// The open session, or a new one; `stale` is the epoch of a session the server expired,
    /// which is replaced unless another call already did.
    async fn session(&self, stale: Option<u64>) -> Result<Arc<Session>, DirectError> {
        if stale.is_none()
            && let Some(s) = self.current()
        {
            return Ok(s);
        }
        let _opening = self.opening.lock().await;
        if let Some(s) = self.current()
            && Some(s.epoch) != stale
        {
            return Ok(s);
        }
        let opened = Arc::new(self.open().await?);
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = Some(opened.clone());
        Ok(opened)
    }

    /// `initialize` and `notifications/initialized`.
    async fn open(&self) -> Result<Session, DirectError> {
        let mut params = InitializeRequestParams::default();
        params.protocol_version = ProtocolVersion::LATEST_WITH_INITIALIZE;
        let request = ClientJsonRpcMessage::request(
            ClientRequest::InitializeRequest(InitializeRequest::new(params)),
            self.next_id(),
        );
        let (answer, id) = self
            .client
            .post_message(self.uri.clone(), request, None, None, Headers::new())
            .await
            .map_err(|e| failed(&e))?
            .expect_initialized::<reqwest::Error>()
            .await
            .map_err(|e| failed(&e))?;
        let version = match answer {
            JsonRpcMessage::Response(r) => match r.result {
                ServerResult::InitializeResult(init) => init.protocol_version,
                _ => {
                    return Err(DirectError::Failed(
                        "the server's answer to `initialize` is not an initialize result"
                            .to_owned(),
                    ));
                }
            },
            JsonRpcMessage::Error(e) => {
                return Err(DirectError::Failed(format!(
                    "initialisation failed: {}",
                    rmcp::ServiceError::McpError(e.error)
                )));
            }
            _ => {
                return Err(DirectError::Failed(
                    "the server did not answer `initialize`".to_owned(),
                ));
            }
        };
        if version >= ProtocolVersion::STANDARD_HEADERS {
            return Err(DirectError::Unsupported);
        }
        let mut headers = Headers::new();
        let value = HeaderValue::from_str(version.as_str())
            .map_err(|_| DirectError::Failed("the protocol version is not a header".to_owned()))?;
        headers.insert(
            HeaderName::from_static("mcp-protocol-version"),
            value.clone(),
        );
        let id_header = match &id {
            None => None,
            Some(id) => Some(HeaderValue::from_str(id).map_err(|_| {
                DirectError::Failed("the server's session id is not a header value".to_owned())
            })?),
        };
        let id: Option<Arc<str>> = id.map(Arc::from);
        let initialized = ClientJsonRpcMessage::notification(
            ClientNotification::InitializedNotification(InitializedNotification::default()),
        );
        self.client
            .post_message(
                self.uri.clone(),
                initialized,
                id.clone(),
                None,
                headers.clone(),
            )
            .await
            .map_err(|e| failed(&e))?
            .expect_accepted_or_json::<reqwest::Error>()
            .map_err(|e| failed(&e))?;
        Ok(Session {
            id,
            id_header,
            version: value,
            headers,
            epoch: self.epochs.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Calls the tool in `session`: the answer, or why there is none. The caller bounds the
    /// time.
    async fn call_tool(
        &self,
        mut session: Arc<Session>,
        params: CallToolRequestParams,
    ) -> Result<CallToolResponse, DirectError> {
        // One retry after a 404, which only a call carrying a session can get.
        let mut retry = session.id.is_some();
        loop {
            let id = self.ids.fetch_add(1, Ordering::Relaxed);
            let body = parse::call_body(id, &params)?;
            let posted = self
                .wire
                .post(body, session.id_header.as_ref(), &session.version)
                .await
                .map_err(DirectError::Failed)?;
            match posted {
                Posted::Expired if std::mem::take(&mut retry) => {
                    session = self.session(Some(session.epoch)).await?;
                }
                Posted::Expired => {
                    return Err(DirectError::Failed(
                        "transport error: Session expired (HTTP 404)".to_owned(),
                    ));
                }
                posted => {
                    return self
                        .answer_in(&session, posted, &NumberOrString::Number(id))
                        .await;
                }
            }
        }
    }
}

impl Direct {
    /// The call's answer in what the server posted back: a JSON message, or the first
    /// response carrying `id` in an event stream.
    async fn answer_in(
        &self,
        session: &Session,
        posted: Posted,
        id: &NumberOrString,
    ) -> Result<CallToolResponse, DirectError> {
        let not_the_response = || {
            Err(DirectError::Failed(
                "the server answered with a message that is not the call's response".to_owned(),
            ))
        };
        let mut events = match posted {
            Posted::Json(body) => {
                return parse::answer_of(&body, id)?.unwrap_or_else(not_the_response);
            }
            Posted::Error(error) => {
                return parse::response_of(*error, id).unwrap_or_else(not_the_response);
            }
            Posted::Events(events) => events,
            Posted::Accepted | Posted::Expired => {
                return Err(DirectError::Failed(
                    "the server accepted the call without answering it".to_owned(),
                ));
            }
        };
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| DirectError::Failed(format!("event stream: {e}")))?;
            let data = event.data.unwrap_or_default();
            if data.trim().is_empty() {
                continue;
            }
            match parse::event_message(&data)? {
                Event::Result(answered, result) if &answered == id => {
                    return Ok(CallToolResponse::Complete(result));
                }
                Event::Result(..) => {}
                Event::Message(message) => match *message {
                    JsonRpcMessage::Request(request) => {
                        self.answer_server(session, request).await;
                    }
                    message => {
                        if let Some(answer) = parse::response_of(message, id) {
                            return answer;
                        }
                    }
                },
            }
        }
        Err(DirectError::Failed(
            "the server ended its event stream without answering the call".to_owned(),
        ))
    }

    /// Answers a request the server sent during a call: a ping is answered; anything else
    /// (sampling, elicitation, roots, a custom method) is not relayed to the agent and gets
    /// "method not found". A reply that cannot be posted is only logged.
    async fn answer_server(&self, session: &Session, request: JsonRpcRequest<ServerRequest>) {
        let reply = match request.request {
            ServerRequest::PingRequest(_) => {
                ClientJsonRpcMessage::response(ClientResult::empty(()), request.id)
            }
            _ => ClientJsonRpcMessage::error(
                ErrorData::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    "the gateway does not relay a server's requests to the agent",
                    None,
                ),
                Some(request.id),
            ),
        };
        let posted = self
            .client
            .post_message(
                self.uri.clone(),
                reply,
                session.id.clone(),
                None,
                session.headers.clone(),
            )
            .await;
        if let Err(e) = posted {
            tracing::debug!(uri = %self.uri, error = %e, "A reply to the upstream's request could not be posted.");
        }
    }
}

#[cfg(test)]
mod tests;
