//! Errors in the caller's protocol: an OpenAI error object on the OpenAI endpoints, an
//! Anthropic error on the Anthropic one.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use warden_llm::Protocol;

/// An error in the caller's protocol.
pub(crate) fn protocol_error(
    protocol: Protocol,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    (
        status,
        Json(protocol.error_body(status.as_u16(), code, message)),
    )
        .into_response()
}
