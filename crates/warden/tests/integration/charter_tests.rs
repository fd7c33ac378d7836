//! `warden test` and `warden init` through the binary: every example charter's test cases
//! pass; a deliberately wrong case fails with the file:line of the case and the
//! file:line:col of every rule involved; malformed input exits 64 at its position; every
//! starter charter `warden init` writes passes `warden check --deny-warnings` and `warden
//! test`. Hostile input (oversized, FIFOs, alias bombs, too many files) is in `adversarial`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

#[path = "charter_tests/adversarial.rs"]
mod adversarial;
use super::common;
#[path = "charter_tests/gateway_parity.rs"]
mod gateway_parity;

use std::path::Path;
use std::process::{Command, Output};

use common::repo;

/// Runs the binary from the repository's root (so example paths print as in the docs).
fn warden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("run warden")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A one-rule charter and its directory, in a temporary directory.
fn small_charter(dir: &Path) {
    std::fs::write(
        dir.join("charter.yaml"),
        "version: 1\nidentity: { id: t, name: T, purpose: p, serves: s }\ninventory:\n  servers:\n    - id: fs\n      command: [fs]\n      tools: [write_file]\nactions:\n  rules:\n    - id: no-etc\n      tool: fs.write_file\n      tier: prohibited\n      args:\n        path: { glob: /etc/** }\n",
    )
    .unwrap();
    std::fs::create_dir(dir.join("tests")).unwrap();
}

#[test]
fn every_example_charter_passes_its_tests() {
    let mut tested = 0;
    let mut charters = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if dir.join("tests").is_dir() {
            charters.push(format!("examples/{name}"));
            continue;
        }
        // A charter set (examples/agents): every subdirectory is a charter with its tests.
        let mut agents = 0;
        for agent in std::fs::read_dir(&dir).unwrap() {
            let agent = agent.unwrap().path();
            if agent.is_dir() {
                let agent_name = agent.file_name().unwrap().to_string_lossy().into_owned();
                charters.push(format!("examples/{name}/{agent_name}"));
                agents += 1;
            }
        }
        assert!(
            agents > 0,
            "examples/{name} has no tests/ directory of charter test cases"
        );
    }
    for charter in &charters {
        assert!(
            repo().join(charter).join("tests").is_dir(),
            "{charter} has no tests/ directory of charter test cases"
        );
        let out = warden(&["test", charter]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{charter}: {stdout}{stderr}");
        assert!(stdout.ends_with(" passed, 0 failed\n"), "{stdout}");
        tested += 1;
    }
    assert!(
        charters.iter().any(|c| c == "examples/agents/worker"),
        "the example set's charters are tested: {charters:?}"
    );
    assert!(tested >= 10, "only {tested} example charters");
}

#[test]
fn a_file_charter_finds_the_tests_beside_it() {
    let out = warden(&["test", "examples/python-agent/charter.yaml"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "4 passed, 0 failed\n");
}

#[test]
fn a_wrong_case_fails_with_the_case_and_rule_positions() {
    let dir = tempfile::tempdir().unwrap();
    small_charter(dir.path());
    std::fs::write(
        dir.path().join("tests/wrong.yaml"),
        "cases:\n  - name: etc is fine\n    tool: fs.write_file\n    args: { path: /etc/passwd }\n    expect: { verdict: allow }\n  - name: etc is refused\n    tool: fs.write_file\n    args: { path: /etc/passwd }\n    expect: { verdict: deny, tier: prohibited, rules: [no-etc], reason: rule }\n",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let out = warden(&["test", d]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "{d}/tests/wrong.yaml:2: case etc is fine: expected allow, got deny (tier prohibited) — rules: no-etc at {d}/charter.yaml:10:7\n1 passed, 1 failed\n"
        )
    );
    let out = warden(&["test", d, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["passed"], 1);
    assert_eq!(doc["failed"], 1);
    let case = &doc["cases"][0];
    assert_eq!(case["name"], "etc is fine");
    assert_eq!(case["line"], 2);
    assert_eq!(case["passed"], false);
    assert_eq!(case["got"]["verdict"], "deny");
    assert_eq!(case["got"]["rules"][0]["id"], "no-etc");
    assert_eq!(case["got"]["rules"][0]["location"]["line"], 10);
    assert_eq!(
        case["rules_involved"][0],
        format!("no-etc at {d}/charter.yaml:10:7")
    );
    assert_eq!(doc["cases"][1]["passed"], true);
}

#[test]
fn an_expected_rule_that_did_not_decide_is_named_with_its_position() {
    let out = warden(&[
        "test",
        "examples/python-agent",
        "--tests",
        "crates/warden/tests/integration/charter_tests/wrong_rule.yaml",
    ]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout,
        "crates/warden/tests/integration/charter_tests/wrong_rule.yaml:4: case mail to a customer: expected deny, got ask (tier approval); expected rules [mail-only-to-customers], got rules [mail-needs-approval] — rules: mail-needs-approval at examples/python-agent/charter.yaml:33:7, mail-only-to-customers at examples/python-agent/charter.yaml:38:7\n0 passed, 1 failed\n"
    );
}

#[test]
fn malformed_cases_exit_64_at_their_position() {
    let dir = tempfile::tempdir().unwrap();
    small_charter(dir.path());
    let d = dir.path().to_str().unwrap();
    for (case, want) in [
        (
            "cases:\n  - name: a\n    tool: fs.write_file\n    verdict: allow\n    expect: { verdict: allow }\n",
            format!("error: {d}/tests/t.yaml:4:5: invalid case file: unknown field `verdict`"),
        ),
        (
            "cases:\n  - name: a\n    tool: fs.write_file\n    principal: mallory\n    expect: { verdict: allow }\n",
            format!("error: {d}/tests/t.yaml:4:16: case `a`: unknown user `mallory`"),
        ),
        (
            "cases:\n  - name: a\n    tool: fs.read_file\n    expect: { verdict: deny }\n",
            format!(
                "error: {d}/tests/t.yaml:3:11: case `a`: tool `fs.read_file` is not in the charter's inventory"
            ),
        ),
        (
            "cases:\n  - name: a\n    tool: fs.write_file\n    expect: { verdict: deny, rules: [no-such-rule] }\n",
            format!("error: {d}/tests/t.yaml:4:38: case `a`: `expect.rules` names `no-such-rule`"),
        ),
        (
            "",
            format!("error: {d}/tests/t.yaml:1:1: case file is empty"),
        ),
    ] {
        std::fs::write(dir.path().join("tests/t.yaml"), case).unwrap();
        let out = warden(&["test", d]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(64), "{case}: {stdout}{stderr}");
        assert!(stderr.starts_with(&want), "{case}: {stderr}");
        let out = warden(&["test", d, "--format", "json"]);
        assert_eq!(out.status.code(), Some(64));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            doc["errors"][0]
                .as_str()
                .unwrap()
                .starts_with(want.trim_start_matches("error: "))
        );
    }
}

#[test]
fn no_cases_or_no_charter_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    small_charter(dir.path());
    let d = dir.path().to_str().unwrap();
    let out = warden(&["test", d]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out).1.contains("no test cases"), "{}", text(&out).1);
    std::fs::remove_dir(dir.path().join("tests")).unwrap();
    let out = warden(&["test", d]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out).1.contains("cannot read the test cases"));
    std::fs::write(dir.path().join("charter.yaml"), "version: 2\n").unwrap();
    let out = warden(&["test", d]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out).1.contains("the charter does not compile"));
}

#[test]
fn every_starter_charter_checks_clean_and_passes_its_tests() {
    let root = tempfile::tempdir().unwrap();
    for kind in ["coding", "support", "finance", "data"] {
        let dir = root.path().join(kind);
        let d = dir.to_str().unwrap();
        let out = warden(&["init", kind, "--dir", d]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{kind}: {stdout}{stderr}");
        for next in [
            format!("warden check {d}"),
            format!("warden test {d}"),
            format!("warden serve --charter {d}"),
        ] {
            assert!(stdout.contains(&next), "{kind}: {stdout}");
        }
        assert!(
            stdout.contains(&format!("{d}/charter.yaml"))
                && stdout.contains(&format!("{d}/tests/basic.yaml"))
        );
        let out = warden(&["check", "--deny-warnings", d]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {:?}", text(&out));
        assert!(text(&out).0.contains("0 warning(s)"));
        let out = warden(&["test", d]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {:?}", text(&out));
        assert!(text(&out).0.ends_with(" passed, 0 failed\n"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("charter.yaml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}

#[test]
fn init_never_overwrites_and_names_its_kinds() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().to_str().unwrap();
    std::fs::create_dir(root.path().join("tests")).unwrap();
    std::fs::write(root.path().join("tests/basic.yaml"), "mine").unwrap();
    let out = warden(&["init", "coding", "--dir", d]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out)
            .1
            .contains(&format!("`{d}/tests/basic.yaml` exists")),
        "{:?}",
        text(&out)
    );
    // Nothing was written: not the charter beside the existing test file either.
    assert!(!root.path().join("charter.yaml").exists());
    assert_eq!(
        std::fs::read_to_string(root.path().join("tests/basic.yaml")).unwrap(),
        "mine"
    );

    let out = warden(&["init", "legal", "--dir", d]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        text(&out).1,
        "error: unknown kind `legal`; the kinds are: coding, support, finance, data\n"
    );
}
