use std::sync::Arc;

use askama::Template;
use warden_charter::{CharterSet, Source, compile};
use warden_operator::agents::{Sources, detail, summaries};

use super::*;

const HOSTILE: &str = r#"version: 1
identity: { id: helper, name: "<script>alert(1)</script>", purpose: "plans & <b>acts</b>", serves: the team, values: [care] }
inventory:
  servers:
    - { id: mail, tools: [send] }
actions:
  default_posture: deny
  rules:
    - { id: send-review, tool: mail.send, tier: approval }
authority:
  roles: [{ id: ops, approve: ["send-*"] }]
  principals: [{ id: alice, roles: [ops] }]
"#;

fn layout() -> Layout {
    Layout {
        user: "admin".to_owned(),
        role: "admin".to_owned(),
        csrf: "x".to_owned(),
        tab: TAB,
        admin: true,
    }
}

#[test]
fn the_pages_render_the_catalogue_escaped_with_their_links() {
    let charter = Arc::new(
        compile(&[Source::new("charter.yaml", HOSTILE.to_owned())])
            .expect("compiles")
            .charter,
    );
    let set = CharterSet::single(charter.clone());
    let loaded_at = |_: &str| None;
    let sources = Sources {
        set: &set,
        sessions: &[],
        controls: &[],
        loaded_at: &loaded_at,
    };
    let all = summaries(&sources);
    let list = AgentsPage {
        layout: layout(),
        total: all.total,
        agents: all
            .items
            .into_iter()
            .map(|agent| AgentRow {
                href: percent_encode(&agent.id),
                agent,
            })
            .collect(),
    }
    .render()
    .expect("renders");
    assert!(
        list.contains(r#"<a href="/ui/agents/helper"><code>helper</code></a>"#),
        "{list}"
    );
    assert!(
        list.contains(r#"href="/ui/charter?agent=helper""#),
        "{list}"
    );
    assert!(!list.contains("<script>alert"), "escaped: {list}");
    assert!(list.contains(r#"<a href="/ui/agents" aria-current="page">Agents</a>"#));

    let agent = detail(&charter, &sources);
    let page = AgentPage {
        layout: layout(),
        href: percent_encode(&agent.id),
        tools: agent.tools.items.iter().map(ToolLine::of).collect(),
        model_tools: agent.models.tools.iter().map(ToolLine::of).collect(),
        live: vec![("s-1<i>".to_owned(), percent_encode("s-1<i>"))],
        cut: [None, None, Some("100 of 120".to_owned()), None],
        agent,
    }
    .render()
    .expect("renders");
    assert!(
        !page.contains("<script>alert") && !page.contains("<b>acts"),
        "{page}"
    );
    assert!(
        page.contains(
            "<code>mail.send</code></td><td><span class=\"tier\">approval</span> (send-review)"
        ),
        "{page}"
    );
    assert!(
        page.contains("<code>send-review</code>: alice (quorum 1)"),
        "{page}"
    );
    assert!(page.contains(r#"href="/ui/sessions/s-1%3Ci%3E""#), "{page}");
    assert!(page.contains("100 of 120 live sessions shown."), "{page}");
    assert!(page.contains("delegates to</dt><dd>nobody"), "{page}");
}
