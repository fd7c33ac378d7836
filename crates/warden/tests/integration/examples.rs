//! The examples run as they are: each example's README shows the `warden serve` command that
//! serves it, and that command, run as written (from a directory where `examples/` is the
//! repository's), starts a gateway that answers `/healthz`. Upstream servers that are not on
//! this machine (an organisation's own adapters) are left connecting, as the READMEs say.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use super::common;

use common::{free_port, repo};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A command line: its environment assignments and its arguments.
type CommandLine = (Vec<(String, String)>, Vec<String>);

/// The README's `warden serve` command.
fn serve_command(readme: &str) -> Option<CommandLine> {
    let line = readme
        .lines()
        .find(|l| l.contains("warden serve --charter examples/"))?;
    let mut env = Vec::new();
    let mut words = line.split_whitespace();
    for word in words.by_ref() {
        if word == "warden" {
            break;
        }
        let (name, value) = word.split_once('=')?;
        env.push((name.to_owned(), value.to_owned()));
    }
    Some((env, words.map(str::to_owned).collect()))
}

fn healthz(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn each_example_serves_with_the_command_its_readme_shows() {
    let mut served = 0;
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let readme = std::fs::read_to_string(path.join("README.md")).unwrap();
        let (env, args) = serve_command(&readme)
            .unwrap_or_else(|| panic!("examples/{name}/README.md shows no `warden serve` command"));
        assert!(
            args.iter()
                .any(|a| a == &format!("examples/{name}")
                    || a.starts_with(&format!("examples/{name}/"))),
            "{name}: {args:?}"
        );
        // Run where `examples/` is the repository's, so the command's relative data directory
        // lands in a temporary directory.
        let cwd = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(repo().join("examples"), cwd.path().join("examples")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(&args)
            .envs(env)
            .env("WARDEN_AGENT_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env(
                "WARDEN_OPERATOR_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("NO_COLOR", "1")
            .current_dir(cwd.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut log = Vec::new();
        let agent = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains("Gateway listening.").then(|| {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix("agent="))
                            .map(str::to_owned)
                    });
                    log.push(line);
                    if let Some(addr) = found {
                        break addr.unwrap_or_else(|| panic!("{name}: {log:#?}"));
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("{name}: the gateway did not start: {log:#?}");
                }
            }
        };
        let answer = healthz(&agent);
        assert!(answer.starts_with("HTTP/1.1 200"), "{name}: {answer}");
        // A clean stop (SIGTERM), so the upstream children it spawned are stopped too.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let stop = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > stop {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        served += 1;
    }
    assert!(
        served >= 3,
        "expected at least three examples, served {served}"
    );
}
