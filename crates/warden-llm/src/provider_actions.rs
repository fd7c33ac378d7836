//! What a request asks the *provider* to do on the agent's behalf: hosted tools it would run
//! (web search, web fetch, code execution, computer use, file search, image generation), MCP
//! servers it would call, URLs it would fetch (image and document parts given by URL), files
//! it would read (`file_id` sources), and Anthropic beta features not known to be inert.
//!
//! Each is a [`ProviderAction`]: a tool of the reserved `model` server (its name one of
//! [`TOOLS`]) with arguments, for the model proxy to decide under the charter like any other
//! action. The reading fails closed: a tool entry whose `type` is not a plain function or
//! custom tool is an action (an unknown type is [`TOOL`] with the type as its argument), every
//! content part with a URL or file source is one, and every `anthropic-beta` value not in
//! [`INERT_BETAS`] is one ([`BETA`]). `data:` URLs and base64 sources are not fetches.
//!
//! Pure: no IO; bounded by the request it reads (nesting is followed at most
//! [`MAX_DEPTH`] levels deep, and deeper content is itself an action, [`TOOL`] with type
//! `nested_content`, so nothing is left unread).

use serde_json::{Map, Value, json};

use crate::Protocol;

/// A hosted web search (Anthropic `web_search_*`, OpenAI `web_search`/`web_search_preview`,
/// chat completions' `web_search_options`).
pub const WEB_SEARCH: &str = "model.web_search";
/// A hosted web fetch (Anthropic `web_fetch_*`).
pub const WEB_FETCH: &str = "model.web_fetch";
/// Hosted code execution (Anthropic `code_execution_*`, OpenAI `code_interpreter`).
pub const CODE_EXECUTION: &str = "model.code_execution";
/// Computer use (Anthropic `computer_*`, OpenAI `computer_use_preview`).
pub const COMPUTER_USE: &str = "model.computer_use";
/// OpenAI's hosted `file_search`.
pub const FILE_SEARCH: &str = "model.file_search";
/// OpenAI's hosted `image_generation`.
pub const IMAGE_GENERATION: &str = "model.image_generation";
/// An MCP server the provider calls (Anthropic `mcp_servers`, OpenAI hosted `mcp` tools);
/// arguments `url` and `name`.
pub const MCP: &str = "model.mcp";
/// A URL the provider fetches (an image or document part given by URL); argument `url`.
pub const FETCH_URL: &str = "model.fetch_url";
/// A file the provider reads from its own storage (a `file_id` source); argument `file_id`.
pub const READ_FILE: &str = "model.read_file";
/// Any other tool type, which the provider may run; argument `type`.
pub const TOOL: &str = "model.tool";
/// An Anthropic beta feature not known to be inert; argument `value`.
pub const BETA: &str = "model.beta";

/// Every tool a [`ProviderAction`] can name.
pub const TOOLS: &[&str] = &[
    WEB_SEARCH,
    WEB_FETCH,
    CODE_EXECUTION,
    COMPUTER_USE,
    FILE_SEARCH,
    IMAGE_GENERATION,
    MCP,
    FETCH_URL,
    READ_FILE,
    TOOL,
    BETA,
];

/// `anthropic-beta` values known to make the provider neither act nor fetch: they change
/// limits, caching, token accounting or streaming only. Any other value is an action.
pub const INERT_BETAS: &[&str] = &[
    "prompt-caching-2024-07-31",
    "extended-cache-ttl-2025-04-11",
    "token-efficient-tools-2025-02-19",
    "fine-grained-tool-streaming-2025-05-14",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "max-tokens-3-5-sonnet-2024-07-15",
    "context-1m-2025-08-07",
    "token-counting-2024-11-01",
    "pdfs-2024-09-25",
];

/// How deep content is followed (messages → parts → tool results → their parts ...).
pub const MAX_DEPTH: usize = 6;

/// One thing a request asks the provider to do: a tool of the `model` server, with its
/// arguments (a JSON object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAction {
    /// One of [`TOOLS`].
    pub tool: &'static str,
    /// The arguments the charter's rules match on.
    pub args: Value,
}

/// The provider-side actions `body` (a request in `protocol`) and the `anthropic-beta` values
/// `betas` ask for, in the order they appear, each once. Empty when the request only asks the
/// model to answer (plain function/custom tools included: the agent runs those itself).
pub fn provider_actions(protocol: Protocol, body: &Value, betas: &[&str]) -> Vec<ProviderAction> {
    let mut out = Actions::default();
    if let Some(obj) = body.as_object() {
        if let Some(tools) = obj.get("tools") {
            read_tools(tools, &mut out);
        }
        if let Some(servers) = obj.get("mcp_servers").filter(|v| !v.is_null()) {
            read_mcp_servers(servers, &mut out);
        }
        if let Some(options) = obj.get("web_search_options").filter(|v| !v.is_null()) {
            out.push(
                WEB_SEARCH,
                json!({ "type": "web_search_options", "options": options }),
            );
        }
        if let Some(messages) = obj.get("messages").and_then(Value::as_array) {
            for m in messages {
                if let Some(content) = m.get("content") {
                    read_content(content, 0, &mut out);
                }
            }
        }
        if protocol == Protocol::Anthropic
            && let Some(system) = obj.get("system")
        {
            read_content(system, 0, &mut out);
        }
    }
    for beta in betas
        .iter()
        .flat_map(|b| b.split(','))
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        if !INERT_BETAS.contains(&beta) {
            out.push(BETA, json!({ "value": beta }));
        }
    }
    out.0
}

/// Actions in order, each once.
#[derive(Default)]
struct Actions(Vec<ProviderAction>);

impl Actions {
    fn push(&mut self, tool: &'static str, args: Value) {
        let action = ProviderAction { tool, args };
        if !self.0.contains(&action) {
            self.0.push(action);
        }
    }
}

/// The tool of a tool entry's `type`; `None` for a plain function or custom tool.
fn hosted_tool(kind: &str) -> Option<&'static str> {
    let tool = match kind {
        "function" | "custom" => return None,
        k if k.starts_with("web_search") => WEB_SEARCH,
        k if k.starts_with("web_fetch") => WEB_FETCH,
        k if k.starts_with("code_execution") || k == "code_interpreter" => CODE_EXECUTION,
        k if k.starts_with("computer") => COMPUTER_USE,
        "file_search" => FILE_SEARCH,
        "image_generation" => IMAGE_GENERATION,
        "mcp" => MCP,
        _ => TOOL,
    };
    Some(tool)
}

fn read_tools(tools: &Value, out: &mut Actions) {
    let Some(tools) = tools.as_array() else {
        if !tools.is_null() {
            out.push(TOOL, json!({ "type": "malformed_tools" }));
        }
        return;
    };
    for t in tools {
        let kind = match t.get("type") {
            // No type: a plain (Anthropic custom / OpenAI function) tool.
            None => continue,
            Some(Value::String(k)) => k.as_str(),
            Some(_) => {
                out.push(TOOL, json!({ "type": "malformed_type" }));
                continue;
            }
        };
        match hosted_tool(kind) {
            None => {}
            Some(MCP) => out.push(
                MCP,
                json!({
                    "url": t.get("server_url").and_then(Value::as_str).unwrap_or(""),
                    "name": t.get("server_label").and_then(Value::as_str).unwrap_or(""),
                }),
            ),
            Some(TOOL) => out.push(TOOL, json!({ "type": kind })),
            Some(tool) => {
                let mut args = Map::new();
                args.insert("type".to_owned(), Value::String(kind.to_owned()));
                if let Some(obj) = t.as_object() {
                    for (k, v) in obj {
                        if k != "type" {
                            args.insert(k.clone(), v.clone());
                        }
                    }
                }
                out.push(tool, Value::Object(args));
            }
        }
    }
}

fn read_mcp_servers(servers: &Value, out: &mut Actions) {
    match servers.as_array() {
        Some(list) => {
            for s in list {
                out.push(
                    MCP,
                    json!({
                        "url": s.get("url").and_then(Value::as_str).unwrap_or(""),
                        "name": s.get("name").and_then(Value::as_str).unwrap_or(""),
                    }),
                );
            }
        }
        None => out.push(MCP, json!({ "url": "", "name": "" })),
    }
}

/// Whether `url` makes the provider fetch something (anything but inline `data:`).
fn is_fetched(url: &str) -> bool {
    !url.trim_start()
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("data:"))
}

/// Reads message content (a string, a list of parts, or one part) for URL and file sources.
fn read_content(content: &Value, depth: usize, out: &mut Actions) {
    if depth > MAX_DEPTH {
        out.push(TOOL, json!({ "type": "nested_content" }));
        return;
    }
    match content {
        Value::Array(parts) => {
            for p in parts {
                read_content(p, depth + 1, out);
            }
        }
        Value::Object(part) => read_part(part, depth, out),
        _ => {}
    }
}

fn read_part(part: &Map<String, Value>, depth: usize, out: &mut Actions) {
    // Anthropic image/document blocks: `source` of type `url` or `file`.
    if let Some(source) = part.get("source").and_then(Value::as_object) {
        match source.get("type").and_then(Value::as_str) {
            Some("url") => {
                let url = source.get("url").and_then(Value::as_str).unwrap_or("");
                if is_fetched(url) {
                    out.push(FETCH_URL, json!({ "url": url }));
                }
            }
            Some("file") => out.push(
                READ_FILE,
                json!({ "file_id": source.get("file_id").and_then(Value::as_str).unwrap_or("") }),
            ),
            // base64, text, inline content: nothing fetched (content is read below).
            _ => {}
        }
        if let Some(inner) = source.get("content") {
            read_content(inner, depth + 1, out);
        }
    }
    // OpenAI image parts: `image_url` as `{url}` or a string; Responses-style `input_image`,
    // `input_file` (`file_url`).
    for key in ["image_url", "file_url"] {
        let url = match part.get(key) {
            Some(Value::String(u)) => Some(u.as_str()),
            Some(Value::Object(o)) => Some(o.get("url").and_then(Value::as_str).unwrap_or("")),
            _ => None,
        };
        if let Some(url) = url
            && is_fetched(url)
        {
            out.push(FETCH_URL, json!({ "url": url }));
        }
    }
    // File ids: on the part itself, or in an OpenAI `file` part.
    let file_ids = [
        part.get("file_id"),
        part.get("file").and_then(|f| f.get("file_id")),
    ];
    for id in file_ids.into_iter().flatten() {
        if !id.is_null() {
            out.push(
                READ_FILE,
                json!({ "file_id": id.as_str().unwrap_or_default() }),
            );
        }
    }
    // Tool results (and anything else) carry their own content.
    if let Some(inner) = part.get("content") {
        read_content(inner, depth + 1, out);
    }
}

#[cfg(test)]
mod tests;
