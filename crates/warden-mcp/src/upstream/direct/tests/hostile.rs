//! The direct client's HTTP side against servers that answer what no conforming server
//! answers: every status rmcp's client sorts out, bodies over their bounds (announced or not),
//! an event over its bound, a body cut short, and TLS (a trusted and an unknown issuer).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use serde_json::{Value, json};

use super::super::{Wire, parse, wire::Posted};
use super::{LONG, call, direct, failed_with, serve, session_then, tool_result};

fn with_status(code: StatusCode, content_type: Option<&str>, body: &str) -> Response {
    let mut r = Response::builder().status(code);
    if let Some(t) = content_type {
        r = r.header("content-type", t);
    }
    r.body(Body::from(body.to_owned())).unwrap()
}

/// A body sent in chunks with no `Content-Length`: only counting can bound it.
fn chunked(code: StatusCode, content_type: &str, chunks: Vec<Bytes>) -> Response {
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .body(Body::from_stream(stream))
        .unwrap()
}

/// Each answer to the call, and what the call's failure says.
#[tokio::test]
async fn every_status_fails_the_call_as_rmcps_client_would() {
    let error = json!({ "jsonrpc": "2.0", "id": 2,
        "error": { "code": -32602, "message": "no such tool" } })
    .to_string();
    let cases: Vec<(Response, &str)> = vec![
        (
            Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("www-authenticate", "Bearer realm=\"x\"")
                .body(Body::empty())
                .unwrap(),
            "refused the gateway's credentials (HTTP 401)",
        ),
        (
            Response::builder()
                .status(StatusCode::FORBIDDEN)
                .header("www-authenticate", "Bearer scope=\"admin\"")
                .body(Body::empty())
                .unwrap(),
            "refused the gateway's credentials (HTTP 403)",
        ),
        (
            with_status(StatusCode::UNAUTHORIZED, Some("application/json"), &error),
            "HTTP 401 Unauthorized",
        ),
        (
            with_status(StatusCode::SERVICE_UNAVAILABLE, Some("text/plain"), "down"),
            "HTTP 503 Service Unavailable",
        ),
        (
            with_status(
                StatusCode::TOO_MANY_REQUESTS,
                Some("application/json"),
                &error,
            ),
            "HTTP 429 Too Many Requests",
        ),
        (
            with_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("application/json"),
                &error,
            ),
            "no such tool",
        ),
        (
            with_status(StatusCode::BAD_REQUEST, Some("application/json"), &error),
            "no such tool",
        ),
        (
            with_status(StatusCode::BAD_REQUEST, Some("text/plain"), "nope"),
            "HTTP 400 Bad Request: nope",
        ),
        (
            with_status(StatusCode::NOT_FOUND, None, ""),
            "HTTP 404 Not Found",
        ),
        (
            with_status(StatusCode::ACCEPTED, None, ""),
            "accepted the call without answering",
        ),
        (
            with_status(StatusCode::NO_CONTENT, None, ""),
            "accepted the call without answering",
        ),
        (
            with_status(StatusCode::OK, Some("text/html"), "<html>"),
            "Unexpected content type",
        ),
        (
            with_status(StatusCode::OK, None, "{}"),
            "Unexpected content type",
        ),
        (
            with_status(StatusCode::OK, Some("application/json"), ""),
            "could not parse JSON",
        ),
        (
            with_status(StatusCode::FOUND, Some("text/plain"), "moved"),
            "HTTP 302 Found: moved",
        ),
    ];
    for (answer, needle) in cases {
        let answer = Arc::new(std::sync::Mutex::new(Some(answer)));
        let (url, _) = serve(session_then(None, move |_, _, _| {
            answer.lock().unwrap().take().unwrap()
        }))
        .await;
        failed_with(call(&direct(&url), LONG).await, needle);
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let (url, seen) = serve(session_then(None, |_, _, _| {
        Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("location", "http://127.0.0.1:9/steal")
            .body(Body::empty())
            .unwrap()
    }))
    .await;
    failed_with(call(&direct(&url), LONG).await, "HTTP 307");
    let calls = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _)| m == "tools/call")
        .count();
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn an_unannounced_oversized_answer_is_counted_and_refused() {
    let (url, _) = serve(session_then(None, |_, m, _| {
        let head = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{{"content":[{{"type":"text","text":""#,
            m["id"]
        );
        let mut chunks = vec![Bytes::from(head)];
        chunks.extend((0..17).map(|_| Bytes::from(vec![b'x'; 1024 * 1024])));
        chunks.push(Bytes::from_static(b"\"}]}}"));
        chunked(StatusCode::OK, "application/json", chunks)
    }))
    .await;
    failed_with(
        call(&direct(&url), LONG).await,
        "exceeded the maximum size of 16777216",
    );
}

#[tokio::test]
async fn an_error_body_over_64_kib_is_refused() {
    let (url, _) = serve(session_then(None, |_, _, _| {
        chunked(
            StatusCode::BAD_REQUEST,
            "application/json",
            vec![Bytes::from(vec![b' '; 65 * 1024])],
        )
    }))
    .await;
    failed_with(
        call(&direct(&url), LONG).await,
        "exceeded the maximum size of 65536",
    );
}

#[tokio::test]
async fn an_event_over_its_bound_fails_the_call() {
    let (url, _) = serve(session_then(None, |_, _, _| {
        let mut chunks = vec![Bytes::from_static(b"data: ")];
        chunks.extend((0..17).map(|_| Bytes::from(vec![b'x'; 1024 * 1024])));
        chunked(StatusCode::OK, "text/event-stream", chunks)
    }))
    .await;
    failed_with(
        call(&direct(&url), LONG).await,
        "SSE event exceeded the maximum size",
    );
}

/// The bound is per event: many events, more than the bound in all, then the answer.
#[tokio::test]
async fn events_under_the_bound_are_read_whatever_their_total() {
    let (url, _) = serve(session_then(None, |_, m, _| {
        let big = "y".repeat(1024 * 1024);
        let note = json!({ "jsonrpc": "2.0", "method": "notifications/message",
            "params": { "level": "info", "data": big } });
        let mut chunks: Vec<Bytes> = (0..17)
            .map(|_| Bytes::from(format!("data: {note}\r\n\r\n")))
            .collect();
        chunks.push(Bytes::from(format!("data: {}\n\n", tool_result(m, "last"))));
        chunked(StatusCode::OK, "text/event-stream", chunks)
    }))
    .await;
    let content = call(&direct(&url), Duration::from_secs(60)).await.unwrap();
    assert_eq!(content[0].as_text().map(|t| t.text.as_str()), Some("last"));
}

#[tokio::test]
async fn a_body_cut_short_fails_the_call() {
    let (url, _) = serve(session_then(None, |_, _, _| {
        let stream = futures::stream::iter([
            Ok(Bytes::from_static(b"{\"jsonrpc\":\"2.0\",")),
            Err(std::io::Error::other("cut")),
        ]);
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap()
    }))
    .await;
    failed_with(call(&direct(&url), LONG).await, "transport error");
}

/// An HTTPS server whose certificate `roots` trust (its own, self-signed): its URL.
async fn tls_server(roots: &mut rustls::RootCertStore) -> Uri {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = generated.cert.der().clone();
    roots.add(cert.clone()).unwrap();
    let key =
        rustls_pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tasks = tokio_util::task::TaskTracker::new();
    tasks.clone().spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tasks.spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt as _;
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let message: Value = serde_json::from_slice(&body).unwrap();
                        let answer = tool_result(&message, "over tls").to_string();
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(Bytes::from(answer)))
                                .unwrap(),
                        )
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://localhost:{port}/mcp").parse().unwrap()
}

fn call_body() -> Bytes {
    let params = rmcp::model::CallToolRequestParams::new("echo");
    parse::call_body(2, &params).unwrap()
}

#[tokio::test]
async fn an_https_server_is_called_over_tls_with_its_certificate_checked() {
    let mut roots = rustls::RootCertStore::empty();
    let uri = tls_server(&mut roots).await;
    let version = HeaderValue::from_static("2025-06-18");

    // Trusted: the call is answered over TLS.
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let wire = Wire::with_tls(uri.clone(), &HeaderMap::new(), None, tls);
    let Ok(Posted::Json(body)) = wire.post(call_body(), None, &version).await else {
        panic!("no JSON answer over TLS");
    };
    let answer = parse::answer_of(&body, &rmcp::model::NumberOrString::Number(2)).unwrap();
    assert!(format!("{answer:?}").contains("over tls"), "{answer:?}");

    // The platform's roots do not know the issuer: refused before anything is sent.
    let url: url::Url = uri.to_string().parse().unwrap();
    let platform = Wire::new(&url, &HeaderMap::new(), None).unwrap().unwrap();
    let Err(e) = platform.post(call_body(), None, &version).await else {
        panic!("an unknown issuer was trusted");
    };
    assert!(e.contains("certificate"), "{e}");
}
