//! The direct client against scripted Streamable HTTP servers: what a conforming server gets
//! (session, protocol version, credentials), and what a broken or hostile one cannot do
//! (oversized, malformed or junk answers, no answer, sessions expired again and again).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use rmcp::model::{CallToolRequestParams, ContentBlock};
use serde_json::{Value, json};

use super::{Direct, Wire};
use crate::http_client::{AuthClient, reqwest_client};
use crate::upstream::UpstreamError;

/// What the scripted server answers to the `n`th request (counted per method) of `method`.
type Script = dyn Fn(&str, usize, &Value, &HeaderMap) -> Response + Send + Sync;

#[derive(Clone)]
struct Server {
    script: Arc<Script>,
    seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    counts: Arc<Mutex<std::collections::HashMap<String, usize>>>,
}

async fn handle(State(s): State<Server>, headers: HeaderMap, body: String) -> Response {
    let Ok(message) = serde_json::from_str::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST);
    };
    // A reply of the client to the server's own request: named by its id and kind.
    let method = match message["method"].as_str() {
        Some(m) => m.to_owned(),
        None => {
            let kind = if message.get("error").is_some() {
                "error"
            } else {
                "result"
            };
            let name = format!("reply {} {kind}", message["id"]);
            s.seen.lock().unwrap().push((name, headers));
            return status(StatusCode::ACCEPTED);
        }
    };
    let n = {
        let mut counts = s.counts.lock().unwrap();
        let n = counts.entry(method.clone()).or_default();
        *n += 1;
        *n
    };
    s.seen
        .lock()
        .unwrap()
        .push((method.clone(), headers.clone()));
    (s.script)(&method, n, &message, &headers)
}

async fn handle_delete(State(s): State<Server>, headers: HeaderMap) -> Response {
    s.seen.lock().unwrap().push(("DELETE".to_owned(), headers));
    status(StatusCode::NO_CONTENT)
}

/// Starts a server answering with `script`; its URL and what it saw (method, headers).
async fn serve(
    script: impl Fn(&str, usize, &Value, &HeaderMap) -> Response + Send + Sync + 'static,
) -> (url::Url, Arc<Mutex<Vec<(String, HeaderMap)>>>) {
    let server = Server {
        script: Arc::new(script),
        seen: Arc::default(),
        counts: Arc::default(),
    };
    let seen = server.seen.clone();
    let app = axum::Router::new()
        .route("/mcp", axum::routing::post(handle).delete(handle_delete))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio_util::task::TaskTracker::new().spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/mcp").parse().unwrap(), seen)
}

fn status(code: StatusCode) -> Response {
    Response::builder()
        .status(code)
        .body(Body::empty())
        .unwrap()
}

fn json_response(body: &Value, session: Option<&str>) -> Response {
    let mut r = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json");
    if let Some(s) = session {
        r = r.header("mcp-session-id", s);
    }
    r.body(Body::from(body.to_string())).unwrap()
}

fn sse_response(events: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .body(Body::from(events.to_owned()))
        .unwrap()
}

fn initialized(message: &Value, version: &str, session: Option<&str>) -> Response {
    let result = json!({
        "protocolVersion": version,
        "capabilities": { "tools": {} },
        "serverInfo": { "name": "scripted", "version": "1" },
    });
    json_response(
        &json!({ "jsonrpc": "2.0", "id": message["id"], "result": result }),
        session,
    )
}

fn tool_result(message: &Value, text: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": message["id"],
        "result": { "content": [{ "type": "text", "text": text }] },
    })
}

/// The usual session handshake (`initialize` answered with `session`), `call` for the rest.
fn session_then(
    session: Option<&'static str>,
    call: impl Fn(usize, &Value, &HeaderMap) -> Response + Send + Sync + 'static,
) -> impl Fn(&str, usize, &Value, &HeaderMap) -> Response + Send + Sync + 'static {
    move |method, n, message, headers| match method {
        "initialize" => initialized(message, "2025-06-18", session),
        "notifications/initialized" => status(StatusCode::ACCEPTED),
        _ => call(n, message, headers),
    }
}

fn direct(url: &url::Url) -> Direct {
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("k-123"));
    let client = AuthClient::new(reqwest_client(&headers).unwrap(), None);
    let wire = Wire::new(url, &headers, None)
        .unwrap()
        .expect("no proxy here");
    Direct::new(wire, client, url)
}

fn params() -> CallToolRequestParams {
    let mut args = serde_json::Map::new();
    args.insert("text".to_owned(), json!("hello"));
    CallToolRequestParams::new("echo").with_arguments(args)
}

async fn call(d: &Direct, timeout: Duration) -> Result<Vec<ContentBlock>, UpstreamError> {
    match d.call("s", params(), timeout).await {
        Ok(answer) => answer.map(|r| r.content),
        Err(_) => panic!("the direct client gave the call back to the connection"),
    }
}

fn failed_with(r: Result<Vec<ContentBlock>, UpstreamError>, needle: &str) {
    match r {
        Err(UpstreamError::Failed { message, .. }) => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected a failure with {needle:?}, got {other:?}"),
    }
}

const LONG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_call_carries_the_session_the_protocol_version_and_the_credentials() {
    let (url, seen) = serve(session_then(Some("sess-1"), |_, m, _| {
        json_response(&tool_result(m, "hi"), None)
    }))
    .await;
    let d = direct(&url);
    for _ in 0..3 {
        let content = call(&d, LONG).await.unwrap();
        assert_eq!(content[0].as_text().map(|t| t.text.as_str()), Some("hi"));
    }
    let seen = seen.lock().unwrap();
    let methods: Vec<&str> = seen.iter().map(|(m, _)| m.as_str()).collect();
    // One session for every call.
    assert_eq!(
        methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/call",
            "tools/call",
            "tools/call"
        ]
    );
    for (method, headers) in seen.iter() {
        assert_eq!(headers["x-api-key"], "k-123", "{method}");
        if method != "initialize" {
            assert_eq!(headers["mcp-session-id"], "sess-1", "{method}");
            assert_eq!(headers["mcp-protocol-version"], "2025-06-18", "{method}");
        }
    }
}

#[tokio::test]
async fn an_event_stream_answer_is_read_to_the_calls_response() {
    let (url, _) = serve(session_then(None, |_, m, _| {
        let progress = json!({ "jsonrpc": "2.0", "method": "notifications/progress",
            "params": { "progressToken": 1, "progress": 1 } });
        let other = json!({ "jsonrpc": "2.0", "id": 999_999, "result": {} });
        sse_response(&format!(
            "id: 0\ndata:\n\nevent: message\ndata: {progress}\n\ndata: {other}\n\ndata: {}\n\n",
            tool_result(m, "streamed")
        ))
    }))
    .await;
    let content = call(&direct(&url), LONG).await.unwrap();
    assert_eq!(
        content[0].as_text().map(|t| t.text.as_str()),
        Some("streamed")
    );
}

#[tokio::test]
async fn junk_in_the_event_stream_fails_the_call() {
    let (url, _) = serve(session_then(None, |_, _, _| {
        sse_response("data: {\"jsonrpc\": \"2.0\", not json\n\n")
    }))
    .await;
    failed_with(call(&direct(&url), LONG).await, "not a JSON-RPC message");
}

#[tokio::test]
async fn an_event_stream_that_ends_without_the_response_fails_the_call() {
    let (url, _) = serve(session_then(None, |_, _, _| {
        sse_response("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":1}}\n\n")
    }))
    .await;
    failed_with(call(&direct(&url), LONG).await, "without answering");
}

#[tokio::test]
async fn a_malformed_json_answer_fails_the_call() {
    let (url, _) = serve(session_then(None, |_, _, _| {
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from("{\"jsonrpc\":\"2.0\",\"id\":"))
            .unwrap()
    }))
    .await;
    failed_with(call(&direct(&url), LONG).await, "could not parse JSON");
}

#[tokio::test]
async fn an_oversized_answer_is_not_read_past_the_bound() {
    // 17 MiB of text in one result: over rmcp's 16 MiB bound on a JSON answer.
    let (url, _) = serve(session_then(None, |_, m, _| {
        json_response(&tool_result(m, &"x".repeat(17 * 1024 * 1024)), None)
    }))
    .await;
    failed_with(call(&direct(&url), LONG).await, "exceeded the maximum size");
}

#[tokio::test]
async fn a_server_that_never_answers_times_the_call_out() {
    let (url, _) = serve(|method, _, message, _| match method {
        "initialize" => initialized(message, "2025-06-18", None),
        "notifications/initialized" => status(StatusCode::ACCEPTED),
        // Headers sent, the body never ends.
        _ => Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(futures::stream::pending::<
                Result<Vec<u8>, std::io::Error>,
            >()))
            .unwrap(),
    })
    .await;
    let r = call(&direct(&url), Duration::from_millis(300)).await;
    assert!(matches!(r, Err(UpstreamError::Timeout { .. })), "{r:?}");
}

#[tokio::test]
async fn an_expired_session_is_opened_again_once_and_the_call_retried() {
    let (url, seen) = serve(|method, n, message, _| match method {
        "initialize" => initialized(message, "2025-06-18", Some(if n == 1 { "a" } else { "b" })),
        "notifications/initialized" => status(StatusCode::ACCEPTED),
        _ if n == 1 => status(StatusCode::NOT_FOUND),
        _ => json_response(&tool_result(message, "again"), None),
    })
    .await;
    let content = call(&direct(&url), LONG).await.unwrap();
    assert_eq!(content[0].as_text().map(|t| t.text.as_str()), Some("again"));
    let seen = seen.lock().unwrap();
    let calls: Vec<&str> = seen
        .iter()
        .filter(|(m, _)| m == "tools/call")
        .map(|(_, h)| h["mcp-session-id"].to_str().unwrap())
        .collect();
    assert_eq!(calls, ["a", "b"]);
}

#[tokio::test]
async fn a_session_expired_again_fails_the_call_without_a_loop() {
    let inits = Arc::new(AtomicUsize::new(0));
    let counted = inits.clone();
    let (url, seen) = serve(move |method, _, message, _| match method {
        "initialize" => {
            counted.fetch_add(1, Ordering::SeqCst);
            initialized(message, "2025-06-18", Some("s"))
        }
        "notifications/initialized" => status(StatusCode::ACCEPTED),
        _ => status(StatusCode::NOT_FOUND),
    })
    .await;
    failed_with(call(&direct(&url), LONG).await, "Session expired");
    assert_eq!(inits.load(Ordering::SeqCst), 2);
    let calls = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _)| m == "tools/call")
        .count();
    assert_eq!(calls, 2);
}

#[tokio::test]
async fn a_json_rpc_error_is_the_calls_failure() {
    let (url, _) = serve(session_then(None, |_, m, _| {
        json_response(
            &json!({ "jsonrpc": "2.0", "id": m["id"],
                "error": { "code": -32602, "message": "no such tool" } }),
            None,
        )
    }))
    .await;
    failed_with(call(&direct(&url), LONG).await, "no such tool");
}

#[tokio::test]
async fn a_response_to_another_request_is_not_taken_for_the_calls() {
    let (url, _) = serve(session_then(None, |_, _, _| {
        json_response(
            &json!({ "jsonrpc": "2.0", "id": 424_242, "result": { "content": [] } }),
            None,
        )
    }))
    .await;
    failed_with(call(&direct(&url), LONG).await, "not the call's response");
}

#[tokio::test]
async fn a_refused_initialisation_fails_the_call() {
    let (url, _) = serve(|_, _, _, _| status(StatusCode::INTERNAL_SERVER_ERROR)).await;
    failed_with(call(&direct(&url), LONG).await, "HTTP 500");
}

#[tokio::test]
async fn a_server_on_a_version_with_standard_headers_is_left_to_the_connection() {
    let inits = Arc::new(AtomicUsize::new(0));
    let counted = inits.clone();
    let (url, _) = serve(move |method, _, message, _| match method {
        "initialize" => {
            counted.fetch_add(1, Ordering::SeqCst);
            initialized(message, "2026-07-28", Some("s"))
        }
        "notifications/initialized" => status(StatusCode::ACCEPTED),
        _ => json_response(&tool_result(message, "direct"), None),
    })
    .await;
    let d = direct(&url);
    for _ in 0..2 {
        let given_back = d.call("s", params(), LONG).await;
        let Err(p) = given_back else {
            panic!("the call was not given back")
        };
        assert_eq!(p.name, "echo");
    }
    // Asked once; until the server connects again, calls go straight to the connection.
    assert_eq!(inits.load(Ordering::SeqCst), 1);
    d.reset();
    assert!(d.call("s", params(), LONG).await.is_err());
    assert_eq!(inits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn closing_ends_the_session_and_the_next_call_opens_another() {
    let (url, seen) = serve(|method, n, message, _| match method {
        "initialize" => initialized(
            message,
            "2025-06-18",
            Some(if n == 1 { "one" } else { "two" }),
        ),
        "notifications/initialized" => status(StatusCode::ACCEPTED),
        _ => json_response(&tool_result(message, "ok"), None),
    })
    .await;
    let d = direct(&url);
    call(&d, LONG).await.unwrap();
    d.close(LONG).await;
    call(&d, LONG).await.unwrap();
    let seen = seen.lock().unwrap();
    let trail: Vec<(&str, &str)> = seen
        .iter()
        .filter(|(m, _)| m == "DELETE" || m == "tools/call")
        .map(|(m, h)| (m.as_str(), h["mcp-session-id"].to_str().unwrap()))
        .collect();
    assert_eq!(
        trail,
        [
            ("tools/call", "one"),
            ("DELETE", "one"),
            ("tools/call", "two")
        ]
    );
}

#[tokio::test]
async fn the_servers_own_requests_during_a_call_are_answered_and_not_relayed() {
    let (url, seen) = serve(session_then(Some("s"), |_, m, _| {
        let ping = json!({ "jsonrpc": "2.0", "id": "p1", "method": "ping" });
        let sampling = json!({ "jsonrpc": "2.0", "id": "p2", "method": "sampling/createMessage",
            "params": { "messages": [], "maxTokens": 1 } });
        sse_response(&format!(
            "data: {ping}\n\ndata: {sampling}\n\ndata: {}\n\n",
            tool_result(m, "after")
        ))
    }))
    .await;
    let content = call(&direct(&url), LONG).await.unwrap();
    assert_eq!(content[0].as_text().map(|t| t.text.as_str()), Some("after"));
    let seen = seen.lock().unwrap();
    let replies: Vec<(&str, &str)> = seen
        .iter()
        .filter(|(m, _)| m.starts_with("reply"))
        .map(|(m, h)| (m.as_str(), h["mcp-session-id"].to_str().unwrap()))
        .collect();
    assert_eq!(
        replies,
        [("reply \"p1\" result", "s"), ("reply \"p2\" error", "s")]
    );
}

mod hostile;
