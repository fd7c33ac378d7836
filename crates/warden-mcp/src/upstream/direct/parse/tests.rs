//! The direct reading of the usual answer against rmcp's reading, answer by answer.

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, NumberOrString,
};
use serde_json::{Value, json};

use super::{DirectError, answer_of, call_body, message, response_of, usual};

/// What rmcp makes of `body` for the call `id` (the reading before this module).
fn rmcp_reading(body: &[u8], id: &NumberOrString) -> String {
    format!("{:?}", message(body).map(|m| response_of(m, id)))
}

fn direct_reading(body: &[u8], id: &NumberOrString) -> String {
    format!("{:?}", answer_of(body, id))
}

fn same(body: &Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    for id in [
        NumberOrString::Number(7),
        NumberOrString::String("7".into()),
    ] {
        assert_eq!(
            direct_reading(&bytes, &id),
            rmcp_reading(&bytes, &id),
            "{body} for id {id:?}"
        );
    }
}

fn response(result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": 7, "result": result })
}

/// Every combination of a tool result's members, each with a usual value.
#[test]
fn every_combination_of_a_tool_results_members_reads_as_rmcp_reads_it() {
    let members = [
        ("resultType", json!("complete")),
        ("content", json!([{ "type": "text", "text": "hi" }])),
        ("structuredContent", json!({ "n": 1 })),
        ("isError", json!(false)),
        ("_meta", json!({ "k": "v" })),
    ];
    let mut direct = 0;
    for mask in 0_u32..(1 << members.len()) {
        let result: serde_json::Map<String, Value> = members
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, (k, v))| ((*k).to_owned(), v.clone()))
            .collect();
        let body = response(Value::Object(result));
        same(&body);
        direct += usize::from(usual(&serde_json::to_vec(&body).unwrap()).is_some());
    }
    // Every combination with content, structuredContent or isError is read directly (28 of
    // the 32); the rest (which rmcp's tool result refuses) is left to rmcp's reading.
    assert_eq!(direct, 28);
}

#[test]
fn other_values_of_the_members_read_as_rmcp_reads_them() {
    for result in [
        json!({ "content": [{ "type": "image", "data": "aGk=", "mimeType": "image/png" }] }),
        json!({ "content": [{ "type": "audio", "data": "aGk=", "mimeType": "audio/wav" }] }),
        json!({ "content": [{ "type": "resource_link", "uri": "file:///x", "name": "x" }] }),
        json!({ "content": [{ "type": "resource",
            "resource": { "uri": "file:///x", "text": "t" } }] }),
        json!({ "content": [{ "type": "text" }] }),
        json!({ "content": [{ "type": "nonsense", "text": "t" }] }),
        json!({ "content": "a string" }),
        json!({ "content": null }),
        json!({ "content": [], "isError": true }),
        json!({ "content": [], "isError": "yes" }),
        json!({ "structuredContent": null }),
        json!({ "structuredContent": [1, 2] }),
        json!({ "resultType": "input_required", "content": [] }),
        json!({ "resultType": "task", "content": [] }),
        json!({ "resultType": "bogus", "content": [] }),
        json!({ "resultType": 1, "content": [] }),
        json!({ "_meta": null, "content": [] }),
        json!({ "_meta": [1], "content": [] }),
        json!({}),
        json!([]),
        json!("text"),
        json!(null),
    ] {
        same(&response(result));
    }
}

/// Answers with members a tool result does not have, including the members of the results
/// rmcp tries before a tool result: rmcp reads them all.
#[test]
fn results_that_are_not_only_a_tool_result_are_read_by_rmcp() {
    for extra in [
        ("tools", json!([])),
        (
            "task",
            json!({ "taskId": "t", "status": "working", "createdAt": "now" }),
        ),
        ("action", json!("accept")),
        ("nextCursor", json!("c")),
        ("messages", json!([])),
        ("completion", json!({ "values": [] })),
        ("protocolVersion", json!("2025-06-18")),
        ("resources", json!([])),
        ("contents", json!([])),
        ("inputRequests", json!({})),
        ("Content", json!([])),
        ("content ", json!([])),
    ] {
        let mut result = json!({ "content": [{ "type": "text", "text": "hi" }] });
        result[extra.0] = extra.1;
        let body = response(result);
        assert!(
            usual(&serde_json::to_vec(&body).unwrap()).is_none(),
            "{body}"
        );
        same(&body);
    }
}

#[test]
fn envelopes_other_than_the_usual_response_read_as_rmcp_reads_them() {
    let result = json!({ "content": [{ "type": "text", "text": "hi" }] });
    for body in [
        json!({ "jsonrpc": "2.0", "id": 8, "result": result }),
        json!({ "jsonrpc": "2.0", "id": "7", "result": result }),
        json!({ "jsonrpc": "2.0", "id": null, "result": result }),
        json!({ "jsonrpc": "1.0", "id": 7, "result": result }),
        json!({ "id": 7, "result": result }),
        json!({ "jsonrpc": "2.0", "result": result }),
        json!({ "jsonrpc": "2.0", "id": 7, "result": result, "method": "tools/call" }),
        json!({ "jsonrpc": "2.0", "id": 7, "result": result, "error": { "code": 1, "message": "m" } }),
        json!({ "jsonrpc": "2.0", "id": 7, "result": result, "extra": true }),
        json!({ "jsonrpc": "2.0", "id": 7, "error": { "code": -32602, "message": "no such tool" } }),
        json!({ "jsonrpc": "2.0", "error": { "code": -32700, "message": "parse error" } }),
        json!({ "jsonrpc": "2.0", "id": 8, "error": { "code": -32602, "message": "other" } }),
        json!({ "jsonrpc": "2.0", "method": "notifications/progress",
            "params": { "progressToken": 1, "progress": 1 } }),
        json!({ "jsonrpc": "2.0", "id": "p", "method": "ping" }),
        json!([response(result.clone())]),
        json!(7),
    ] {
        same(&body);
    }
}

#[test]
fn a_body_that_is_not_json_fails_as_rmcp_fails_it() {
    for body in [
        &b"{\"jsonrpc\":\"2.0\",\"id\":"[..],
        b"",
        b"\xff\xfe",
        b"{} trailing",
    ] {
        let id = NumberOrString::Number(7);
        assert_eq!(direct_reading(body, &id), rmcp_reading(body, &id));
        let Err(DirectError::Failed(m)) = answer_of(body, &id) else {
            panic!("{body:?} was read");
        };
        assert!(m.contains("could not parse JSON"), "{m}");
    }
}

/// A repeated member: serde reads the last one in both readings, or refuses in both.
#[test]
fn repeated_members_read_as_rmcp_reads_them() {
    let id = NumberOrString::Number(7);
    for body in [
        r#"{"jsonrpc":"2.0","id":7,"id":8,"result":{"content":[]}}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]},"result":{"isError":true}}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":{"isError":false,"isError":true}}"#,
    ] {
        assert_eq!(
            direct_reading(body.as_bytes(), &id),
            rmcp_reading(body.as_bytes(), &id),
            "{body}"
        );
    }
}

/// The request written once is the request rmcp writes.
#[test]
fn the_call_is_written_as_rmcp_writes_it() {
    let mut args = serde_json::Map::new();
    args.insert("text".to_owned(), json!("hello \u{2028} \"quoted\""));
    args.insert("n".to_owned(), json!(1.5));
    args.insert("nested".to_owned(), json!({ "a": [1, null, true] }));
    let mut meta = serde_json::Map::new();
    meta.insert("warden/trace".to_owned(), json!("t-1"));
    let mut with_meta = CallToolRequestParams::new("echo").with_arguments(args.clone());
    with_meta.meta = Some(rmcp::model::RequestMetaObject(rmcp::model::MetaObject(
        meta,
    )));
    for params in [
        CallToolRequestParams::new("echo"),
        CallToolRequestParams::new("a.b/c").with_arguments(args),
        with_meta,
    ] {
        let ours: Value = serde_json::from_slice(&call_body(41, &params).unwrap()).unwrap();
        let rmcps = serde_json::to_value(ClientJsonRpcMessage::request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            NumberOrString::Number(41),
        ))
        .unwrap();
        assert_eq!(ours, rmcps);
    }
}
