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

use super::common;

use common::repo;
use std::path::Path;
use std::process::{Command, Output};

#[path = "cli/observe.rs"]
mod observe;
#[path = "cli/upstreams.rs"]
mod upstreams;
#[path = "cli/worker_threads.rs"]
mod worker_threads;

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

/// Every example charter compiles without errors (`examples/*/`; a set directory as a set).
#[test]
fn examples_are_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let rel = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
        // A charter set directory (examples/agents: no tests/ of its own) is checked as a set.
        let out = if path.join("tests").is_dir() {
            warden(&["check", &rel, "--format", "json"])
        } else {
            warden(&["check", "--charters", &rel, "--format", "json"])
        };
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

/// Runs `warden` with a deadline: a hang fails the test instead of hanging the suite.
fn warden_within(args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run warden");
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait for warden").is_none() {
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "`warden {}` did not finish within {limit:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect warden's output")
}

#[test]
fn check_refuses_deeply_nested_globs_at_their_location() {
    let nested = format!("{}b{}", "{a,".repeat(150), "}".repeat(150));
    let dir = tempfile::tempdir().unwrap();
    let text = VALID
        .replace("'/ws/**'", &format!("'/ws/{nested}'"))
        .replace("tool: fs.write_file", &format!("tool: 'fs.{nested}'"))
        .replace(
            "approve: [default, write]",
            &format!("approve: [default, '{nested}']"),
        );
    let path = write(dir.path(), "nested.yaml", &text);
    let out = warden_within(&["check", &path], std::time::Duration::from_secs(60));
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        format!("{path}:8:79: error: invalid path glob `/ws/{{a,"),
        format!("{path}:9:26: error: invalid tool pattern `fs.{{a,"),
        format!("{path}:11:42: error: invalid rule pattern `{{a,"),
        "alternatives nest 150 deep, more than the limit of 16".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn check_parses_deep_conditions_without_running_out_of_stack() {
    let dir = tempfile::tempdir().unwrap();
    let with_when = |when: &str| {
        VALID.replace(
            "tier: approval }",
            &format!("tier: approval, when: '{when}' }}"),
        )
    };
    let check = |name: &str, when: &str| {
        let path = write(dir.path(), name, &with_when(when));
        let out = warden_within(&["check", &path], std::time::Duration::from_secs(60));
        let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        (path, out.status.code(), text)
    };
    // Ninety parentheses are within the parser's own limit of 96 levels, and used to overflow
    // the main thread's stack before the parser got there.
    let (_, code, text) = check(
        "parens.yaml",
        &format!("{}true{}", "(".repeat(90), ")".repeat(90)),
    );
    assert_eq!(code, Some(0), "{text}");
    for (name, when, expected) in [
        (
            "deeper.yaml",
            format!("{}true{}", "(".repeat(400), ")".repeat(400)),
            "Recursion limit of 96 exceeded",
        ),
        (
            "chain.yaml",
            format!("1{} == 1", "+1".repeat(1500)),
            "`when` is nested 1502 levels deep, more than the limit of 32",
        ),
    ] {
        let (path, code, text) = check(name, &when);
        assert_eq!(code, Some(64), "{text}");
        assert!(text.contains(&format!("{path}:9:63: error: ")), "{text}");
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn check_refuses_what_is_not_a_regular_file_promptly() {
    let limit = std::time::Duration::from_secs(20);
    let out = warden_within(&["check", "/dev/zero"], limit);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stdout(&out).contains("/dev/zero:1:1: error: charter is a device, not a regular file"),
        "{}",
        stdout(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("charter.yaml");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let fifo = fifo.to_string_lossy().into_owned();
    let out = warden_within(&["check", &fifo], limit);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stdout(&out).contains(&format!(
            "{fifo}:1:1: error: charter is a FIFO, not a regular file"
        )),
        "{}",
        stdout(&out)
    );
    // In a charter directory the FIFO is refused too, not skipped.
    write(dir.path(), "base.yaml", VALID);
    let out = warden_within(&["check", &dir.path().to_string_lossy()], limit);
    assert_eq!(out.status.code(), Some(64));
    assert!(stdout(&out).contains(&format!("{fifo}:1:1: error: charter is a FIFO")));
}

/// Issue 10, point 9: a `${NAME}` of a stdio server's `env` whose variable is not set stops
/// `warden serve` before anything is opened or spawned (it used to start the server with an
/// empty value).
#[test]
fn serve_refuses_to_start_when_a_servers_env_variable_is_unset() {
    const UNSET: &str = "WARDEN_TEST_ISSUE10_UNSET_VARIABLE";
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("spawned");
    let charter = VALID.replace(
        "    - { id: fs, command: [node, fs.js], tools: [read_file, write_file] }\n",
        &format!(
            "    - {{ id: fs, command: [node, fs.js], tools: [read_file, write_file] }}\n    - id: git\n      command: [sh, -c, 'touch {}; exec cat']\n      env: {{ PUSH_TOKEN: \"${{{UNSET}}}\", MODE: plain }}\n      tools: [push]\n",
            marker.display()
        ),
    );
    let path = write(dir.path(), "charter.yaml", &charter);
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--charter", &path, "--data"])
        .arg(&data)
        .args([
            "--agent-listen",
            "127.0.0.1:0",
            "--operator-listen",
            "127.0.0.2:0",
        ])
        .env_remove(UNSET)
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_DATA")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "warden serve started with `${{{UNSET}}}` unset:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "server `git` needs the environment variable `{UNSET}` (its `env` sets `PUSH_TOKEN: \"${{{UNSET}}}\"`), which is not set"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was started"), "{stderr}");
    assert!(!marker.exists(), "the server was spawned");
    assert!(!data.exists(), "the data directory was created");
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

/// Issue 11, point 2: `warden serve` warns loudly — a `WARNING:` line in its summary and a log
/// line — about a plane that listens beyond loopback without TLS, and only about that plane.
#[test]
fn serve_warns_about_a_plane_beyond_loopback_without_tls() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    // A server nothing answers for: it is down at once, and start-up goes on.
    let charter = VALID.replace("command: [node, fs.js]", "url: \"http://127.0.0.1:1/mcp\"");
    let path = write(dir.path(), "charter.yaml", &charter);
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--charter", &path, "--data"])
        .arg(dir.path().join("data"))
        .args([
            "--agent-listen",
            "0.0.0.0:0",
            "--operator-listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_DATA")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let mut seen = Vec::new();
    let mut warned = false;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        seen.push(line.clone());
        if line.starts_with("operator plane") {
            // The summary is printed whole, warnings after the addresses.
            while let Ok(more) = rx.recv_timeout(std::time::Duration::from_millis(500)) {
                seen.push(more);
            }
            warned = true;
            break;
        }
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(warned, "no summary: {seen:?}\n{stderr}");
    assert!(
        seen.iter().any(
            |l| l.starts_with("WARNING: the agent plane listens on 0.0.0.0:")
                && l.contains("WITHOUT TLS")
        ),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("the operator plane")),
        "{seen:?}"
    );
    assert!(
        stderr.contains("The agent plane listens beyond loopback WITHOUT TLS"),
        "{stderr}"
    );
}

/// `warden --help` describes the binary as it is: no command "arrives with later crates".
#[test]
fn help_describes_every_command_as_it_is() {
    let out = warden(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    assert!(!help.contains("later"), "{help}");
    for command in [
        "serve",
        "up",
        "session",
        "approvals",
        "control",
        "operator",
        "connect",
        "audit",
        "check",
        "explain",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} is not in the help: {help}"
        );
    }
    assert!(help.contains("governance layer for AI agents"), "{help}");
}
