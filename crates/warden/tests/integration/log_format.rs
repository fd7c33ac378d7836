//! The log lines `warden serve` writes on stderr: with `--log-format json` (or
//! `WARDEN_LOG_FORMAT=json`) each is one JSON object with its level, fields and message; as text
//! they carry ANSI colour codes only when stderr is a terminal.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use super::common;

use common::{free_port, repo};
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A charter whose one upstream is down (nothing listens on its port): the gateway logs an
/// error with fields for it, besides its informational lines.
fn charter(dir: &Path) -> String {
    let text = format!(
        "\
version: 1
identity: {{ id: logs, name: Logs, purpose: tests, serves: the test suite }}
inventory:
  servers:
    - {{ id: gone, url: \"http://127.0.0.1:{}/mcp\", tools: [echo] }}
actions:
  rules:
    - {{ id: echo, tool: gone.echo, tier: autonomous }}
authority:
  roles: [{{ id: ops, approve: [default] }}]
  principals: [{{ id: alice, roles: [ops] }}]
",
        free_port()
    );
    let path = dir.join("charter.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// `warden serve` on free loopback ports, stdout and stderr piped, extra arguments and
/// environment added.
fn serve(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Child {
    let charter = charter(dir);
    let data = dir.join("data");
    let agent = format!("127.0.0.1:{}", free_port());
    let operator = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(["serve", "--charter", &charter, "--data"])
        .arg(&data)
        .args(["--agent-listen", &agent, "--operator-listen", &operator])
        .args(extra)
        .current_dir(repo())
        .env_remove("WARDEN_LOG")
        .env_remove("WARDEN_LOG_FORMAT")
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start warden serve")
}

/// Reads `child`'s stderr until a line contains "Gateway listening" (bounded), stops it with
/// SIGTERM and returns every stderr line it wrote.
fn stderr_until_listening_then_stop(child: Child) -> Vec<String> {
    stderr_until_then_stop(child, "Gateway listening")
}

/// Reads `child`'s stderr until a line contains `wanted` (bounded), stops it with SIGTERM and
/// returns every stderr line it wrote.
fn stderr_until_then_stop(mut child: Child, wanted: &str) -> Vec<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let listening = line.contains(wanted);
                lines.push(line);
                if listening {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no `Gateway listening` log line; stderr so far:\n{}",
                    lines.join("\n")
                );
            }
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    // The signal may arrive before the gateway has installed its handler (it logs that it
    // listens first): then SIGTERM ends it as it ends any process. Either is fine here.
    assert!(
        status.success() || status.signal() == Some(15),
        "{status}\n{}",
        lines.join("\n")
    );
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

fn assert_json_lines(lines: &[String]) {
    assert!(lines.len() >= 2, "{lines:?}");
    let mut levels = Vec::new();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line}"));
        let level = v["level"]
            .as_str()
            .unwrap_or_else(|| panic!("no level: {line}"));
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{line}"
        );
        assert!(v["fields"].is_object(), "no fields: {line}");
        assert!(v["fields"]["message"].is_string(), "no message: {line}");
        assert!(v["timestamp"].is_string(), "no timestamp: {line}");
        assert!(v["target"].is_string(), "no target: {line}");
        assert!(!line.contains('\x1b'), "an escape code in JSON: {line:?}");
        levels.push(level.to_owned());
    }
    // The fields of an event are fields of the object, not text inside the message.
    let listening = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["message"] == "Gateway listening.")
        .expect("the listening line");
    assert_eq!(listening["level"], "INFO");
    assert!(
        listening["fields"]["agent"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{listening}"
    );
    let down = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["server"] == "gone")
        .expect("the line about the upstream that is down");
    assert!(
        ["WARN", "ERROR"].contains(&down["level"].as_str().unwrap()),
        "{down}"
    );
}

#[test]
fn json_log_format_writes_one_json_object_per_stderr_line() {
    let dir = tempfile::tempdir().unwrap();
    let lines = stderr_until_listening_then_stop(serve(dir.path(), &["--log-format", "json"], &[]));
    assert_json_lines(&lines);
}

#[test]
fn json_log_format_comes_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let lines =
        stderr_until_listening_then_stop(serve(dir.path(), &[], &[("WARDEN_LOG_FORMAT", "json")]));
    assert_json_lines(&lines);
}

#[test]
fn the_log_format_flag_is_global_and_the_flag_wins_over_the_environment() {
    // Before the subcommand, with the environment asking for something else.
    let dir = tempfile::tempdir().unwrap();
    let charter = charter(dir.path());
    let data = dir.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--charter",
            &charter,
            "--data",
        ])
        .arg(&data)
        .args([
            "--agent-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--operator-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .current_dir(repo())
        .env_remove("WARDEN_LOG")
        .env("WARDEN_LOG_FORMAT", "text")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_json_lines(&stderr_until_listening_then_stop(child));
}

#[test]
fn up_passes_the_json_log_format_on_to_its_observer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["up", "--log-format", "json", "--data"])
        .arg(&data)
        .args([
            "--agent-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--operator-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .current_dir(repo())
        .env_remove("WARDEN_LOG")
        .env_remove("WARDEN_LOG_FORMAT")
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The observer's first log line, passed on by `up`.
    let lines = stderr_until_then_stop(child, "Following the ledger stream");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line}"));
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"target\":\"warden_observer")),
        "{lines:?}"
    );
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["--log-format", "xml", "check", "charter.yaml"])
        .env_remove("WARDEN_LOG_FORMAT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("xml"), "{stderr}");
    assert!(stderr.contains("json"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["check", "charter.yaml"])
        .env("WARDEN_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn text_logs_off_a_terminal_have_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let lines = stderr_until_listening_then_stop(serve(dir.path(), &[], &[]));
    let text = lines.join("\n");
    assert!(text.contains("Gateway listening"), "{text}");
    assert!(text.contains("INFO"), "{text}");
    assert!(!text.contains("\x1b["), "ANSI codes on a pipe: {text:?}");
}

#[test]
fn text_logs_on_a_terminal_are_coloured() {
    // util-linux `script` gives the command a pseudo-terminal; its output is the terminal's.
    let dir = tempfile::tempdir().unwrap();
    let charter = charter(dir.path());
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_warden");
    // The check command logs nothing; serve does. `timeout` stops it with SIGTERM once it
    // has logged that it listens (the gateway starts within the bound).
    let command = format!(
        "timeout -s TERM 20 {bin} serve --charter {charter} --data {} --agent-listen 127.0.0.1:{} --operator-listen 127.0.0.1:{}",
        data.display(),
        free_port(),
        free_port()
    );
    let mut child = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .current_dir(repo())
        .env_remove("WARDEN_LOG")
        .env_remove("WARDEN_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("util-linux `script`");
    let stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Gateway listening") {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(seen.contains("Gateway listening"), "{seen:?}");
    assert!(seen.contains("\x1b["), "no colour on a terminal: {seen:?}");
}
