//! The inventory computed from two compiled charters, checked against what they say.

use std::sync::Arc;

use warden_charter::{CharterSet, CompiledCharter, Source, compile};
use warden_core::Tier;

use super::catalogue::{Sources, detail, summaries};

fn charter(yaml: &str) -> Arc<CompiledCharter> {
    Arc::new(
        compile(&[Source::new("charter.yaml", yaml.to_owned())])
            .expect("compiles")
            .charter,
    )
}

const PLANNER: &str = r#"version: 1
identity: { id: planner, name: Planner, purpose: plans, serves: the team, values: [care], boundaries: [no code] }
inventory:
  servers:
    - { id: fs, url: "http://127.0.0.1:1/mcp", tools: [read, write, wipe] }
    - { id: mail, tools: [send] }
actions:
  default_posture: ask
  rules:
    - { id: read-any, tool: fs.read, tier: autonomous }
    - { id: write-docs, tool: fs.write, tier: autonomous, args: { path: { glob: "/docs/**" } } }
    - { id: write-review, tool: fs.write, tier: approval, args: { path: { glob: "/src/**" } }, approval: { quorum: 2 } }
    - { id: no-wipe, tool: fs.wipe, tier: prohibited }
    - { id: search, tool: model.web_search, tier: autonomous }
authority:
  roles:
    - { id: lead, direct: approval, approve: ["write-*"] }
    - { id: dev, direct: preapproved }
  principals:
    - { id: dana, roles: [lead] }
    - { id: eli, roles: [dev] }
"#;

#[test]
fn the_inventory_says_what_the_charter_enforces() {
    let planner = charter(PLANNER);
    let set = CharterSet::single(planner.clone());
    let loaded_at = |_: &str| None;
    let sources = Sources {
        set: &set,
        sessions: &[],
        controls: &[],
        loaded_at: &loaded_at,
    };
    let d = detail(&planner, &sources);
    assert_eq!(d.id, "planner");
    assert_eq!(d.values, ["care"]);
    let tool = |name: &str| {
        d.tools
            .items
            .iter()
            .find(|t| t.tool == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .clone()
    };
    let write = tool("fs.write");
    assert_eq!(
        write
            .tiers
            .iter()
            .map(|t| (t.tier, t.rules.clone()))
            .collect::<Vec<_>>(),
        [
            (Tier::Autonomous, vec!["write-docs".to_owned()]),
            (Tier::Approval, vec!["write-review".to_owned()]),
        ]
    );
    assert_eq!(
        write.unmatched,
        Some(Tier::Approval),
        "both rules have conditions"
    );
    assert_eq!(tool("fs.read").unmatched, None);
    let send = tool("mail.send");
    assert!(
        send.tiers
            .iter()
            .all(|t| t.default && t.tier == Tier::Approval)
    );
    // Each server's `resources/read` is inventoried too (no rule: the default posture).
    assert_eq!(d.tools.total, 6);
    assert!(tool("fs.resources/read").tiers[0].default);
    assert_eq!(d.tiers[&Tier::Prohibited], 1);
    assert_eq!(
        d.tiers[&Tier::Approval],
        4,
        "fs.write's review, and the default of mail.send and both resources/read"
    );
    let search = d
        .models
        .tools
        .iter()
        .find(|t| t.tool == "model.web_search")
        .expect("listed");
    assert_eq!(search.tiers[0].rules, ["search"]);
    let review = d
        .approvers
        .items
        .iter()
        .find(|a| a.rule == "write-review")
        .expect("an approval rule");
    assert_eq!(
        (review.principals.clone(), review.quorum),
        (vec!["dana".to_owned()], 2)
    );
    let default = d
        .approvers
        .items
        .iter()
        .find(|a| a.rule == "default")
        .expect("default posture ask");
    assert!(
        default.principals.is_empty(),
        "`write-*` does not cover `default`"
    );
    assert_eq!(d.directors.items.len(), 2);
    assert_eq!(
        d.servers.iter().map(|s| s.transport).collect::<Vec<_>>(),
        ["http", "decide_api"]
    );
    assert_eq!(d.delegation.to, Vec::<String>::new());
    let all = summaries(&sources);
    assert_eq!(all.total, 1);
    assert_eq!(all.items[0].tiers, d.tiers);
}
