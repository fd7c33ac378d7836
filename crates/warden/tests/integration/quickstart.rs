//! The README's quickstart, run exactly as written: every `sh` block after a
//! `<!-- quickstart -->` or `<!-- quickstart: background -->` comment in README.md, in order,
//! one line at a time through `sh -c`, in a fresh folder, with this build's `warden` on a `PATH`
//! that has no `cargo`. A background line (`warden up`) runs until the README says to stop it
//! (Ctrl-C: SIGINT); a foreground line must exit 0. A line's trailing comment that says
//! `prints "TEXT"` is a promise: the line's output must contain TEXT (for a background line,
//! before it counts as started). Then every command `warden up` printed is run as printed.
//!
//! What differs from a person's terminal, and why: the two planes listen on free ports
//! (`WARDEN_AGENT_LISTEN`, `WARDEN_OPERATOR_LISTEN`, `WARDEN_OPERATOR_URL`), not on 8700 and
//! 8701, so parallel tests cannot collide; the folder links the repository's `node_modules`
//! (the README's "installed there" case), so the filesystem server is not downloaded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use super::common;

use common::{free_port, repo};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One marked block of the README.
#[derive(Debug)]
struct Block {
    background: bool,
    lines: Vec<String>,
}

/// The marked `sh` blocks of `readme`, in order. A marker must be followed by a ```sh fence.
fn quickstart_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let background = match line.trim() {
            "<!-- quickstart -->" => false,
            "<!-- quickstart: background -->" => true,
            other => {
                assert!(
                    !other.starts_with("<!-- quickstart"),
                    "README.md:{}: unknown marker `{other}`",
                    n + 1
                );
                continue;
            }
        };
        let fence = lines.find(|(_, l)| !l.trim().is_empty());
        assert!(
            matches!(fence, Some((_, l)) if l.trim() == "```sh"),
            "README.md:{}: a quickstart marker must be followed by a ```sh block",
            n + 1
        );
        let mut block = Block {
            background,
            lines: Vec::new(),
        };
        for (m, l) in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            let l = l.trim();
            assert!(
                !l.ends_with('\\'),
                "README.md:{}: keep each quickstart command on one line",
                m + 1
            );
            if !l.is_empty() && !l.starts_with('#') {
                block.lines.push(l.to_owned());
            }
        }
        blocks.push(block);
    }
    blocks
}

/// The text a line's trailing comment promises it prints: `… # prints "TEXT"`.
fn promised(line: &str) -> Option<String> {
    let comment = &line[line.find(" #")?..];
    let rest = &comment[comment.find("prints \"")? + "prints \"".len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The folder of this build's `warden` first, then the `PATH` without any folder that holds
/// `cargo`: the commands must work with the binary alone.
fn path_without_cargo(bin_dir: &Path) -> String {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let kept = std::env::split_paths(&current).filter(|d| !d.join("cargo").exists());
    let all: Vec<PathBuf> = std::iter::once(bin_dir.to_path_buf()).chain(kept).collect();
    std::env::join_paths(all).unwrap().into_string().unwrap()
}

/// A shell in `dir` with the test's environment.
struct Shell {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Shell {
    fn command(&self, line: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(line).current_dir(&self.dir);
        for (k, _) in std::env::vars() {
            if k.starts_with("WARDEN_") {
                c.env_remove(k);
            }
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs `line` to its end; returns its stdout, asserting it exited 0.
    fn run(&self, line: &str) -> String {
        let out = self.command(line).stdin(Stdio::null()).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "`{line}` exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// A running background line and what it printed.
struct Background {
    line: String,
    child: Child,
    printed: String,
}

impl Background {
    /// Starts `line`; waits (up to 60 s) for the text it promises, else for its first line.
    fn start(shell: &Shell, line: &str) -> Background {
        let mut child = shell
            .command(line)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut started = Background {
            line: line.to_owned(),
            child,
            printed: String::new(),
        };
        let want = promised(line);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    started.printed.push_str(&l);
                    started.printed.push('\n');
                    if want.as_deref().is_none_or(|w| started.printed.contains(w)) {
                        return started;
                    }
                }
                // Dropping `started` stops what it started.
                Err(e) => panic!(
                    "`{line}` did not print {want:?} ({e:?}); it printed:\n{}",
                    started.printed
                ),
            }
        }
    }

    /// The processes the shell runs (the shell itself when it runs none).
    fn targets(&self) -> Vec<String> {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let targets: Vec<String> = children.split_whitespace().map(str::to_owned).collect();
        if targets.is_empty() {
            vec![pid.to_string()]
        } else {
            targets
        }
    }

    fn signal(&self, signal: &str) -> bool {
        let kill = format!("kill -{signal} {}", self.targets().join(" "));
        Command::new("sh")
            .args(["-c", &kill])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Ctrl-C, as the README says: SIGINT to the command the shell runs; it must exit 0.
    fn stop(mut self) {
        assert!(self.signal("INT"), "SIGINT to `{}`", self.line);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "`{}` exited {status:?} on Ctrl-C",
                    self.line
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{}` did not stop within 30 s of Ctrl-C",
                self.line
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    /// A test that failed half way leaves no gateway running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("KILL");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The commands `warden up` printed: indented lines that start with `warden `, and the text
/// after `with: ` when it starts with `warden `.
fn printed_commands(printed: &str) -> Vec<String> {
    printed
        .lines()
        .filter_map(|l| {
            let cmd = match l.split_once("with: ") {
                Some((_, after)) => after,
                None => l.strip_prefix("  ")?,
            }
            .trim();
            cmd.starts_with("warden ").then(|| cmd.to_owned())
        })
        .collect()
}

/// The JSON object printed after `heading` (up to the first blank line).
fn printed_json(printed: &str, heading: &str) -> serde_json::Value {
    let after = &printed[printed.find(heading).expect(heading)..];
    let json: Vec<&str> = after
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    serde_json::from_str(&json.join("\n")).unwrap()
}

/// Runs the stdio configuration `warden up` printed, as an MCP client would: `initialize` must
/// be answered.
fn stdio_configuration_answers(config: &serde_json::Value) {
    let server = &config["mcpServers"]["warden"];
    let command = server["command"].as_str().unwrap();
    assert_eq!(
        Path::new(command).file_name().and_then(|n| n.to_str()),
        Some("warden"),
        "the stdio configuration names the warden binary: {command}"
    );
    assert!(Path::new(command).is_absolute(), "{command}");
    let args: Vec<&str> = server["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mut child = Command::new(command)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"quickstart-test","version":"1"}}}"#;
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{init}").unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let answer = rx.recv_timeout(Duration::from_secs(30));
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let answer = answer.expect("`warden connect` answered initialize");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["id"], 1, "{answer}");
    assert!(answer.get("result").is_some(), "{answer}");
}

#[test]
fn readme_quickstart_runs_as_written() {
    let root = repo();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = quickstart_blocks(&readme);
    assert!(
        blocks
            .iter()
            .any(|b| b.background && b.lines.iter().any(|l| l.starts_with("warden up"))),
        "README.md has no `<!-- quickstart: background -->` block with `warden up`: {blocks:?}"
    );
    assert!(
        blocks.iter().any(|b| !b.background && !b.lines.is_empty()),
        "README.md has no `<!-- quickstart -->` block: {blocks:?}"
    );
    assert!(
        root.join("node_modules/@modelcontextprotocol/server-filesystem")
            .exists(),
        "the npm filesystem server is not installed; run scripts/test.sh (`npm ci`)"
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    std::os::unix::fs::symlink(root.join("node_modules"), dir.join("node_modules")).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_warden"));
    let (agent, operator) = (free_port(), free_port());
    let shell = Shell {
        dir: dir.clone(),
        env: vec![
            ("PATH".into(), path_without_cargo(bin.parent().unwrap())),
            ("NO_COLOR".into(), "1".into()),
            ("WARDEN_AGENT_LISTEN".into(), format!("127.0.0.1:{agent}")),
            (
                "WARDEN_OPERATOR_LISTEN".into(),
                format!("127.0.0.1:{operator}"),
            ),
            (
                "WARDEN_OPERATOR_URL".into(),
                format!("http://127.0.0.1:{operator}"),
            ),
        ],
    };
    let which = shell.run("command -v warden");
    assert_eq!(Path::new(which.trim()), bin, "`warden` is this build");
    assert!(
        shell.command("command -v cargo").status().unwrap().code() != Some(0),
        "cargo must not be on the test's PATH"
    );

    let mut running: Vec<Background> = Vec::new();
    for block in &blocks {
        for line in &block.lines {
            if block.background {
                running.push(Background::start(&shell, line));
            } else {
                let out = shell.run(line);
                if let Some(want) = promised(line) {
                    assert!(
                        out.contains(&want),
                        "`{line}` promises to print {want:?}; it printed:\n{out}"
                    );
                }
            }
        }
    }

    // Every command `warden up` printed works as printed, with the binary alone.
    let up = running
        .iter()
        .find(|b| b.line.starts_with("warden up"))
        .unwrap();
    let commands = printed_commands(&up.printed);
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("warden approvals list"))
            && commands
                .iter()
                .any(|c| c.starts_with("warden audit verify")),
        "warden up printed: {}",
        up.printed
    );
    for command in &commands {
        if command.starts_with("warden approvals approve ID") {
            // No request is pending: the printed command must reach the operator plane with the
            // printed credential and be refused for the request id alone.
            let line = command.replacen(" ID ", " 0190f0e0-0000-7000-8000-000000000000 ", 1);
            let out = shell.command(&line).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "`{line}`: {stderr}");
            assert!(
                stderr.contains("404 Not Found: no approval request"),
                "`{line}`: {stderr}"
            );
        } else {
            shell.run(command);
        }
    }
    assert!(
        !up.printed.contains("is not on the PATH"),
        "warden up found itself on the PATH: {}",
        up.printed
    );
    stdio_configuration_answers(&printed_json(
        &up.printed,
        "MCP client configuration (stdio",
    ));

    for background in running {
        background.stop();
    }
    // Stopped cleanly: the chain is whole.
    shell.run("warden audit verify --data warden-data");
}

#[test]
fn quickstart_markers_and_promises_are_read() {
    let readme = "x\n<!-- quickstart: background -->\n```sh\nwarden up   # ready when it prints \"Press Ctrl-C\"\n```\n\n<!-- quickstart -->\n\n```sh\n# a comment\nwarden session list\n\n```\n";
    let blocks = quickstart_blocks(readme);
    assert_eq!(blocks.len(), 2);
    assert!(blocks[0].background);
    assert_eq!(blocks[1].lines, ["warden session list"]);
    assert_eq!(
        promised(&blocks[0].lines[0]).as_deref(),
        Some("Press Ctrl-C")
    );
    assert_eq!(promised("warden session list"), None);
    assert_eq!(
        printed_commands(
            "warden is up.\n  warden approvals list --token t\nVerify it with: warden audit verify --data d\nother"
        ),
        [
            "warden approvals list --token t",
            "warden audit verify --data d"
        ]
    );
}
