//! Issue 11, point 1: an upstream server that cannot start is reported, with what it wrote to
//! stderr (redacted): `warden up` stops on it, `warden serve` logs it and keeps running.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{VALID, warden_within, write};

const FAILING: &str = "console.error('boom: missing config'); process.exit(3)";

/// `warden up` whose filesystem server dies at once exits non-zero, naming the server and
/// printing its stderr (it used to print "warden is up").
#[test]
fn issue_11_up_fails_when_its_upstream_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let command = serde_json::to_string(&["node", "-e", FAILING]).unwrap();
    let out = warden_within(
        &[
            "up",
            "--data",
            &data.to_string_lossy(),
            "--fs-command",
            &command,
            "--agent-listen",
            "127.0.0.1:0",
            "--operator-listen",
            "127.0.0.2:0",
        ],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("warden is up"), "{stdout}");
    assert!(
        stderr.contains("error: upstream server `fs` did not start"),
        "{stderr}"
    );
    assert!(stderr.contains("    boom: missing config"), "{stderr}");
}

/// `warden serve` logs the stderr of a server that fails, with the secrets it holds redacted,
/// and keeps running (retrying the server).
#[test]
fn issue_11_serve_logs_a_failing_servers_stderr_redacted() {
    const VAR: &str = "WARDEN_TEST_ISSUE11_STDERR_SECRET";
    const SECRET: &str = "stderr-secret-value-8d1f";
    let dir = tempfile::tempdir().unwrap();
    let charter = VALID.replace(
        "    - { id: fs, command: [node, fs.js], tools: [read_file, write_file] }\n",
        &format!(
            "    - {{ id: fs, command: [node, fs.js], tools: [read_file, write_file] }}\n    - id: broken\n      command: [node, -e, \"console.error('boom: token ' + process.env.TOK); process.exit(3)\"]\n      env: {{ TOK: \"${{{VAR}}}\" }}\n      tools: [run]\n"
        ),
    );
    let path = write(dir.path(), "charter.yaml", &charter);
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--charter", &path, "--data"])
        .arg(dir.path().join("data"))
        .args([
            "--agent-listen",
            "127.0.0.1:0",
            "--operator-listen",
            "127.0.0.2:0",
        ])
        .env(VAR, SECRET)
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_DATA")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(40);
    let seen = loop {
        let text = log.lock().unwrap().clone();
        if text.contains("is not connected after the initial wait") && text.contains("boom") {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let running = child.try_wait().unwrap().is_none();
    child.kill().ok();
    child.wait().ok();
    reader.join().unwrap();
    let text = strip_ansi(&log.lock().unwrap());
    assert!(seen, "{text}");
    assert!(running, "warden serve stopped: {text}");
    assert!(text.contains("server=broken"), "{text}");
    assert!(text.contains("boom: token [REDACTED]"), "{text}");
    assert!(!text.contains(SECRET), "the secret reached the log: {text}");
}

/// `text` without the terminal colour codes of the log.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
