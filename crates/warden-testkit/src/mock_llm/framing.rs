//! Response bodies on the wire: SSE framing, chunking, stalls and aborts, and error bodies.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Wire;

/// Splits `text` into word-sized pieces that concatenate back to it (a piece is a word with the
/// whitespace before it).
pub(super) fn split_words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let start = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        let end = rest
            .get(start..)
            .and_then(|r| r.find(char::is_whitespace))
            .map_or(rest.len(), |e| start + e);
        let (piece, tail) = rest.split_at_checked(end)?;
        rest = tail;
        Some(piece)
    })
}

/// Splits a JSON text into a few pieces (at char boundaries) that concatenate back to it.
pub(super) fn split_json(json: &str) -> impl Iterator<Item = &str> {
    const PIECES: usize = 3;
    let step = json.len().div_ceil(PIECES).max(1);
    let mut rest = json;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = step.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at_checked(end)?;
        rest = tail;
        Some(piece)
    })
}

pub(super) fn sse_data(value: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    // Writing a `Value` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

pub(super) fn sse_event(event: &str, value: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// One step of a response body.
pub(super) enum Step {
    Data(Bytes),
    Pause(Duration),
    /// Fail the body: hyper then closes the connection without ending the message.
    Abort,
}

pub(super) fn steps_body(steps: Vec<Step>) -> Body {
    let stream = futures_util::stream::unfold(steps.into_iter(), |mut steps| async move {
        loop {
            match steps.next()? {
                Step::Data(bytes) => return Some((Ok(bytes), steps)),
                Step::Pause(pause) => tokio::time::sleep(pause).await,
                Step::Abort => {
                    // Let hyper flush what was sent so far: it writes when the body is pending.
                    tokio::task::yield_now().await;
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the mock drops the connection mid-stream",
                    );
                    return Some((Err(error), steps));
                }
            }
        }
    });
    Body::from_stream(stream)
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error in the provider's shape.
pub(super) fn error_response(
    wire: Wire,
    status: StatusCode,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let code = status.as_u16();
    let body = match wire {
        Wire::OpenAi => {
            let (kind, code) = match code {
                401 => ("invalid_request_error", json!("invalid_api_key")),
                404 => ("invalid_request_error", json!("model_not_found")),
                429 => ("requests", json!("rate_limit_exceeded")),
                500..=599 => ("server_error", Value::Null),
                _ => ("invalid_request_error", Value::Null),
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        Wire::Anthropic => {
            let kind = match code {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                500..=599 => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    };
    let mut response = json_response(status, &body);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The provider's 400 for a tool name it refuses: OpenAI's `invalid_request_error` with the
/// `param` and `code`, Anthropic's `invalid_request_error`.
pub(super) fn invalid_tool_name(wire: Wire, bad: &super::script::InvalidToolName) -> Response {
    let body = match wire {
        Wire::OpenAi => json!({"error": {
            "message": bad.message,
            "type": "invalid_request_error",
            "param": bad.param,
            "code": bad.code,
        }}),
        Wire::Anthropic => json!({"type": "error", "error": {
            "type": "invalid_request_error",
            "message": bad.message,
        }}),
    };
    json_response(StatusCode::BAD_REQUEST, &body)
}
