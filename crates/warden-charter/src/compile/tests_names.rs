//! Server ids and tool names agents can be offered (`server__tool`, a valid function name):
//! issue 11, point 4.

use super::test_support::{error_text as errors, header, src};
use super::*;

fn with_server(id: &str, tools: &str) -> String {
    format!(
        concat!(
            header!(),
            "\
inventory:
  servers:
    - id: {id}
      tools: [{tools}]
"
        ),
        id = id,
        tools = tools
    )
}

#[test]
fn a_server_id_agents_cannot_be_offered_is_refused_at_its_position() {
    for id in ["my__server", "crm:eu", "mail@corp", "trailing_"] {
        let r = errors(&with_server(id, "read"));
        assert!(
            r.contains(&format!(
                "charter.yaml:9:11: error: invalid server id `{id}`"
            )),
            "{id}: {r}"
        );
        assert!(r.contains("`server__tool`"), "{r}");
    }
    // Letters, digits, `_` and `-` are fine.
    assert!(compile(&src(&with_server("my-server_2", "read"))).is_ok());
}

#[test]
fn a_tool_whose_agent_name_is_not_a_function_name_is_refused_at_its_position() {
    let long = "t".repeat(61);
    let r = errors(&with_server("fs", &format!("ok, {long}")));
    assert!(
        r.contains(&format!(
            "charter.yaml:10:19: error: tool `{long}` of server `fs` cannot be offered to agents: its name `fs__{long}` is 65 bytes long, more than the 64 model providers accept"
        )),
        "{r}"
    );
    let r = errors(&with_server("fs", "ok, read.all"));
    assert!(
        r.contains("charter.yaml:10:19: error: tool `read.all` of server `fs` cannot be offered to agents: its name `fs__read.all` holds characters other than letters, digits, `_` and `-`"),
        "{r}"
    );
    // 64 bytes in all is the limit, and it is accepted.
    assert!(compile(&src(&with_server("fs", &"t".repeat(60)))).is_ok());
}

#[test]
fn a_rule_naming_the_listed_form_is_told_the_charters_name() {
    let text = format!(
        "{}actions:\n  rules:\n    - {{ id: r, tool: fs__read, tier: autonomous }}\n",
        with_server("fs", "read")
    );
    let r = errors(&text);
    assert!(r.contains("unknown tool `fs__read`"), "{r}");
    assert!(r.contains("write `fs.read`"), "{r}");
}
