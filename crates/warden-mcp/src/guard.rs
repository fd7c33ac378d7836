//! The JSON-RPC guard in front of `/mcp`, and the JSON-RPC error shape for failures before a
//! request is read.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The request body the guard read and checked, handed on in the request's extensions to the
/// lean path of `tools/call` (`crate::lean`), which takes it out: the same bytes as the body
/// (reference-counted, not copied), readable without consuming the body rmcp may still need.
#[derive(Clone)]
pub(crate) struct Checked(pub(crate) axum::body::Bytes);

/// The largest request body the guard reads, in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// A JSON-RPC error response with no id, for failures before a request is read. The body of
/// the request may be left unread, so the connection is closed (`Connection: close`) rather
/// than reused with unread bytes in it.
pub fn jsonrpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        [(http::header::CONNECTION, "close")],
        axum::Json(
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } }),
        ),
    )
        .into_response()
}

/// Reads an MCP POST body (bounded) and refuses, in JSON-RPC terms, what is not a JSON-RPC
/// 2.0 message: a parse error is `-32700`, a wrong shape `-32600` (both HTTP 400), a body over
/// the limit `-32600` with HTTP 413 — whether or not it announced its length.
pub(crate) async fn jsonrpc_guard(
    State(BodyLimit(limit)): State<BodyLimit>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != http::Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return jsonrpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            &format!("request body is larger than the limit of {limit} bytes"),
        );
    };
    let message: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                -32700,
                &format!("parse error: {e}"),
            );
        }
    };
    if let Some(problem) = shape_problem(&message) {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            &format!("invalid request: {problem}"),
        );
    }
    // The checked body is handed on: the lean path of `tools/call` reads it there.
    let mut parts = parts;
    parts.extensions.insert(Checked(bytes.clone()));
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// What keeps `message` from being one JSON-RPC 2.0 request, notification or response.
fn shape_problem(message: &Value) -> Option<&'static str> {
    match message {
        Value::Object(m) => {
            let version_ok = m.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
            let is_request = m.get("method").is_some_and(Value::is_string);
            let is_response =
                m.contains_key("id") && (m.contains_key("result") || m.contains_key("error"));
            if !version_ok {
                Some("`jsonrpc` must be \"2.0\"")
            } else if !is_request && !is_response {
                Some("a request needs a string `method`")
            } else {
                None
            }
        }
        Value::Array(_) => Some("JSON-RPC batches are not supported"),
        _ => Some("a JSON-RPC message is an object"),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::middleware;
    use axum::routing::post;
    use tower::ServiceExt as _;

    use super::*;

    const LIMIT: usize = 256;

    /// `/mcp` behind the guard, answering `passed` to whatever reaches it.
    fn guarded() -> Router {
        Router::new()
            .route("/mcp", post(|| async { "passed" }))
            .layer(middleware::from_fn_with_state(
                BodyLimit(LIMIT),
                jsonrpc_guard,
            ))
    }

    async fn send(body: Body, length: Option<usize>) -> (StatusCode, Vec<u8>, Option<String>) {
        let mut req = Request::post("/mcp").header("content-type", "application/json");
        if let Some(len) = length {
            req = req.header("content-length", len);
        }
        let resp = guarded().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let connection = resp
            .headers()
            .get(http::header::CONNECTION)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec(), connection)
    }

    async fn post_text(text: &str) -> (StatusCode, Vec<u8>, Option<String>) {
        send(Body::from(text.to_owned()), Some(text.len())).await
    }

    fn error_code(body: &[u8]) -> i64 {
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["jsonrpc"], "2.0", "{v}");
        assert!(v["id"].is_null(), "{v}");
        v["error"]["code"].as_i64().unwrap()
    }

    #[tokio::test]
    async fn a_parse_error_is_32700_with_400() {
        let (status, body, connection) = post_text("{\"jsonrpc\": \"2.0\",").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&body), -32700);
        assert_eq!(connection.as_deref(), Some("close"));
    }

    #[tokio::test]
    async fn a_batch_is_32600_with_400() {
        let batch = r#"[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]"#;
        let (status, body, _) = post_text(batch).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&body), -32600);
    }

    #[tokio::test]
    async fn a_wrong_shape_is_32600_with_400() {
        for text in [
            r#"{"jsonrpc": "1.0", "id": 1, "method": "ping"}"#,
            r#"{"jsonrpc": "2.0", "id": 1}"#,
            r#"{"jsonrpc": "2.0", "id": 1, "method": 7}"#,
            r#""ping""#,
        ] {
            let (status, body, _) = post_text(text).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
            assert_eq!(error_code(&body), -32600, "{text}");
        }
    }

    #[tokio::test]
    async fn an_announced_body_over_the_limit_is_413() {
        let big = format!(r#"{{"jsonrpc": "2.0", "method": "{}"}}"#, "x".repeat(LIMIT));
        let (status, body, _) = post_text(&big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(error_code(&body), -32600);
    }

    #[tokio::test]
    async fn an_unannounced_body_over_the_limit_is_413() {
        let chunks = (0..8).map(|_| Ok::<_, std::io::Error>("x".repeat(LIMIT / 4)));
        let body = Body::from_stream(futures::stream::iter(chunks));
        let (status, body, _) = send(body, None).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(error_code(&body), -32600);
    }

    #[tokio::test]
    async fn requests_notifications_and_responses_pass() {
        for text in [
            r#"{"jsonrpc": "2.0", "id": 1, "method": "ping"}"#,
            r#"{"jsonrpc": "2.0", "method": "notifications/initialized"}"#,
            r#"{"jsonrpc": "2.0", "id": 1, "result": {}}"#,
            r#"{"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "no"}}"#,
        ] {
            let (status, body, _) = post_text(text).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            assert_eq!(body, b"passed", "{text}");
        }
    }

    #[tokio::test]
    async fn other_methods_pass_unread() {
        let req = Request::get("/mcp").body(Body::empty()).unwrap();
        let router = Router::new()
            .route("/mcp", axum::routing::get(|| async { "passed" }))
            .layer(middleware::from_fn_with_state(
                BodyLimit(LIMIT),
                jsonrpc_guard,
            ));
        let resp = router.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
