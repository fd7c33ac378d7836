use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use tokio::io::AsyncBufReadExt as _;
use tokio_util::sync::CancellationToken;

use super::*;

const PROGRESS: &str = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
const RESULT: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;
/// An answer with characters of two, three and four bytes in UTF-8, one of them last.
const UTF8_RESULT: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"café 日本 🦀 naïve"}],"note":"é🦀"}}"#;

/// `UTF8_RESULT` as one server-sent event.
fn utf8_event() -> String {
    format!("data: {UTF8_RESULT}\n\n")
}

/// A gateway stand-in: `/sse` answers with two events (and a comment), `/big` with an event
/// of 4 KiB and then a small one, `/refuse` with an error that has no id, `/utf8` with
/// `UTF8_RESULT` sent one byte at a time.
async fn serve(tasks: &TaskTracker, stop: CancellationToken) -> SocketAddr {
    let sse = |body: String| ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response();
    let app = Router::new()
        .route(
            "/sse",
            post(move || async move {
                sse(format!(": hello\n\nid: 0\nretry: 3000\ndata: {PROGRESS}\n\nid: 1\ndata: {RESULT}\r\n\r\n"))
            }),
        )
        .route(
            "/big",
            post(move || async move {
                sse(format!("data: {}\n\ndata: {RESULT}\n\n", "x".repeat(4096)))
            }),
        )
        .route(
            "/utf8",
            post(|| async {
                let bytes: Vec<Result<Vec<u8>, std::io::Error>> =
                    utf8_event().into_bytes().into_iter().map(|b| Ok(vec![b])).collect();
                (
                    [(header::CONTENT_TYPE, "text/event-stream")],
                    axum::body::Body::from_stream(futures::stream::iter(bytes)),
                )
            }),
        )
        .route(
            "/v1/decide",
            post(|| async {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    axum::Json(json!({ "error": { "code": "not_found", "message": "no such route" } })),
                )
            }),
        )
        .route(
            "/refuse",
            post(|| async {
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32001, "message": "invalid session token" } })),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tasks.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
    });
    addr
}

/// Runs the bridge on `input` against `path` and returns the lines it wrote.
async fn bridged(path: &str, input: &str) -> Vec<String> {
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let addr = serve(&tasks, stop.clone()).await;
    let (output, read_back) = tokio::io::duplex(1 << 20);
    let url = format!("http://{addr}{path}");
    bridge(&url, "wa_test", input.as_bytes(), output)
        .await
        .unwrap();
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    let mut lines = Vec::new();
    let mut reader = tokio::io::BufReader::new(read_back).lines();
    while let Some(line) = reader.next_line().await.unwrap() {
        lines.push(line);
    }
    lines
}

#[tokio::test]
async fn each_event_is_one_line_in_order() {
    let lines = bridged(
        "/sse",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\"}\n",
    )
    .await;
    assert_eq!(lines, [PROGRESS, RESULT]);
}

#[tokio::test]
async fn an_error_without_id_gets_the_requests() {
    let lines = bridged(
        "/refuse",
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\n",
    )
    .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let answer: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(answer["id"], 3);
    assert_eq!(answer["error"]["code"], -32001);
}

#[tokio::test]
async fn an_event_over_the_bound_ends_the_stream() {
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let addr = serve(&tasks, stop.clone()).await;
    let read = |limit: usize| async move {
        let resp = reqwest::Client::new()
            .post(format!("http://{addr}/big"))
            .send()
            .await
            .unwrap();
        bounded_events(resp, limit).collect::<Vec<String>>().await
    };
    assert_eq!(read(8192).await.len(), 2);
    assert!(read(1024).await.is_empty());
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

/// The events of an SSE answer whose body arrives in exactly these chunks.
async fn events_of(chunks: Vec<Vec<u8>>) -> Vec<String> {
    let body = futures::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::from(c))),
    );
    let resp = http::Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(reqwest::Body::wrap_stream(body))
        .unwrap();
    bounded_events(reqwest::Response::from(resp), MAX_EVENT_BYTES)
        .collect()
        .await
}

/// Issue 10, point 19: a multi-byte character split between two chunks of the answer is
/// reassembled, wherever the split falls, and so is one sent a byte at a time.
#[tokio::test]
async fn utf8_split_across_chunks_at_every_position_is_kept() {
    let event = utf8_event().into_bytes();
    assert!(
        std::str::from_utf8(&event[..event.len() - 8]).is_err(),
        "the event has a multi-byte character near its end"
    );
    for at in 1..event.len() {
        let (head, tail) = event.split_at(at);
        let events = events_of(vec![head.to_vec(), tail.to_vec()]).await;
        assert_eq!(events, [UTF8_RESULT], "split at byte {at}");
    }
    let bytewise = event.iter().map(|b| vec![*b]).collect();
    assert_eq!(events_of(bytewise).await, [UTF8_RESULT]);
}

/// The same through the whole bridge: the gateway stand-in sends the answer a byte at a time,
/// and the line written is the JSON, byte for byte.
#[tokio::test]
async fn utf8_sent_a_byte_at_a_time_is_one_exact_line() {
    let lines = bridged(
        "/utf8",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\"}\n",
    )
    .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0], UTF8_RESULT);
}

/// A URL that is not the MCP endpoint (no `/mcp`): the gateway answers in another shape, and
/// the client gets a JSON-RPC error with its request's id, saying where the endpoint is; a
/// notification gets nothing. Nothing but JSON-RPC is written.
#[tokio::test]
async fn an_answer_that_is_not_jsonrpc_becomes_a_jsonrpc_error_with_the_id() {
    for path in ["/v1/decide", "/nowhere"] {
        let input = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"initialize\"}\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n{\"jsonrpc\":\"2.0\",\"id\":\"six\",\"method\":\"tools/list\"}\n";
        let lines = bridged(path, input).await;
        assert_eq!(lines.len(), 2, "{path}: {lines:?}");
        let mut ids = Vec::new();
        for line in &lines {
            let answer: Value = serde_json::from_str(line).unwrap();
            assert!(is_jsonrpc(&answer), "{line}");
            assert_eq!(answer["jsonrpc"], "2.0");
            assert_eq!(answer["error"]["code"], -32000, "{line}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("404"), "{message}");
            assert!(message.contains("ends in `/mcp`"), "{message}");
            ids.push(answer["id"].clone());
        }
        ids.sort_by_key(Value::to_string);
        assert_eq!(ids, [json!("six"), json!(5)], "{path}");
    }
}
