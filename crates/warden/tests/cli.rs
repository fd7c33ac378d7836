//! The `warden` binary end to end: `check` and `explain` on real files, the examples, and the
//! `warden explain` answers written in docs/charter.md, and the modes of a data directory
//! `warden operator create-token` makes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn warden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run warden")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const VALID: &str = "\
version: 1
identity: { id: demo, name: Demo, purpose: tests, serves: the test suite }
inventory:
  servers:
    - { id: fs, command: [node, fs.js], tools: [read_file, write_file] }
actions:
  rules:
    - { id: read, tool: fs.read_file, tier: autonomous, args: { path: { glob: '/ws/**' } } }
    - { id: write, tool: fs.write_file, tier: approval }
authority:
  roles: [{ id: lead, approve: [default, write] }]
  principals: [{ id: alice, roles: [lead] }]
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn check_accepts_a_valid_charter() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.yaml", VALID);
    let out = warden(&["check", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out)
            .contains("valid charter for agent `demo`: 2 rules, 2 tools, 0 warning(s), blake3:")
    );
}

#[test]
fn check_reports_every_error_with_location_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let bad = VALID
        .replace("tier: autonomous", "tier: autonomus")
        .replace("tool: fs.write_file", "tool: fs.writ_file")
        .replace("roles: [lead] }", "roles: [leed] }");
    let path = write(dir.path(), "bad.yaml", &bad);
    let out = warden(&["check", &path]);
    assert_eq!(out.status.code(), Some(64));
    let text = stdout(&out);
    for expected in [
        format!("{path}:8:45: error: `actions.rules[0].tier`: unknown variant `autonomus`"),
        "hint: did you mean `autonomous`?".to_owned(),
        format!("{path}:9:26: error: unknown tool `fs.writ_file`"),
        "hint: did you mean `fs.write_file`?".to_owned(),
        format!("{path}:12:37: error: unknown role `leed`"),
        "hint: did you mean `lead`?".to_owned(),
        "invalid charter: 3 error(s)".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn check_json_lists_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.yaml",
        &VALID.replace("id: write,", "id: read,"),
    );
    let out = warden(&["check", &path, "--format", "json"]);
    assert_eq!(out.status.code(), Some(64));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    let d = &doc["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["location"]["line"], 9);
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("duplicate rule id `read`")
    );
}

#[test]
fn check_deny_warnings_fails_on_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "warn.yaml",
        &VALID.replace(
            "tools: [read_file, write_file]",
            "tools: [read_file, write_file, delete_file]",
        ),
    );
    let out = warden(&["check", &path]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("warning: tool `fs.delete_file` is classified by no rule"));
    let out = warden(&["check", &path, "--deny-warnings"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_reports_unreadable_and_malformed_files() {
    let out = warden(&["check", "/nonexistent/charter.yaml"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stdout(&out).contains("/nonexistent/charter.yaml:1:1: error: cannot read charter"));
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "broken.yaml", "version: 1\nidentity: {id: x\n");
    let out = warden(&["check", &path]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stdout(&out).contains(&format!(
            "{path}:2:11: error: invalid YAML: unclosed bracket"
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn explain_gives_the_decision_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.yaml", VALID);
    let out = warden(&[
        "explain",
        "--charter",
        &path,
        "--tool",
        "fs.read_file",
        "--args",
        r#"{"path":"/ws/a"}"#,
        "--user",
        "alice",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["tier"], "autonomous");
    assert_eq!(doc["verdict"], "allow");
    assert_eq!(doc["rules"][0]["id"], "read");
    assert_eq!(doc["rules"][0]["location"]["line"], 8);
    assert!(doc["charter"].as_str().unwrap().starts_with("blake3:"));

    let out = warden(&[
        "explain",
        "--charter",
        &path,
        "--tool",
        "fs.read_file",
        "--args",
        r#"{"path":"/ws/a"}"#,
        "--posture",
        "conservative",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("verdict   ask") && text.contains("reason    conservative_posture"),
        "{text}"
    );
}

#[test]
fn explain_refuses_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.yaml", VALID);
    for (args, message) in [
        (vec!["--args", "{not json"], "`--args` is not valid JSON"),
        (vec!["--args", "[1]"], "`--args` must be a JSON object"),
        (vec!["--user", "mallory"], "unknown user `mallory`"),
        (vec!["--labels", "secret"], "unknown label `secret`"),
        (vec!["--at", "yesterday"], "`--at` is not an RFC 3339 time"),
    ] {
        let mut all = vec!["explain", "--charter", &path, "--tool", "fs.read_file"];
        all.extend(args);
        let out = warden(&all);
        assert_eq!(out.status.code(), Some(64), "{all:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{all:?}: {err}");
    }
}

/// Every example charter compiles without errors (`examples/*/`).
#[test]
fn examples_are_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let rel = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
        let out = warden(&["check", &rel, "--format", "json"]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{rel}: {doc:#}");
        assert_eq!(doc["errors"], 0, "{rel}");
        assert!(path.join("README.md").exists(), "{rel} has no README.md");
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected at least three examples, found {checked}"
    );
}

/// Splits a command line written with single quotes only.
fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                has = true;
            }
            ' ' if !quoted => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// The `warden explain` examples in docs/charter.md give the answers written under them.
#[test]
fn documented_explain_answers_hold() {
    let doc = std::fs::read_to_string(repo().join("docs/charter.md")).unwrap();
    let lines: Vec<&str> = doc.lines().collect();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(cmd) = line.strip_prefix("warden explain ") else {
            continue;
        };
        let expect = lines
            .get(i + 1)
            .and_then(|l| l.strip_prefix("# => "))
            .unwrap_or_else(|| {
                panic!(
                    "docs/charter.md:{}: no `# =>` line after the command",
                    i + 1
                )
            });
        let mut args = vec!["explain".to_owned()];
        args.extend(split(cmd));
        args.extend(["--format".to_owned(), "json".to_owned()]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = warden(&argv);
        assert_eq!(
            out.status.code(),
            Some(0),
            "docs/charter.md:{}: {}",
            i + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<&str> = d["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        let got = format!(
            "verdict: {}, tier: {}, rules: [{}]",
            d["verdict"].as_str().unwrap(),
            d["tier"].as_str().unwrap(),
            ids.join(", ")
        );
        assert_eq!(got, expect.trim(), "docs/charter.md:{}: {line}", i + 1);
        checked += 1;
    }
    assert!(
        checked >= 6,
        "docs/charter.md has {checked} tested explain examples, expected at least 6"
    );
}

#[test]
fn operator_create_token_keeps_the_data_directory_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = warden(&[
        "operator",
        "create-token",
        "--name",
        "ci",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).starts_with("wo_"), "{out:?}");
    assert_eq!(format!("{:04o}", mode(&data)), "0700");
    let files: Vec<(String, String)> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), format!("{:04o}", mode(&p)))
        })
        .collect();
    assert!(
        files.iter().any(|(p, _)| p.ends_with("state.db")),
        "{files:?}"
    );
    assert!(files.iter().all(|(_, m)| m == "0600"), "{files:?}");
}
