//! The `delegation` section and a server's `agent` (issue 17): defaults, bounds, unknown keys
//! with a suggestion, the charter's own agent refused, each error at its position.

use super::test_support::{error_text as errors, header, src};
use crate::compile;

#[test]
fn no_section_delegates_to_nobody_and_a_section_gets_the_defaults() {
    let none = compile(&src(header!())).expect("compiles").charter;
    assert_eq!(none.delegation, crate::Delegation::default());
    assert!(none.delegation.to.is_empty() && none.delegation.from.is_empty());
    let text = concat!(header!(), "delegation:\n  to: [worker]\n  from: [lead]\n");
    let d = compile(&src(text)).expect("compiles").charter.delegation;
    assert_eq!(d.to, ["worker"]);
    assert_eq!(d.from, ["lead"]);
    assert_eq!((d.max_depth, d.max_children), (1, 8));
    assert_eq!(
        d.location.map(|l| l.to_string()).as_deref(),
        Some("charter.yaml:8:3")
    );
    let text = concat!(
        header!(),
        "delegation: { to: [w], max_depth: 8, max_children: 64 }\n"
    );
    let d = compile(&src(text)).expect("compiles").charter.delegation;
    assert_eq!((d.max_depth, d.max_children), (8, 64));
}

#[test]
fn bounds_unknown_keys_and_bad_entries_are_errors_at_their_position() {
    let text = concat!(
        header!(),
        "delegation:\n  to: [worker, demo, worker, \"bad id\"]\n  from: [demo]\n  max_depth: 9\n  max_children: 0\n"
    );
    assert_eq!(
        errors(text),
        "charter.yaml:8:16: error: `delegation.to` names this charter's own agent `demo`\n  hint: an agent delegates to other agents of the set, never to itself\n\
charter.yaml:8:22: error: agent `worker` is listed twice in `delegation.to`\n  hint: first listed at charter.yaml:8:8\n\
charter.yaml:8:30: error: invalid agent id `bad id`\n  hint: ids start with a letter or digit and use letters, digits, `_`, `-`, `.`, `:`, `@`\n\
charter.yaml:9:10: error: `delegation.from` names this charter's own agent `demo`\n  hint: an agent delegates to other agents of the set, never to itself\n\
charter.yaml:10:14: error: `delegation.max_depth` is 9; it must be between 1 and 8\n\
charter.yaml:11:17: error: `delegation.max_children` is 0; it must be between 1 and 64\n"
    );
    let text = concat!(header!(), "delegation:\n  too: [worker]\n");
    assert_eq!(
        errors(text),
        "charter.yaml:8:3: error: `delegation.too`: unknown field `too`, expected one of `to`, `from`, `max_depth`, `max_children`\n  hint: did you mean `to`?\n"
    );
    let text = concat!(header!(), "delegaton:\n  to: [worker]\n");
    assert!(
        errors(text).contains("hint: did you mean `delegation`?"),
        "{}",
        errors(text)
    );
}

const SERVERS: &str = concat!(
    header!(),
    "inventory:\n  servers:\n    - { id: w, url: \"http://127.0.0.1:9/mcp\", agent: worker, tools: [run] }\n"
);

#[test]
fn a_server_agent_is_compiled_and_needs_a_transport_and_another_agent() {
    let c = compile(&src(SERVERS)).expect("compiles").charter;
    assert_eq!(
        c.inventory.servers.first().and_then(|s| s.agent.as_deref()),
        Some("worker")
    );
    let text = concat!(
        header!(),
        "inventory:\n  servers:\n    - { id: w, agent: worker, tools: [run] }\n    - { id: me, command: [x], agent: demo, tools: [run] }\n    - { id: bad, command: [x], agent: \"no such\", tools: [run] }\n"
    );
    assert_eq!(
        errors(text),
        "charter.yaml:9:23: error: server `w` is agent `worker` but has no `command` or `url`\n  hint: an agent is reached as an MCP server (`command` or `url`), not through the decide API\n\
charter.yaml:10:38: error: server `me` is this charter's own agent `demo`\n  hint: a server's `agent` names another agent of the set\n\
charter.yaml:11:39: error: invalid agent id `no such`\n"
    );
}
