//! The two wire protocols, and errors in each one's shape.

use serde_json::{Value, json};

/// A provider wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OpenAI chat completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic messages (`POST /v1/messages`).
    Anthropic,
}

impl Protocol {
    /// `openai` or `anthropic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
        }
    }

    /// The path of the endpoint, under the base URL's `/v1`.
    pub fn endpoint(self) -> &'static str {
        match self {
            Protocol::OpenAi => "chat/completions",
            Protocol::Anthropic => "messages",
        }
    }

    /// An error body in this protocol's shape, for HTTP `status`. `code` is OpenAI's `code`
    /// (Anthropic has none; its `type` follows the status).
    pub fn error_body(self, status: u16, code: &str, message: &str) -> Value {
        match self {
            Protocol::OpenAi => {
                let kind = match status {
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    429 => "rate_limit_error",
                    500..=599 => "server_error",
                    _ => "invalid_request_error",
                };
                json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
            }
            Protocol::Anthropic => {
                let kind = match status {
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    500..=599 => "api_error",
                    _ => "invalid_request_error",
                };
                json!({ "type": "error", "error": { "type": kind, "message": message } })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_take_each_providers_shape() {
        let o = Protocol::OpenAi.error_body(429, "budget_exceeded", "spent");
        assert_eq!(o["error"]["type"], "rate_limit_error");
        assert_eq!(o["error"]["code"], "budget_exceeded");
        assert_eq!(o["error"]["message"], "spent");
        let a = Protocol::Anthropic.error_body(404, "model_not_found", "no such model");
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "not_found_error");
        assert_eq!(
            Protocol::Anthropic.error_body(400, "x", "m")["error"]["type"],
            "invalid_request_error"
        );
    }
}
