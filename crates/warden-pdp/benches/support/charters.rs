//! Generated charters for the benchmarks: `n` rules over a realistic tool mix.
//!
//! The hot tool `fs.read_text_file` always has the same seven rules (a path allowlist, a
//! prohibition outside the root, an approval rule for a secret folder, a principal rule, a
//! label rule, a CEL rule and a global `*` rule), whatever `n` is; the other `n - 7` rules
//! classify tools of other servers with assorted matchers. Deciding on the hot tool should
//! therefore cost the same at 10 and at 10,000 rules.

use std::fmt::Write as _;

use warden_charter::{CompiledCharter, Source, compile};

/// Tools per generated server.
const TOOLS_PER_SERVER: usize = 10;

/// Charter text with `n` rules.
pub(crate) fn charter_text(n: usize) -> String {
    let servers = (n / 50).max(2);
    let mut s = String::from(
        "version: 1\nidentity: { id: bench, name: Bench, purpose: benchmarks, serves: the team }\n",
    );
    s.push_str("inventory:\n  servers:\n    - id: fs\n      command: [npx, server-filesystem, /ws]\n      tools: [read_text_file, write_file, list_directory]\n");
    for k in 0..servers {
        let tools: Vec<String> = (0..TOOLS_PER_SERVER).map(|t| format!("op{t}")).collect();
        let _ = writeln!(
            s,
            "    - {{ id: srv{k}, url: \"http://127.0.0.1:9/mcp\", tools: [{}] }}",
            tools.join(", ")
        );
    }
    s.push_str("actions:\n  rules:\n");
    s.push_str(HOT_RULES);
    let fixed = 7;
    for i in 0..n.saturating_sub(fixed) {
        let server = i % servers;
        let tool = (i / servers) % TOOLS_PER_SERVER;
        let tool_name = if i % 10 == 9 {
            format!("\"srv{server}.op*\"")
        } else {
            format!("srv{server}.op{tool}")
        };
        let (tier, matcher) = match i % 7 {
            0 => (
                "autonomous",
                "args: { path: { glob: \"/data/**\" } }".to_owned(),
            ),
            1 => (
                "approval",
                format!("args: {{ amount: {{ min: {} }} }}", 100 + i),
            ),
            2 => (
                "prohibited",
                "args: { url: { host: [\"*.evil.example\"] } }".to_owned(),
            ),
            3 => (
                "autonomous",
                "args: { mode: { one_of: [read, list, stat] } }".to_owned(),
            ),
            4 => (
                "preapproved",
                "scope: { per_session: 20, per_day: 200 }".to_owned(),
            ),
            5 => ("approval", "principal: { roles: [operator] }".to_owned()),
            _ => (
                "autonomous",
                "args: { name: { regex: \"[a-z0-9-]{1,32}\" } }".to_owned(),
            ),
        };
        let _ = writeln!(
            s,
            "    - id: r{i}\n      tool: {tool_name}\n      tier: {tier}\n      {matcher}"
        );
    }
    s.push_str(AUTHORITY);
    s
}

const HOT_RULES: &str = r#"    - id: read-workspace
      tool: fs.read_text_file
      tier: autonomous
      args: { path: { glob: "/ws/**" } }
    - id: no-reads-outside
      tool: "fs.*"
      tier: prohibited
      args: { path: { not: { glob: "/ws/**" } } }
    - id: secrets-need-approval
      tool: fs.read_text_file
      tier: approval
      args: { path: { glob: "/ws/secrets/**" } }
    - id: interns-read-docs-only
      tool: fs.read_text_file
      tier: approval
      principal: { roles: [intern] }
      args: { path: { not: { glob: "/ws/docs/**" } } }
    - id: no-reads-when-restricted
      tool: "*"
      tier: prohibited
      labels: { any: [restricted] }
    - id: large-reads
      tool: fs.read_text_file
      tier: approval
      when: "has(args.head) && args.head > 100000"
    - id: writes
      tool: fs.write_file
      tier: approval
"#;

const AUTHORITY: &str = r#"authority:
  roles:
    - { id: operator, approve: [default, "*"] }
    - { id: intern, direct: autonomous }
  principals:
    - { id: alice, roles: [operator] }
    - { id: ivan, roles: [intern] }
data:
  labels: [{ id: restricted }]
"#;

/// The compiled charter with `n` rules.
pub(crate) fn charter(n: usize) -> CompiledCharter {
    match compile(&[Source::new("bench.yaml", charter_text(n))]) {
        Ok(c) => c.charter,
        Err(d) => panic!("generated charter does not compile:\n{d}"),
    }
}

/// The decided actions: (case name, tool, arguments). See docs/benchmarks.md.
pub(crate) fn cases() -> [(&'static str, &'static str, serde_json::Value); 4] {
    [
        (
            "hot_allow",
            "fs.read_text_file",
            serde_json::json!({"path": "/ws/src/main.rs"}),
        ),
        (
            "hot_deny",
            "fs.read_text_file",
            serde_json::json!({"path": "/ws/../etc/shadow"}),
        ),
        (
            "other_tool",
            "srv1.op3",
            serde_json::json!({"mode": "read", "amount": 5}),
        ),
        ("unknown_tool", "elsewhere.tool", serde_json::json!({})),
    ]
}
