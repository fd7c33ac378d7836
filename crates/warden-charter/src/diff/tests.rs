use super::*;
use crate::{Source, compile};

fn charter(body: &str) -> CompiledCharter {
    let text = format!(
        "version: 1\nidentity:\n  id: demo\n  name: Demo\n  purpose: test\n  serves: tests\n{body}"
    );
    compile(&[Source::new("charter.yaml", text)])
        .expect("compiles")
        .charter
}

const BASE: &str = "\
inventory:
  servers:
    - id: fs
      command: [node, fs.js]
      tools: [read_file, write_file]
actions:
  rules:
    - id: read
      tool: fs.read_file
      tier: autonomous
    - id: write
      tool: fs.write_file
      tier: approval
authority:
  roles:
    - { id: ctl, approve: [write] }
  principals:
    - { id: bob, roles: [ctl] }
";

#[test]
fn the_same_charter_has_no_changes() {
    let d = diff(&charter(BASE), &charter(BASE));
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(d, CharterDiff::default());
}

#[test]
fn a_rule_moved_is_not_a_change_but_its_tier_is() {
    let moved = BASE.replace("actions:\n  rules:\n", "actions:\n\n\n  rules:\n");
    assert!(diff(&charter(BASE), &charter(&moved)).is_empty());
    let denied = BASE.replace(
        "tool: fs.read_file\n      tier: autonomous",
        "tool: fs.read_file\n      tier: prohibited",
    );
    let d = diff(&charter(BASE), &charter(&denied));
    assert_eq!(d.rules.changed.ids, ["read"]);
    assert_eq!(d.rules.changed.count, 1);
    assert!(d.rules.added.is_empty() && d.rules.removed.is_empty());
    assert!(d.servers.is_empty() && d.tools.is_empty());
}

#[test]
fn rules_added_removed_and_matchers_changed() {
    let next = BASE
        .replace(
            "    - id: write\n      tool: fs.write_file\n      tier: approval\n",
            "    - id: write2\n      tool: fs.write_file\n      tier: approval\n",
        )
        .replace("approve: [write]", "approve: [write2]")
        .replace(
            "tool: fs.read_file\n      tier: autonomous",
            "tool: fs.read_file\n      tier: autonomous\n      args:\n        path: { glob: '/srv/**' }",
        );
    let d = diff(&charter(BASE), &charter(&next));
    assert_eq!(d.rules.added.ids, ["write2"]);
    assert_eq!(d.rules.removed.ids, ["write"]);
    assert_eq!(d.rules.changed.ids, ["read"]);
}

#[test]
fn servers_tools_principals_roles_and_context() {
    let next = BASE
        .replace(
            "      tools: [read_file, write_file]\n",
            "      tools: [read_file, write_file]\n    - id: web\n      url: http://127.0.0.1:9/mcp\n      tools: [fetch]\n",
        )
        .replace("    - { id: bob, roles: [ctl] }\n", "    - { id: carol, roles: [ctl] }\n")
        .replace("approve: [write]", "approve: [read, write]")
        + "context:\n  environment: production\n";
    let d = diff(&charter(BASE), &charter(&next));
    assert_eq!(d.servers.added.ids, ["web"]);
    assert_eq!(d.tools.added.ids, ["web.fetch", "web.resources/read"]);
    assert_eq!(d.principals.added.ids, ["carol"]);
    assert_eq!(d.principals.removed.ids, ["bob"]);
    assert_eq!(d.roles.changed.ids, ["ctl"]);
    assert!(d.context_changed);
    assert!(!d.identity_changed);
    // And back: what was added is removed.
    let back = diff(&charter(&next), &charter(BASE));
    assert_eq!(back.servers.removed.ids, ["web"]);
    assert_eq!(back.tools.removed.count, 2);
}

#[test]
fn a_server_whose_command_changed_is_changed() {
    let next = BASE.replace("command: [node, fs.js]", "command: [node, fs2.js]");
    let d = diff(&charter(BASE), &charter(&next));
    assert_eq!(d.servers.changed.ids, ["fs"]);
    assert!(d.tools.is_empty());
}

#[test]
fn the_summary_is_bounded_and_sorted() {
    let many = |n: usize| {
        let mut rules = String::new();
        for i in 0..n {
            rules.push_str(&format!(
                "    - id: r{i:03}\n      tool: fs.read_file\n      tier: autonomous\n      args:\n        path: {{ prefix: '/p{i}' }}\n"
            ));
        }
        format!(
            "inventory:\n  servers:\n    - id: fs\n      command: [node, fs.js]\n      tools: [read_file]\nactions:\n  rules:\n{rules}"
        )
    };
    let d = diff(&charter(&many(1)), &charter(&many(MAX_IDS + 30)));
    assert_eq!(d.rules.added.count, MAX_IDS + 29);
    assert_eq!(d.rules.added.ids.len(), MAX_IDS);
    assert_eq!(d.rules.added.ids.first().map(String::as_str), Some("r001"));
    let json = serde_json::to_value(&d).expect("serialises");
    assert_eq!(json["rules"]["added"]["count"], MAX_IDS + 29);
}
