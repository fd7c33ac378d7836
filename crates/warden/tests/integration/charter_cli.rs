//! `warden charter show|reload` as the real binary against an in-process gateway, and
//! `SIGHUP` against a real `warden serve` process: the charter file edited, the change put in
//! force; a broken file refused with the old charter kept.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_testkit::harness::Harness;

use super::common;
use common::echo_charter as charter;

fn warden_charter(url: &str, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("charter")
        .args(args)
        .args(["--operator-url", url, "--token", token])
        .env_remove("WARDEN_OPERATOR_TOKEN")
        .env_remove("WARDEN_OPERATOR_URL")
        .output()
        .expect("run warden")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_charter_shows_and_reloads() {
    let h = Harness::builder(charter).start().await;
    let url = format!("http://{}", h.operator_addr);
    let out = warden_charter(&url, &h.operator_token, &["show", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["agent"], "agent-1");
    let before = shown["charter"].as_str().unwrap().to_owned();
    let out = warden_charter(&url, &h.operator_token, &["show"]);
    assert!(text(&out.stdout).contains(&before), "{}", text(&out.stdout));

    // Unchanged, then changed.
    let out = warden_charter(&url, &h.operator_token, &["reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("charter unchanged: {before}"));
    let good = std::fs::read_to_string(h.config.charters.first()).unwrap();
    std::fs::write(
        h.config.charters.first(),
        good.replace("tier: autonomous", "tier: prohibited"),
    )
    .unwrap();
    let out = warden_charter(&url, &h.operator_token, &["reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.starts_with(&format!("charter reloaded: {before} -> blake3:")),
        "{said}"
    );
    assert!(said.contains("rules ~1: echo-hello"), "{said}");
    let loaded = h.records_of("charter_loaded").await;
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[1]["via"], "cli");
    assert_eq!(loaded[1]["by"], "bootstrap");

    // Broken: refused, exit 64, every diagnostic printed with its location.
    std::fs::write(
        h.config.charters.first(),
        good.replace("tier: autonomous", "tier: sometimes"),
    )
    .unwrap();
    let out = warden_charter(&url, &h.operator_token, &["reload"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("charter_invalid") || stderr.contains("does not compile"),
        "{stderr}"
    );
    assert!(stderr.contains("charter.yaml:8:"), "{stderr}");
    // A token that is not an admin's is refused.
    let out = warden_charter(&url, "wo_not-a-token", &["show"]);
    assert_eq!(out.status.code(), Some(64));
    h.stop().await;
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

/// Polls `warden charter show --json` until `until` holds of its answer (20 s at most).
fn show_until(url: &str, token: &str, until: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = warden_charter(url, token, &["show", "--json"]);
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            if until(&v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting: {}",
            text(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `SIGHUP` reloads the charter of a running `warden serve` (no TLS configured: the one
/// handler still reloads the charter); a broken file is refused and the old charter stays.
#[test]
fn sighup_reloads_the_charter_of_a_running_serve() {
    let dir = tempfile::tempdir().unwrap();
    // A server nothing answers for: it is down, and start-up goes on.
    let good = charter("http://127.0.0.1:1/mcp");
    let path = write(dir.path(), "charter.yaml", &good);
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
        .current_dir(dir.path())
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_DATA")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    let lines = tx.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut url = None;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        seen.push(line.clone());
        if let Some(rest) = line.strip_prefix("operator plane") {
            url = Some(rest.trim().to_owned());
            break;
        }
    }
    let Some(url) = url else {
        child.kill().ok();
        panic!("no summary: {seen:?}");
    };
    let token = std::fs::read_to_string(data.join("operator.token"))
        .unwrap()
        .trim()
        .to_owned();
    let first = show_until(&url, &token, |_| true);
    assert_eq!(first["generation"], 0);
    let pid = child.id().to_string();
    let hup = || {
        let sent = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(sent.success());
    };

    std::fs::write(&path, good.replace("tier: autonomous", "tier: prohibited")).unwrap();
    hup();
    let second = show_until(&url, &token, |v| v["generation"] == 1);
    assert_ne!(second["charter"], first["charter"]);

    // Broken: refused (logged), the charter in force stays; the process keeps serving.
    std::fs::write(&path, good.replace("tier: autonomous", "tier: sometimes")).unwrap();
    hup();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        if line.contains("charter reload was refused") {
            refused = true;
            break;
        }
    }
    assert!(refused, "no refusal logged");
    let third = show_until(&url, &token, |_| true);
    assert_eq!(third["charter"], second["charter"]);
    assert_eq!(third["generation"], 1);
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended the process"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
