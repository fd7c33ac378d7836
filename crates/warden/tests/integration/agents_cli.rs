//! `warden agents list|show` as the real binary, against an in-process gateway governing two
//! charters.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use std::process::{Command, Output};

use serde_json::{Value, json};
use warden_gateway::config::CharterSource;
use warden_testkit::harness::Harness;

use super::common;
use common::echo_charter;

/// The second agent: a mail sender through the decide API, its sends waiting for `alice`.
const MAILER: &str = r#"version: 1
identity: { id: mailer, name: Mailer, purpose: sends the reports, serves: the team }
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

fn agents(h: &Harness, token: &str, args: &[&str]) -> Output {
    let url = format!("http://{}", h.operator_addr);
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("agents")
        .args(args)
        .args(["--operator-url", &url, "--token", token])
        .env_remove("WARDEN_OPERATOR_TOKEN")
        .env_remove("WARDEN_OPERATOR_URL")
        .output()
        .expect("run warden")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_agents_lists_and_shows_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = dir.path().join("mailer.yaml");
    std::fs::write(&mailer, MAILER).unwrap();
    let h = Harness::builder(echo_charter)
        .configure(move |c| {
            let first = c.charters.first().to_path_buf();
            c.charters = CharterSource::Paths(vec![first, mailer]);
        })
        .start()
        .await;
    let t = h.operator_token.clone();
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            "/v1/sessions",
            &t,
            Some(json!({ "agent": "mailer", "user": "alice" })),
        )
        .await;
    assert_eq!(status, 201);

    // The table: a header and a row per agent, with its tools per tier and live sessions.
    let out = agents(&h, &t, &["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("AGENT"), "{table}");
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    // mailer: approval 1 (mail.send's rule), prohibited 1 (mail.resources/read, under the
    // default posture deny), 1 live session, no control.
    assert_eq!(
        &row[..8],
        ["mailer", "Mailer", "0", "0", "1", "1", "1", "0"],
        "{table}"
    );
    assert!(lines[1].starts_with("agent-1"), "{table}");

    let out = agents(&h, &t, &["list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["agents"].as_array().unwrap().len(), 2);

    // One agent, readable.
    let out = agents(&h, &t, &["show", "mailer"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        "agent       mailer",
        "purpose     sends the reports",
        "mail.send  approval (send-review)",
        "send-review  alice (quorum 1)",
        "mail  decide_api  1 tools",
        "sessions    1 live, 1 known",
        "delegation  to: -  from: -",
    ] {
        assert!(shown.contains(expected), "`{expected}` in:\n{shown}");
    }
    let out = agents(&h, &t, &["show", "agent-1", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tools"]["items"][0]["tool"], "echo.echo");
    assert_eq!(v["tools"]["items"][0]["tiers"][0]["rules"][0], "echo-hello");

    // An unknown agent, a hostile id, a bad token: exit 64 with the reason.
    let out = agents(&h, &t, &["show", "nobody"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("not an agent of this gateway"),
        "{}",
        text(&out.stderr)
    );
    let out = agents(&h, &t, &["show", "../sessions"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
    let out = agents(&h, &t, &["show", ".."]);
    assert_eq!(out.status.code(), Some(64));
    let out = agents(&h, "wo_not-a-token", &["list"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    h.stop().await;
}
