use proptest::prelude::*;
use serde_json::json;

use super::*;

fn tools_of(protocol: Protocol, body: &Value, betas: &[&str]) -> Vec<&'static str> {
    provider_actions(protocol, body, betas)
        .into_iter()
        .map(|a| a.tool)
        .collect()
}

#[test]
fn a_plain_request_asks_the_provider_for_nothing() {
    let openai = json!({"model": "m", "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        ]}
    ], "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}, {"type": "custom", "name": "c"}]});
    assert!(provider_actions(Protocol::OpenAi, &openai, &[]).is_empty());
    let anthropic = json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}},
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "42"}]}
        ]}
    ], "tools": [{"name": "f", "input_schema": {}}, {"type": "custom", "name": "g", "input_schema": {}}]});
    assert!(
        provider_actions(
            Protocol::Anthropic,
            &anthropic,
            &["prompt-caching-2024-07-31, token-efficient-tools-2025-02-19"]
        )
        .is_empty()
    );
}

#[test]
fn hosted_tools_are_actions_and_unknown_types_fail_closed() {
    let body = json!({"model": "m", "messages": [], "tools": [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        {"type": "web_fetch_20250910", "name": "web_fetch"},
        {"type": "code_execution_20250522", "name": "code_execution"},
        {"type": "computer_20250124", "name": "computer"},
        {"type": "bash_20250124", "name": "bash"},
        {"type": 7}
    ]});
    let actions = provider_actions(Protocol::Anthropic, &body, &[]);
    let tools: Vec<_> = actions.iter().map(|a| a.tool).collect();
    assert_eq!(
        tools,
        [
            WEB_SEARCH,
            WEB_FETCH,
            CODE_EXECUTION,
            COMPUTER_USE,
            TOOL,
            TOOL
        ]
    );
    assert_eq!(actions[0].args["max_uses"], 3);
    assert_eq!(actions[0].args["type"], "web_search_20250305");
    assert_eq!(actions[4].args, json!({"type": "bash_20250124"}));

    let openai = json!({"model": "m", "messages": [], "tools": [
        {"type": "web_search_preview"}, {"type": "file_search", "vector_store_ids": ["v"]},
        {"type": "code_interpreter", "container": {"type": "auto"}}, {"type": "computer_use_preview"},
        {"type": "image_generation"},
        {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.deepwiki.com/mcp"},
        {"type": "shiny_new_tool"}
    ], "web_search_options": {}});
    let actions = provider_actions(Protocol::OpenAi, &openai, &[]);
    let tools: Vec<_> = actions.iter().map(|a| a.tool).collect();
    assert_eq!(
        tools,
        [
            WEB_SEARCH,
            FILE_SEARCH,
            CODE_EXECUTION,
            COMPUTER_USE,
            IMAGE_GENERATION,
            MCP,
            TOOL,
            WEB_SEARCH
        ]
    );
    assert_eq!(
        actions[5].args,
        json!({"url": "https://mcp.deepwiki.com/mcp", "name": "deepwiki"})
    );
    assert_eq!(actions[6].args, json!({"type": "shiny_new_tool"}));
    // `tools` that is not a list is read as an unknown tool, not skipped.
    let odd = json!({"model": "m", "messages": [], "tools": {"type": "web_search"}});
    assert_eq!(tools_of(Protocol::OpenAi, &odd, &[]), [TOOL]);
}

#[test]
fn mcp_servers_urls_files_and_betas_are_actions() {
    let body = json!({"model": "m", "max_tokens": 5,
    "mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "ex"}],
    "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://evil.example/x.png?secret=1"}},
        {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
        {"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://evil.example/y.png"}}
        ]}
    ]}]});
    let actions = provider_actions(
        Protocol::Anthropic,
        &body,
        &[
            "mcp-client-2025-04-04,prompt-caching-2024-07-31",
            "files-api-2025-04-14",
        ],
    );
    assert_eq!(
        actions,
        vec![
            ProviderAction {
                tool: MCP,
                args: json!({"url": "https://mcp.example.com/sse", "name": "ex"})
            },
            ProviderAction {
                tool: FETCH_URL,
                args: json!({"url": "https://evil.example/x.png?secret=1"})
            },
            ProviderAction {
                tool: READ_FILE,
                args: json!({"file_id": "file_1"})
            },
            ProviderAction {
                tool: FETCH_URL,
                args: json!({"url": "https://evil.example/y.png"})
            },
            ProviderAction {
                tool: BETA,
                args: json!({"value": "mcp-client-2025-04-04"})
            },
            ProviderAction {
                tool: BETA,
                args: json!({"value": "files-api-2025-04-14"})
            },
        ]
    );
    let openai = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://evil.example/z.png"}},
        {"type": "image_url", "image_url": "http://evil.example/z2.png"},
        {"type": "file", "file": {"file_id": "file_2"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA"}}
    ]}]});
    assert_eq!(
        tools_of(Protocol::OpenAi, &openai, &[]),
        [FETCH_URL, FETCH_URL, READ_FILE]
    );
}

#[test]
fn content_nested_too_deep_is_an_action() {
    let mut content = json!([{"type": "text", "text": "x"}]);
    for _ in 0..(MAX_DEPTH + 2) {
        content = json!([{"type": "tool_result", "content": content}]);
    }
    let body = json!({"model": "m", "messages": [{"role": "user", "content": content}]});
    assert_eq!(tools_of(Protocol::Anthropic, &body, &[]), [TOOL]);
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        "[a-z:/._]{0,12}".prop_map(Value::String),
        prop_oneof![Just("url"), Just("file"), Just("type"), Just("source")]
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("source".to_owned()),
                    Just("url".to_owned()),
                    Just("content".to_owned()),
                    Just("image_url".to_owned()),
                    Just("file_id".to_owned()),
                    Just("tools".to_owned()),
                    Just("messages".to_owned()),
                    Just("mcp_servers".to_owned()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_json_is_read_without_panicking_and_names_known_tools(v in json_value(), beta in "[a-z0-9,-]{0,30}") {
        for p in [Protocol::OpenAi, Protocol::Anthropic] {
            for a in provider_actions(p, &v, &[beta.as_str()]) {
                prop_assert!(TOOLS.contains(&a.tool));
                prop_assert!(a.args.is_object());
            }
        }
    }
}
