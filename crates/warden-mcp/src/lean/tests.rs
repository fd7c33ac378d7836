//! Which requests take the lean path: exactly the plain ones, everything else left to rmcp.

use http::{HeaderMap, HeaderValue};
use serde_json::json;

use super::{headers_allow, plain_call};

/// [`plain_call`] of `v`'s JSON text.
fn plain(
    v: &serde_json::Value,
) -> Option<(
    rmcp::model::RequestId,
    rmcp::model::CallToolRequestParams,
    serde_json::Map<String, serde_json::Value>,
)> {
    plain_call(&serde_json::to_vec(v).unwrap())
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

const PLAIN: [(&str, &str); 3] = [
    ("accept", "application/json, text/event-stream"),
    ("content-type", "application/json"),
    ("mcp-protocol-version", "2025-06-18"),
];

#[test]
fn plain_headers_take_the_lean_path() {
    assert!(headers_allow(&headers(&PLAIN)));
    assert!(headers_allow(&headers(&PLAIN[..2])), "no version header");
    let mut with_session = PLAIN.to_vec();
    with_session.push(("mcp-session-id", "abc"));
    assert!(headers_allow(&headers(&with_session)));
}

#[test]
fn other_headers_are_left_to_rmcp() {
    let cases: [&[(&'static str, &'static str)]; 9] = [
        &[
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ],
        &[
            ("accept", "application/json;q=0, text/event-stream"),
            ("content-type", "application/json"),
        ],
        &[
            ("accept", "application/json, text/event-stream"),
            ("content-type", "text/plain"),
        ],
        &[("accept", "application/json, text/event-stream")],
        &[PLAIN[0], PLAIN[1], ("mcp-protocol-version", "2026-07-28")],
        &[PLAIN[0], PLAIN[1], ("mcp-protocol-version", "1999-01-01")],
        &[
            PLAIN[0],
            PLAIN[1],
            ("mcp-protocol-version", "2025-06-18"),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        &[PLAIN[0], PLAIN[1], ("mcp-method", "tools/call")],
        &[PLAIN[0], PLAIN[1], ("mcp-name", "echo__echo")],
    ];
    for case in cases {
        assert!(!headers_allow(&headers(case)), "{case:?}");
    }
}

#[test]
fn a_plain_call_is_read_with_its_trace_meta() {
    let (id, params, meta) = plain(&json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "echo__echo", "arguments": { "text": "hi" },
                    "_meta": { "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } }
    }))
    .unwrap();
    assert_eq!(serde_json::to_value(&id).unwrap(), json!(7));
    assert_eq!(params.name, "echo__echo");
    assert_eq!(params.arguments.unwrap()["text"], "hi");
    assert!(meta.contains_key("traceparent"));
    let (id, params, meta) = plain(&json!({
        "jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": { "name": "x" }
    }))
    .unwrap();
    assert_eq!(serde_json::to_value(&id).unwrap(), json!("a"));
    assert!(params.arguments.is_none());
    assert!(meta.is_empty());
}

#[test]
fn anything_but_a_plain_call_is_left_to_rmcp() {
    let cases = [
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }),
        json!({ "jsonrpc": "2.0", "method": "tools/call", "params": { "name": "x" } }),
        json!({ "jsonrpc": "2.0", "id": 1.5, "method": "tools/call", "params": { "name": "x" } }),
        json!({ "jsonrpc": "2.0", "id": null, "method": "tools/call", "params": { "name": "x" } }),
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call" }),
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": [] }),
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": 3 } }),
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "x", "arguments": [1] } }),
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "x", "task": {} } }),
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "x", "_meta": { "progressToken": 1 } } }),
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "x", "_meta": { "io.modelcontextprotocol/protocolVersion": "2026-07-28" } } }),
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "x", "_meta": { "traceparent": 5 } } }),
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "x" }, "extra": true }),
        json!([{ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "x" } }]),
    ];
    for case in cases {
        assert!(plain(&case).is_none(), "{case}");
    }
}

#[test]
fn a_member_given_twice_is_left_to_rmcp_which_refuses_it() {
    // A JSON object with a key twice reads as its last value in a `Value`: the lean path reads
    // the bytes strictly, so the two readings can never differ on what is called.
    let cases: [&[u8]; 4] = [
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo__echo","name":"fs__write_file"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"x"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{},"arguments":{"a":1}}}"#,
    ];
    for case in cases {
        assert!(
            plain_call(case).is_none(),
            "{}",
            String::from_utf8_lossy(case)
        );
    }
    // `null` arguments are no arguments, as rmcp reads them.
    let (_, params, _) = plain(&json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "x", "arguments": null }
    }))
    .unwrap();
    assert!(params.arguments.is_none());
}
