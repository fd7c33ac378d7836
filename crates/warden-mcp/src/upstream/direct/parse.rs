//! The bytes of a direct `tools/call`: the request written once, and the server's answer read
//! into the call's result as rmcp reads it, without rmcp's cost for the usual answer.
//!
//! rmcp reads an answer into its untagged `ServerResult`, which tries about fifteen result
//! types (each from a buffered copy of the JSON) before the tool result. [`answer_of`] reads
//! the usual answer — exactly `jsonrpc`, `id` and a `result` whose members are all members of
//! a tool result — straight into rmcp's `CallToolResult` (rmcp's own deserializer). Anything
//! else, and anything that deserializer refuses, is read the way rmcp reads it. The tests
//! compare the two readings over every combination of a tool result's members and over
//! answers that are not tool results.
//!
//! Arguments are written from what was decided, not passed through as the agent sent them:
//! a second reading by the server of the agent's own bytes (a repeated key, another number
//! form) could differ from the reading the decision was made on.

use bytes::Bytes;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, JsonRpcMessage, JsonRpcVersion2_0,
    NumberOrString, ServerJsonRpcMessage, ServerResult,
};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::DirectError;

/// `tools/call` with `params` as JSON-RPC request `id`.
pub(super) fn call_body(id: i64, params: &CallToolRequestParams) -> Result<Bytes, DirectError> {
    #[derive(Serialize)]
    struct Call<'a> {
        jsonrpc: &'static str,
        id: i64,
        method: &'static str,
        params: &'a CallToolRequestParams,
    }
    let call = Call {
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params,
    };
    serde_json::to_vec(&call)
        .map(Bytes::from)
        .map_err(|e| DirectError::Failed(format!("the call could not be written: {e}")))
}

/// The usual answer: a JSON-RPC response and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Response<'a> {
    #[serde(rename = "jsonrpc")]
    _version: JsonRpcVersion2_0,
    id: NumberOrString,
    #[serde(borrow)]
    result: &'a RawValue,
}

/// The members a tool result may have (their values are read by rmcp's deserializer).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolResultMembers {
    #[serde(rename = "resultType")]
    _result_type: Option<IgnoredAny>,
    #[serde(rename = "content")]
    _content: Option<IgnoredAny>,
    #[serde(rename = "structuredContent")]
    _structured_content: Option<IgnoredAny>,
    #[serde(rename = "isError")]
    _is_error: Option<IgnoredAny>,
    #[serde(rename = "_meta")]
    _meta: Option<IgnoredAny>,
}

/// The usual answer read directly: `None` when `body` is not one (rmcp's reading decides).
fn usual(body: &[u8]) -> Option<(NumberOrString, CallToolResult)> {
    let response: Response<'_> = serde_json::from_slice(body).ok()?;
    serde_json::from_str::<ToolResultMembers>(response.result.get()).ok()?;
    let result = serde_json::from_str::<CallToolResult>(response.result.get()).ok()?;
    Some((response.id, result))
}

/// The message in `body` as rmcp reads it, or rmcp's reason for not reading it.
fn message(body: &[u8]) -> Result<ServerJsonRpcMessage, DirectError> {
    serde_json::from_slice(body).map_err(|e| {
        let shown: String = String::from_utf8_lossy(body).chars().take(256).collect();
        DirectError::Failed(format!(
            "transport error: unexpected server response: could not parse JSON response as \
             ServerJsonRpcMessage: {e}: {shown}"
        ))
    })
}

/// What the server's JSON `body` says about the call `id`: its answer, `Ok(None)` for a
/// message that is not about it, or why it cannot be read.
pub(super) fn answer_of(
    body: &[u8],
    id: &NumberOrString,
) -> Result<Option<Result<CallToolResponse, DirectError>>, DirectError> {
    if let Some((answered, result)) = usual(body) {
        return Ok((&answered == id).then_some(Ok(CallToolResponse::Complete(result))));
    }
    Ok(response_of(message(body)?, id))
}

/// A server-to-client message in an event, as rmcp reads it (events are rare on the usual
/// path: the usual answer is tried first).
pub(super) fn event_message(data: &str) -> Result<Event, DirectError> {
    if let Some((id, result)) = usual(data.as_bytes()) {
        return Ok(Event::Result(id, result));
    }
    serde_json::from_str::<ServerJsonRpcMessage>(data)
        .map(|m| Event::Message(Box::new(m)))
        .map_err(|e| {
            DirectError::Failed(format!(
                "the server sent an event that is not a JSON-RPC message: {e}"
            ))
        })
}

/// A message read from an event.
pub(super) enum Event {
    /// A tool result (read directly), with the id it answers.
    Result(NumberOrString, CallToolResult),
    /// Any other message, as rmcp reads it.
    Message(Box<ServerJsonRpcMessage>),
}

/// The JSON-RPC error in `body`, if it is one (rmcp's reading of a failure status's JSON
/// body).
pub(super) fn json_rpc_error(body: &[u8]) -> Option<ServerJsonRpcMessage> {
    match serde_json::from_slice::<ServerJsonRpcMessage>(body) {
        Ok(error @ JsonRpcMessage::Error(_)) => Some(error),
        _ => None,
    }
}

/// The call's answer if `message` is the response (or error) carrying `id`; `None` for any
/// other message.
pub(super) fn response_of(
    message: ServerJsonRpcMessage,
    id: &NumberOrString,
) -> Option<Result<CallToolResponse, DirectError>> {
    match message {
        JsonRpcMessage::Response(r) if &r.id == id => Some(match r.result {
            ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(result)),
            ServerResult::InputRequiredResult(result) => {
                Ok(CallToolResponse::InputRequired(result))
            }
            ServerResult::CreateTaskResult(result) => Ok(CallToolResponse::Task(result)),
            _ => Err(DirectError::Failed(
                rmcp::ServiceError::UnexpectedResponse.to_string(),
            )),
        }),
        JsonRpcMessage::Error(e) if e.id.as_ref().is_none_or(|i| i == id) => Some(Err(
            DirectError::Failed(rmcp::ServiceError::McpError(e.error).to_string()),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
