//! Serving one plane: an accept loop with a connection cap, HTTP/1 connections with a header
//! timeout, and the per-request bounds (body and request timeouts) as middleware.
//!
//! What bounds what, and why long-lived answers are not cut:
//! - **Connections.** A plane holds at most its cap of connections (a semaphore permit per
//!   connection); one accepted beyond it is closed at once, so a flood of one plane never
//!   takes the file descriptors the other plane needs.
//! - **TLS handshake** (a plane with a certificate). It must complete within the header
//!   timeout, else the connection is closed: a slow or stalled handshake cannot hold a slot.
//!   A handshake that fails (plain HTTP, a garbage or oversized ClientHello) closes it at once.
//! - **Header timeout** (connection level). A connection must send a complete request head
//!   within it — a new connection, and a kept-alive one between requests (so it is the idle
//!   timeout too); else it is closed. It never applies while a response is being written, so
//!   a stream (MCP SSE, a model stream) or an approval wait is not cut by it.
//! - **Body timeout** (per request). The request body must have arrived within it of the
//!   request head; a body still trickling in after it fails the request.
//! - **Request timeout** (per request, short routes only). The operator plane's routes and the
//!   agent plane's short ones (`/healthz`, `/readyz`, `/v1/models`, result reports) must answer
//!   within it. The MCP endpoint, the decide API and the model endpoints are not under it: they wait
//!   for approvals and stream answers, bounded by their own deadlines (the approval deadline,
//!   the upstream timeout, a route's timeout).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Limits;
use crate::tls::PlaneTls;

/// How long the accept loop pauses after `accept` fails (out of file descriptors, say), so
/// that it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// One plane to serve.
pub(crate) struct Plane {
    /// `agent` or `operator` (for logs).
    pub(crate) name: &'static str,
    /// The bound listener.
    pub(crate) listener: TcpListener,
    /// The plane's routes, with their layers.
    pub(crate) app: Router,
    /// At most this many connections at once.
    pub(crate) max_connections: usize,
    /// The plane's TLS, if it serves TLS.
    pub(crate) tls: Option<Arc<PlaneTls>>,
}

/// Accepts connections on `plane` until `stop`, each served on `tracker` (so the drain at
/// shutdown waits for them); at `stop`, every connection finishes its request in flight and
/// closes.
pub(crate) async fn serve(
    plane: Plane,
    limits: Limits,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let Plane {
        name,
        listener,
        app,
        max_connections,
        tls,
    } = plane;
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let refused = AtomicU64::new(0);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, plane = name, "Accepting a connection failed.");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Over the cap: closed at once (the descriptor is freed now, not when the peer
            // gives up). Logged for the first and then every 1,000th.
            let n = refused.fetch_add(1, Ordering::Relaxed);
            if n.is_multiple_of(1000) {
                tracing::warn!(
                    plane = name,
                    max_connections,
                    refused = n + 1,
                    "Connection cap reached; new connections are closed."
                );
            }
            drop(stream);
            continue;
        };
        // No Nagle: a stream's chunks (and small answers) go out at once instead of waiting
        // for the client's delayed ACK (~40 ms).
        let _ = stream.set_nodelay(true);
        // The client's address reaches the handlers as axum's `ConnectInfo` (anonymous
        // refusals on the operator plane are counted by it).
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let stop = stop.clone();
        let header_timeout = limits.header_timeout;
        // The configuration in force when the connection is accepted (a reload applies to
        // the connections accepted after it).
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.current()));
        tracker.spawn(async move {
            let _permit = permit;
            let Some(acceptor) = acceptor else {
                serve_connection(name, stream, service, header_timeout, stop).await;
                return;
            };
            let handshake = tokio::select! {
                () = stop.cancelled() => return,
                r = tokio::time::timeout(header_timeout, acceptor.accept(stream)) => r,
            };
            match handshake {
                Ok(Ok(stream)) => {
                    serve_connection(name, stream, service, header_timeout, stop).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, plane = name, "A TLS handshake failed.");
                }
                Err(_) => {
                    tracing::debug!(plane = name, "A TLS handshake did not finish within the header timeout; the connection is closed.");
                }
            }
        });
    }
}

/// Serves HTTP/1 on one connection (plain or TLS) until it ends; at `stop`, the request in
/// flight finishes and the connection closes.
async fn serve_connection<I, S>(
    name: &'static str,
    io: I,
    service: S,
    header_timeout: Duration,
    stop: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, plane = name, "A connection ended with an error.");
            }
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The body read deadline, as an error the body's reader sees.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
struct BodyTimedOut(Duration);

/// Middleware: the request body must arrive within `timeout` of the request head; past it the
/// body's reader gets an error (the request fails, in the route's own way).
pub(crate) async fn body_within(timeout: Duration, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Some(deadline) = tokio::time::Instant::now().checked_add(timeout) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let data = body.into_data_stream();
    let bounded = futures::stream::unfold(Some(data), move |state| async move {
        let mut data = state?;
        match tokio::time::timeout_at(deadline, data.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(data))),
            Ok(Some(Err(e))) => Some((Err(axum::Error::new(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(axum::Error::new(BodyTimedOut(timeout))), None)),
        }
    });
    next.run(Request::from_parts(parts, Body::from_stream(bounded)))
        .await
}

/// Middleware: the answer must be ready within `timeout`, else `503` with a JSON error (for
/// routes that never wait or stream).
pub(crate) async fn answer_within(timeout: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => warden_operator::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!("the request was not answered within {timeout:?}"),
        )
        .into_response(),
    }
}

/// Raises the soft limit on open files to the hard limit, so that the connection caps, not the
/// descriptor limit, bound the listeners (a soft limit of 1024 is common). A failure is
/// logged and start-up goes on.
pub(crate) fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "The open files limit could not be raised.");
        }
    }
}
