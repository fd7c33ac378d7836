use serde_json::{Map, Value, json};

use super::*;
use crate::{Protocol, SseEvent, read_response};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn openai_conversation() -> Map<String, Value> {
    obj(json!({
        "model": "smart",
        "messages": [
            {"role": "system", "content": "You are careful."},
            {"role": "developer", "content": [{"type": "text", "text": "Refund only with approval."}]},
            {"role": "user", "content": "Refund order 7."},
            {"role": "assistant", "content": "Looking it up.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "orders.get", "arguments": "{\"order\":7}"}},
                {"id": "call_2", "type": "function", "function": {"name": "clock.now", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"status\":\"paid\"}"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "09:00"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Go ahead."},
                {"type": "image_url", "image_url": {"url": "https://example.com/receipt.png"}}]}
        ],
        "max_completion_tokens": 512,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "stream": true,
        "stream_options": {"include_usage": true},
        "n": 1,
        "seed": 3,
        "tools": [
            {"type": "function", "function": {"name": "orders.get", "description": "Read an order",
                "parameters": {"type": "object", "properties": {"order": {"type": "integer"}}}}},
            {"type": "function", "function": {"name": "clock.now"}}
        ],
        "tool_choice": "required",
        "user": "agent-7"
    }))
}

#[test]
fn openai_request_becomes_anthropic() {
    let a = request(
        Protocol::OpenAi,
        Protocol::Anthropic,
        &openai_conversation(),
    )
    .unwrap();
    let expected = json!({
        "model": "smart",
        "system": "You are careful.\n\nRefund only with approval.",
        "messages": [
            {"role": "user", "content": "Refund order 7."},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Looking it up."},
                {"type": "tool_use", "id": "call_1", "name": "orders.get", "input": {"order": 7}},
                {"type": "tool_use", "id": "call_2", "name": "clock.now", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "{\"status\":\"paid\"}"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "09:00"},
                {"type": "text", "text": "Go ahead."},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/receipt.png"}}]}
        ],
        "max_tokens": 512,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": true,
        "tools": [
            {"name": "orders.get", "description": "Read an order",
             "input_schema": {"type": "object", "properties": {"order": {"type": "integer"}}}},
            {"name": "clock.now", "input_schema": {"type": "object"}}
        ],
        "tool_choice": {"type": "any"},
        "metadata": {"user_id": "agent-7"}
    });
    assert_eq!(Value::Object(a.clone()), expected);
    // What the proxy reads from it is the same conversation.
    let before = crate::inspect(Protocol::OpenAi, &Value::Object(openai_conversation())).unwrap();
    let after = crate::inspect(Protocol::Anthropic, &Value::Object(a)).unwrap();
    // (Anthropic carries tool results in user turns, so its last user turn holds them too.)
    assert!(after.last_user.ends_with(&before.last_user));
    assert!(after.stream);
}

#[test]
fn openai_request_defaults_and_options() {
    let a = request(
        Protocol::OpenAi,
        Protocol::Anthropic,
        &obj(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 100, "temperature": 1.7, "stop": ["a", "b"],
            "tool_choice": {"type": "function", "function": {"name": "x"}},
            "parallel_tool_calls": false}),
        ),
    )
    .unwrap();
    assert_eq!(a["max_tokens"], 100);
    assert_eq!(a["temperature"], 1.0);
    assert_eq!(a["stop_sequences"], json!(["a", "b"]));
    assert_eq!(
        a["tool_choice"],
        json!({"type": "tool", "name": "x", "disable_parallel_tool_use": true})
    );
    assert!(!a.contains_key("system"));
    let a = request(
        Protocol::OpenAi,
        Protocol::Anthropic,
        &obj(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"},
            {"role": "user", "content": "again"}], "tool_choice": "none"}),
        ),
    )
    .unwrap();
    assert_eq!(a["max_tokens"], 4096);
    assert_eq!(a["tool_choice"], json!({"type": "none"}));
    // Consecutive user messages merge: Anthropic wants alternation.
    assert_eq!(
        a["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}]}])
    );
    let auto = request(
        Protocol::OpenAi,
        Protocol::Anthropic,
        &obj(json!({"model": "m", "messages": [], "tool_choice": "auto"})),
    )
    .unwrap();
    assert_eq!(auto["tool_choice"], json!({"type": "auto"}));
}

#[test]
fn untranslatable_openai_requests_are_errors() {
    let with = |m: Value| {
        request(
            Protocol::OpenAi,
            Protocol::Anthropic,
            &obj(json!({"model": "m", "messages": [m]})),
        )
    };
    let e = with(json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}))
    .unwrap_err();
    assert!(e.contains("not JSON"), "{e}");
    assert!(
        with(json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}))
            .is_err()
    );
    assert!(
        with(json!({"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}))
            .is_err()
    );
    assert!(with(json!({"role": "tool", "content": "x"})).is_err());
    assert!(with(json!({"role": "function", "content": "x"})).is_err());
    assert!(
        request(
            Protocol::OpenAi,
            Protocol::Anthropic,
            &obj(json!({"model": "m"}))
        )
        .is_err()
    );
    // base64 data: URLs are supported, as base64 sources.
    let a = with(json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}}]}))
        .unwrap();
    assert_eq!(
        a["messages"][0]["content"][0],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0"}})
    );
    // A data: URL that is not base64 is not.
    assert!(with(json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:text/plain,hi"}}]})).is_err());
}

#[test]
fn anthropic_request_becomes_openai() {
    let body = obj(json!({
        "model": "smart",
        "system": [{"type": "text", "text": "You are careful."}, {"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": "Refund order 7."},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Looking it up."},
                {"type": "tool_use", "id": "toolu_1", "name": "orders.get", "input": {"order": 7}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "paid"}]},
                {"type": "text", "text": "Go ahead."},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_2", "name": "pay.refund", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "done"}]}
        ],
        "max_tokens": 1024,
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.8,
        "top_k": 5,
        "stream": true,
        "tools": [{"name": "orders.get", "description": "Read an order", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "metadata": {"user_id": "agent-7"}
    }));
    let o = request(Protocol::Anthropic, Protocol::OpenAi, &body).unwrap();
    let expected = json!({
        "model": "smart",
        "messages": [
            {"role": "system", "content": "You are careful.\n\nBe brief."},
            {"role": "user", "content": "Refund order 7."},
            {"role": "assistant", "content": "Looking it up.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "orders.get", "arguments": "{\"order\":7}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "paid"},
            {"role": "user", "content": [
                {"type": "text", "text": "Go ahead."},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_2", "type": "function", "function": {"name": "pay.refund", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "done"}
        ],
        "max_tokens": 1024,
        "temperature": 0.5,
        "top_p": 0.8,
        "stop": ["END"],
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {"name": "orders.get", "description": "Read an order",
            "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "user": "agent-7"
    });
    assert_eq!(Value::Object(o), expected);
}

#[test]
fn anthropic_tool_choices_and_errors() {
    let with_choice = |c: Value| {
        request(
            Protocol::Anthropic,
            Protocol::OpenAi,
            &obj(json!({"model": "m", "max_tokens": 5, "messages": [], "tool_choice": c})),
        )
        .map(|o| o.get("tool_choice").cloned())
    };
    assert_eq!(
        with_choice(json!({"type": "auto"})),
        Ok(Some(json!("auto")))
    );
    assert_eq!(
        with_choice(json!({"type": "none"})),
        Ok(Some(json!("none")))
    );
    assert_eq!(
        with_choice(json!({"type": "tool", "name": "x"})),
        Ok(Some(json!({"type": "function", "function": {"name": "x"}})))
    );
    assert!(with_choice(json!({"type": "weird"})).is_err());
    let server_tool = obj(
        json!({"model": "m", "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
    );
    assert!(request(Protocol::Anthropic, Protocol::OpenAi, &server_tool).is_err());
    let file_image = obj(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}),
    );
    assert!(request(Protocol::Anthropic, Protocol::OpenAi, &file_image).is_err());
    // No stream_options unless streaming.
    let o = request(
        Protocol::Anthropic,
        Protocol::OpenAi,
        &obj(json!({"model": "m", "messages": [], "stream": false})),
    )
    .unwrap();
    assert!(!o.contains_key("stream_options"));
}

#[test]
fn requests_round_trip() {
    let original = openai_conversation();
    let there = request(Protocol::OpenAi, Protocol::Anthropic, &original).unwrap();
    let back = request(Protocol::Anthropic, Protocol::OpenAi, &there).unwrap();
    let back = Value::Object(back);
    // The conversation comes back with the system messages joined.
    assert_eq!(
        back["messages"][0],
        json!({"role": "system", "content": "You are careful.\n\nRefund only with approval."})
    );
    assert_eq!(
        back["messages"][2]["tool_calls"][0]["function"]["arguments"],
        "{\"order\":7}"
    );
    assert_eq!(
        back["messages"][2]["tool_calls"][1]["function"]["arguments"],
        "{}"
    );
    assert_eq!(back["messages"][3]["role"], "tool");
    assert_eq!(back["messages"][4]["tool_call_id"], "call_2");
    assert_eq!(
        back["messages"][5]["content"][1]["image_url"]["url"],
        "https://example.com/receipt.png"
    );
    assert_eq!(back["tool_choice"], "required");
    assert_eq!(
        back["tools"],
        original["tools"]
            .as_array()
            .map(|t| {
                let mut t = t.clone();
                t[1]["function"]["parameters"] = json!({"type": "object"});
                Value::Array(t)
            })
            .unwrap()
    );
    assert_eq!(back["user"], "agent-7");
    assert_eq!(back["stop"], json!(["END"]));
    assert_eq!(back["max_tokens"], 512);

    // And the other way: Anthropic → OpenAI → Anthropic is exact for what both can say.
    let anthropic = there;
    let again = request(
        Protocol::OpenAi,
        Protocol::Anthropic,
        &request(Protocol::Anthropic, Protocol::OpenAi, &anthropic).unwrap(),
    )
    .unwrap();
    assert_eq!(again, anthropic);
}

#[test]
fn same_protocol_is_identity() {
    let body = openai_conversation();
    assert_eq!(
        request(Protocol::OpenAi, Protocol::OpenAi, &body).unwrap(),
        body
    );
    let v = Value::Object(body);
    assert_eq!(response(Protocol::Anthropic, Protocol::Anthropic, &v), v);
    assert_eq!(error(Protocol::OpenAi, Protocol::OpenAi, 400, &v), v);
    let mut t = StreamTranslator::new(Protocol::OpenAi, Protocol::OpenAi, "m");
    let e = SseEvent {
        event: None,
        data: "x".into(),
    };
    assert_eq!(t.event(&e), vec![e]);
    assert!(t.finish().is_empty());
}

fn anthropic_response() -> Value {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "Checking "}, {"type": "text", "text": "now."},
            {"type": "tool_use", "id": "toolu_1", "name": "pay.refund", "input": {"order": 7}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 3}})
}

#[test]
fn anthropic_response_becomes_openai() {
    let o = response(Protocol::Anthropic, Protocol::OpenAi, &anthropic_response());
    assert_eq!(
        o,
        json!({"id": "msg_1", "object": "chat.completion", "created": 0, "model": "claude-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking now.",
                "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "pay.refund", "arguments": "{\"order\":7}"}}]}}],
            "usage": {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 4}}})
    );
    let mut a = read_response(Protocol::Anthropic, &anthropic_response());
    let mut b = read_response(Protocol::OpenAi, &o);
    a.finish_reason = None;
    b.finish_reason = None;
    assert_eq!(a, b);
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
    ] {
        let r = response(
            Protocol::Anthropic,
            Protocol::OpenAi,
            &json!({"content": [], "stop_reason": stop}),
        );
        assert_eq!(r["choices"][0]["finish_reason"], finish);
        assert_eq!(r["choices"][0]["message"]["content"], Value::Null);
        assert!(r["choices"][0]["message"].get("tool_calls").is_none());
    }
}

#[test]
fn openai_response_becomes_anthropic() {
    let o = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "gpt-x",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
            "content": "Let me look.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "fs.read", "arguments": "{\"path\":\"/a\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "clock.now", "arguments": ""}}]}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}});
    let a = response(Protocol::OpenAi, Protocol::Anthropic, &o);
    assert_eq!(
        a,
        json!({"id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-x",
            "content": [{"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "fs.read", "input": {"path": "/a"}},
                {"type": "tool_use", "id": "call_2", "name": "clock.now", "input": {}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 5}})
    );
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "end_turn"),
    ] {
        let r = response(
            Protocol::OpenAi,
            Protocol::Anthropic,
            &json!({"choices": [{"message": {"content": null}, "finish_reason": finish}]}),
        );
        assert_eq!(r["stop_reason"], stop);
        assert_eq!(r["content"], json!([]));
    }
}

#[test]
fn responses_round_trip() {
    let a = anthropic_response();
    let back = response(
        Protocol::OpenAi,
        Protocol::Anthropic,
        &response(Protocol::Anthropic, Protocol::OpenAi, &a),
    );
    // Text blocks are joined; the rest comes back exactly (cached tokens included).
    let mut expected = a.clone();
    expected["content"] = json!([{"type": "text", "text": "Checking now."},
        {"type": "tool_use", "id": "toolu_1", "name": "pay.refund", "input": {"order": 7}}]);
    assert_eq!(back, expected);
    assert_eq!(
        read_response(Protocol::Anthropic, &back).usage,
        read_response(Protocol::Anthropic, &a).usage
    );
}

#[test]
fn errors_take_the_agents_shape() {
    let anthropic =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let o = error(Protocol::Anthropic, Protocol::OpenAi, 529, &anthropic);
    assert_eq!(o["error"]["message"], "Overloaded");
    assert_eq!(o["error"]["code"], "overloaded_error");
    assert_eq!(o["error"]["type"], "server_error");
    let openai = json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}});
    let a = error(Protocol::OpenAi, Protocol::Anthropic, 429, &openai);
    assert_eq!(
        a,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}})
    );
    let odd = error(
        Protocol::OpenAi,
        Protocol::Anthropic,
        502,
        &json!("Bad gateway"),
    );
    assert_eq!(odd["error"]["type"], "api_error");
    assert!(odd["error"]["message"].as_str().unwrap().contains("502"));
}
