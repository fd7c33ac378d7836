//! The names agents see for tools.
//!
//! A charter names a tool `server.tool`; agent frameworks hand MCP tool names to the model as
//! function names, which OpenAI and Anthropic restrict to `^[a-zA-Z0-9_-]{1,64}$`. So the
//! name an agent sees (in `tools/list`) is `server__tool`: the server id, two underscores,
//! the tool's name. The charter compiler makes the mapping one to one: a server id holds only
//! letters, digits, `_` and `-`, no `__`, and does not end in `_`, so the first `__` of an
//! agent-facing name always ends the server id; and every inventoried tool's agent-facing
//! name is a valid function name.

use std::borrow::Cow;

/// The longest function name model providers accept.
pub const MAX_FUNCTION_NAME: usize = 64;

/// What separates the server id from the tool's name in the name an agent sees.
pub const AGENT_SEPARATOR: &str = "__";

/// Whether `name` is a function name OpenAI and Anthropic accept: 1 to 64 of
/// `[a-zA-Z0-9_-]`.
pub fn is_function_name(name: &str) -> bool {
    (1..=MAX_FUNCTION_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The name an agent sees for the tool `tool` of server `server`: `server__tool`.
pub fn agent_tool_name(server: &str, tool: &str) -> String {
    format!("{server}{AGENT_SEPARATOR}{tool}")
}

/// The charter's name (`server.tool`) for a tool name an agent sent: `server__tool` becomes
/// `server.tool`; a name with a dot (the charter's own form) or without `__` is returned as
/// it is (and is then refused if the inventory does not name it).
pub fn charter_tool_name(name: &str) -> Cow<'_, str> {
    if name.contains('.') {
        return Cow::Borrowed(name);
    }
    match name.split_once(AGENT_SEPARATOR) {
        Some((server, tool)) if !server.is_empty() && !tool.is_empty() => {
            Cow::Owned(format!("{server}.{tool}"))
        }
        _ => Cow::Borrowed(name),
    }
}

/// Whether `id` may be a server id: a letter or digit, then letters, digits, `_` and `-`,
/// without `__`, not ending in `_`, at most 64 bytes.
pub(crate) fn is_server_id(id: &str) -> bool {
    id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && is_function_name(id)
        && !id.contains(AGENT_SEPARATOR)
        && !id.ends_with('_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_forms_map_to_one_charter_name() {
        assert_eq!(
            agent_tool_name("fs", "read_text_file"),
            "fs__read_text_file"
        );
        assert_eq!(charter_tool_name("fs__read_text_file"), "fs.read_text_file");
        assert_eq!(charter_tool_name("fs.read_text_file"), "fs.read_text_file");
        // A tool whose own name holds `__` or starts with `_`: the first `__` ends the id.
        assert_eq!(charter_tool_name("fs__my__tool"), "fs.my__tool");
        assert_eq!(charter_tool_name("fs___x"), "fs._x");
        for name in ["fs", "fs__", "__x", "", "fs.a__b"] {
            assert_eq!(charter_tool_name(name), name);
        }
    }

    #[test]
    fn function_names_and_server_ids() {
        assert!(is_function_name("fs__read_text_file"));
        assert!(is_function_name(&"a".repeat(64)));
        assert!(!is_function_name(&"a".repeat(65)));
        assert!(!is_function_name("fs.read"));
        assert!(!is_function_name(""));
        assert!(!is_function_name("fs__resources/read"));
        assert!(is_server_id("my-server_2"));
        for bad in ["my__server", "fs_", "_fs", "fs.x", "a:b", "a@b", ""] {
            assert!(!is_server_id(bad), "{bad}");
        }
    }
}
