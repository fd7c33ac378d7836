//! `warden check` on charter sets (issue 17): several charters, or a set directory, checked as
//! one set through the binary; each error of the set, and an error inside an included
//! document, at its own file:line:col (exact output). Hostile includes are in `adversarial`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

#[path = "charter_sets/adversarial.rs"]
mod adversarial;
use super::common;

use std::path::Path;
use std::process::{Command, Output};

use common::repo;

/// Runs the binary in `dir` (so paths print relative to it).
fn warden_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run warden")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `text` at `dir/name`, creating directories.
fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A charter for `id` with `rest` after the identity (lines 1 to 6).
fn charter(id: &str, rest: &str) -> String {
    format!(
        "version: 1\nidentity:\n  id: {id}\n  name: A\n  purpose: test\n  serves: tests\n{rest}"
    )
}

#[test]
fn the_example_set_is_valid_and_the_summary_names_every_agent() {
    let out = warden_in(&repo(), &["check", "--charters", "examples/agents"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "examples/agents: valid charter set of 3 agents (`coordinator`, `support`, `worker`), 0 warning(s)"
        ),
        "{text}"
    );
    for agent in ["coordinator", "support", "worker"] {
        let line = lines.next().unwrap_or_default();
        assert!(
            line.starts_with(&format!("  agent `{agent}`: ")) && line.contains(" blake3:"),
            "{text}"
        );
    }
    // The same set, named charter by charter, with --deny-warnings and as JSON.
    let out = warden_in(
        &repo(),
        &[
            "check",
            "examples/agents/worker",
            "examples/agents/coordinator",
            "--deny-warnings",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], true);
    let agents: Vec<&str> = doc["charters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["coordinator", "worker"]);
}

#[test]
fn one_charter_keeps_the_summary_it_always_had() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/charter.yaml", &charter("a", ""));
    let out = warden_in(dir.path(), &["check", "a"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("a: valid charter for agent `a`: 0 rules, 0 tools, 0 warning(s), blake3:"),
        "{text}"
    );
}

#[test]
fn a_duplicate_agent_id_is_reported_at_the_second_identity() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/charter.yaml", &charter("same", ""));
    write(dir.path(), "b/charter.yaml", &charter("same", ""));
    let out = warden_in(dir.path(), &["check", "a", "b"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stdout(&out),
        "b/charter.yaml:3:7: error: agent `same` is governed by two charters\n  hint: the first is at a/charter.yaml:3:7; each agent of a set has one charter\n\
a, b: invalid charter set: 1 error(s), 0 warning(s)\n"
    );
}

#[test]
fn an_unknown_delegation_target_is_reported_at_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "set/coordinator/charter.yaml",
        &charter("coordinator", "delegation:\n  to: [wroker]\n"),
    );
    write(
        dir.path(),
        "set/worker/charter.yaml",
        &charter("worker", "delegation:\n  from: [coordinator]\n"),
    );
    let out = warden_in(dir.path(), &["check", "--charters", "set"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stdout(&out),
        "set/coordinator/charter.yaml:8:8: error: `delegation.to` names agent `wroker`, which has no charter in the set\n  hint: did you mean `worker`?\n\
set/worker/charter.yaml:8:10: warning: `delegation.from` names `coordinator`, whose charter does not delegate to `worker` (`delegation.to`): this delegation can never happen\n  hint: add `worker` to `delegation.to` in the charter of `coordinator`, or remove `coordinator` here\n\
set: invalid charter set: 1 error(s), 1 warning(s)\n"
    );
}

#[test]
fn an_error_inside_an_included_document_is_reported_at_its_own_position() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "set/org.yaml",
        "authority:\n  principals:\n    - { id: dana, roles: [leed] }\n  roles:\n    - { id: lead }\n",
    );
    write(
        dir.path(),
        "set/a/charter.yaml",
        &charter("a", "include: [../org.yaml]\n"),
    );
    let out = warden_in(dir.path(), &["check", "--charters", "set"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stdout(&out),
        "set/org.yaml:3:27: error: unknown role `leed`\n  hint: did you mean `lead`?\n\
set: invalid charter set: 1 error(s), 0 warning(s)\n"
    );
}

#[test]
fn a_set_directory_without_charters_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "set/org.yaml",
        "context: { organisation: Acme }\n",
    );
    let out = warden_in(dir.path(), &["check", "--charters", "set"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stdout(&out),
        "set:1:1: error: a charter set directory holds one subdirectory per agent's charter; this one has none\n\
set: invalid charter set: 1 error(s), 0 warning(s)\n"
    );
}
