//! `warden audit keygen` and `warden audit watch` as the real binary: the key pair a gateway
//! signs its checkpoints with, and the monitor that follows them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use super::common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_audit::RecordKind;
use warden_audit::checkpoint::{Checkpoint, SigningKey, VerifierKey};
use warden_audit::merkle;
use warden_core::SystemClock;
use warden_gateway::config::checkpoints::CheckpointConfig;
use warden_gateway::{Gateway, RunningGateway};
use warden_testkit::harness::Harness;

fn warden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .output()
        .expect("run warden")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_writes_a_private_key_0600_and_its_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("checkpoint.key");
    let out = warden(&[
        "audit",
        "keygen",
        "--out",
        path_str(&key_path),
        "--name",
        "ops.example/warden",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let vkey = VerifierKey::parse(printed.trim()).unwrap();
    assert_eq!(vkey.name(), "ops.example/warden");
    // The private key never reaches stdout or stderr.
    let private = fs::read_to_string(&key_path).unwrap();
    // `PRIVATE+KEY+<name>+<key id>+<base64 seed>`: the seed's base64 may itself hold a `+`.
    let seed = private.trim().splitn(5, '+').nth(4).unwrap();
    assert!(!printed.contains(seed) && !stderr(&out).contains(seed));
    assert_eq!(
        fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The .pub file holds the same verifier key, and the pair signs and verifies.
    let pub_text = fs::read_to_string(dir.path().join("checkpoint.key.pub")).unwrap();
    assert_eq!(pub_text.trim(), printed.trim());
    let key = SigningKey::load(&key_path).unwrap();
    let checkpoint = Checkpoint {
        origin: "warden/ledger/test".to_owned(),
        size: 1,
        root: merkle::leaf_hash(b"x"),
        time: None,
    };
    let from_file =
        VerifierKey::from_arg(path_str(&dir.path().join("checkpoint.key.pub"))).unwrap();
    assert_eq!(
        Checkpoint::open(&key.sign(&checkpoint), &from_file).unwrap(),
        checkpoint
    );
}

#[test]
fn keygen_never_overwrites_and_checks_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("checkpoint.key");
    let first = warden(&["audit", "keygen", "--out", path_str(&key_path)]);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = fs::read(&key_path).unwrap();
    let again = warden(&["audit", "keygen", "--out", path_str(&key_path)]);
    assert_eq!(again.status.code(), Some(64));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(fs::read(&key_path).unwrap(), before);

    // Only the .pub is there: still refused, and no private key is left behind.
    let lone = dir.path().join("lone.key");
    fs::write(dir.path().join("lone.key.pub"), "x").unwrap();
    let out = warden(&["audit", "keygen", "--out", path_str(&lone)]);
    assert_eq!(out.status.code(), Some(64));
    assert!(!lone.exists());

    let bad = warden(&[
        "audit",
        "keygen",
        "--out",
        path_str(&dir.path().join("bad.key")),
        "--name",
        "has space",
    ]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(
        stderr(&bad).contains("cannot name a key"),
        "{}",
        stderr(&bad)
    );
    assert!(!dir.path().join("bad.key").exists());
}

// ---- `warden audit watch` against in-process gateways (the testkit's harness) ----

const TOKEN_VAR: &str = "WARDEN_WATCH_TEST_TOKEN";

fn echo_charter(echo_url: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: tests, serves: the test suite }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
actions:
  rules:
    - {{ id: echo-hello, tool: echo.echo, tier: autonomous }}
authority:
  roles: [{{ id: ops, approve: [default] }}]
  principals: [{{ id: alice, roles: [ops] }}]
"#
    )
}

/// A key pair in a directory of its own: the private key file and the `.pub` file.
fn keys() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("checkpoint.key");
    SigningKey::generate("test.example/warden")
        .unwrap()
        .write_new(&key)
        .unwrap();
    let public = dir.path().join("checkpoint.key.pub");
    fs::write(
        &public,
        format!("{}\n", SigningKey::load(&key).unwrap().verifier()),
    )
    .unwrap();
    (dir, key, public)
}

/// A gateway signing with `key` every 5 records (and `origin`, when given).
async fn gateway(key: &Path, origin: Option<&str>) -> Harness {
    let key = key.to_owned();
    let origin = origin.map(str::to_owned);
    Harness::builder(echo_charter)
        .configure(move |c| {
            c.checkpoints = Some(CheckpointConfig {
                every_records: 5,
                every: Duration::from_secs(3600),
                origin,
                ..CheckpointConfig::with_key(key)
            });
        })
        .start()
        .await
}

/// The sizes of the ledger's signed checkpoints, from its records' payloads.
async fn checkpoint_sizes(h: &Harness) -> Vec<u64> {
    h.records()
        .await
        .iter()
        .filter(|r| r.kind == RecordKind::CheckpointSigned)
        .map(|r| r.payload["size"].as_u64().unwrap())
        .collect()
}

/// Makes `calls` calls, then waits (polling, at most 20 s) until a checkpoint larger than
/// `than` was signed.
async fn grow(h: &Harness, calls: usize, than: u64) -> u64 {
    let (_session, token) = h.open_session("1h").await;
    for i in 0..calls {
        h.call(&token, &format!("hello {i}")).await;
    }
    let started = Instant::now();
    loop {
        let largest = checkpoint_sizes(h).await.into_iter().max().unwrap_or(0);
        if largest > than {
            return largest;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no checkpoint past {than}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the watcher as the real binary; its exit code and its JSON lines.
async fn watch(
    url: &str,
    pubkey: &str,
    state: &Path,
    token: &str,
    extra: &[&str],
) -> (i32, Vec<Value>) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "audit",
            "watch",
            "--url",
            url,
            "--pubkey",
            pubkey,
            "--token-env",
            TOKEN_VAR,
        ])
        .arg("--state")
        .arg(state)
        .args(extra)
        .env(TOKEN_VAR, token)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the watcher ends")
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

fn url(h: &Harness) -> String {
    format!("http://{}", h.operator_addr)
}

/// Starts a gateway on `h`'s configuration, data directory and addresses again.
async fn start_again(h: &Harness) -> RunningGateway {
    let mut config = h.config.clone();
    config.agent_listen = h.agent_addr;
    config.operator_listen = h.operator_addr;
    Gateway::start(config, Arc::new(SystemClock)).await.unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_is_ok_as_the_ledger_grows_and_keeps_its_state() {
    let (_keys, key, public) = keys();
    let h = gateway(&key, None).await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("watch.json");
    let pubkey = path_str(&public).to_owned();
    // An observer's credential is enough.
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            "/v1/operator-tokens",
            &h.operator_token,
            Some(serde_json::json!({ "name": "watcher", "role": "observer" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let observer = body["token"].as_str().unwrap().to_owned();

    let first = grow(&h, 3, 0).await;
    let (code, lines) = watch(&url(&h), &pubkey, &state, &observer, &["--once"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(lines[0]["previous"], Value::Null);
    let seen = lines[0]["size"].as_u64().unwrap();
    assert!(seen >= first);
    assert!(
        fs::read_to_string(&state)
            .unwrap()
            .contains("\u{2014} test.example/warden")
    );

    // The ledger grows: the next check proves the new tree extends the one seen.
    grow(&h, 6, seen).await;
    let (code, lines) = watch(&url(&h), &pubkey, &state, &observer, &["--once"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines[0]["status"], "ok", "{lines:?}");
    assert_eq!(lines[0]["previous"]["size"], seen);
    assert!(lines[0]["size"].as_u64().unwrap() > seen);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_a_rollback_to_an_older_copy_of_the_ledger() {
    let (_keys, key, public) = keys();
    let h = gateway(&key, None).await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("watch.json");
    let pubkey = path_str(&public).to_owned();
    grow(&h, 3, 0).await;
    // A copy of the ledger directory as it is after a clean stop.
    h.take().shutdown().await;
    let old_copy = state_dir.path().join("old-data");
    copy_dir(&h.data, &old_copy);
    // The gateway runs on, the ledger grows, and the watcher sees it.
    let gw = start_again(&h).await;
    let before = checkpoint_sizes(&h).await.into_iter().max().unwrap();
    grow(&h, 12, before + 8).await;
    let (code, lines) = watch(&url(&h), &pubkey, &state, &h.operator_token, &["--once"]).await;
    assert_eq!(
        (code, lines[0]["status"].as_str()),
        (0, Some("ok")),
        "{lines:?}"
    );
    let seen = lines[0]["size"].as_u64().unwrap();
    // The ledger directory is replaced by the older copy, and the gateway restarted.
    gw.shutdown().await;
    fs::remove_dir_all(&h.data).unwrap();
    copy_dir(&old_copy, &h.data);
    let gw = start_again(&h).await;
    let (code, lines) = watch(&url(&h), &pubkey, &state, &h.operator_token, &["--once"]).await;
    assert_eq!(code, 3, "{lines:?}");
    assert_eq!(lines[0]["status"], "rollback", "{lines:?}");
    assert_eq!(lines[0]["previous"]["size"], seen);
    assert!(lines[0]["size"].as_u64().unwrap() < seen);
    // The state still holds the larger checkpoint: the rollback is reported again.
    let (code, lines) = watch(&url(&h), &pubkey, &state, &h.operator_token, &["--once"]).await;
    assert_eq!((code, lines[0]["status"].as_str()), (3, Some("rollback")));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_a_fork_when_another_ledger_signed_by_the_same_key_answers() {
    let (_keys, key, public) = keys();
    let origin = Some("test.example/ledger");
    let first = gateway(&key, origin).await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("watch.json");
    let pubkey = path_str(&public).to_owned();
    let seen = grow(&first, 3, 0).await;
    let (code, lines) = watch(
        &url(&first),
        &pubkey,
        &state,
        &first.operator_token,
        &["--once"],
    )
    .await;
    assert_eq!(
        (code, lines[0]["status"].as_str()),
        (0, Some("ok")),
        "{lines:?}"
    );
    let seen = lines[0]["size"].as_u64().unwrap().max(seen);

    // Another ledger, the same key and origin, and more records: its tree does not extend
    // the one seen.
    let other = gateway(&key, origin).await;
    grow(&other, 12, seen).await;
    let (code, lines) = watch(
        &url(&other),
        &pubkey,
        &state,
        &other.operator_token,
        &["--once"],
    )
    .await;
    assert_eq!(code, 3, "{lines:?}");
    assert_eq!(lines[0]["status"], "fork", "{lines:?}");
    assert!(
        lines[0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not extend"),
        "{lines:?}"
    );

    // Without --once the watcher exits 3 on a fork too, after its one line.
    let (code, lines) = watch(
        &url(&other),
        &pubkey,
        &state,
        &other.operator_token,
        &["--interval", "1s"],
    )
    .await;
    assert_eq!(code, 3, "{lines:?}");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["status"], "fork");

    // Another ledger with its own default origin: a fork as well (another log, same key).
    let third = gateway(&key, None).await;
    grow(&third, 1, 0).await;
    let (code, lines) = watch(
        &url(&third),
        &pubkey,
        &state,
        &third.operator_token,
        &["--once"],
    )
    .await;
    assert_eq!(
        (code, lines[0]["status"].as_str()),
        (3, Some("fork")),
        "{lines:?}"
    );
    assert!(
        lines[0]["reason"].as_str().unwrap().contains("origin"),
        "{lines:?}"
    );
    first.stop().await;
    other.stop().await;
    third.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_refuses_a_wrong_key_and_reports_an_unreachable_gateway() {
    let (_keys, key, _public) = keys();
    let h = gateway(&key, None).await;
    grow(&h, 1, 0).await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("watch.json");
    let wrong = SigningKey::generate("test.example/warden")
        .unwrap()
        .verifier()
        .to_string();
    let (code, lines) = watch(&url(&h), &wrong, &state, &h.operator_token, &["--once"]).await;
    assert_eq!(code, 3, "{lines:?}");
    assert_eq!(lines[0]["status"], "bad_signature", "{lines:?}");
    assert!(!state.exists(), "nothing is accepted from a bad signature");

    // Nobody listening.
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let (code, lines) = watch(&closed, &wrong, &state, "wo_x", &["--once"]).await;
    assert_eq!(code, 74, "{lines:?}");
    assert_eq!(lines[0]["status"], "unreachable");

    // A state file the key does not verify stops the watcher before it checks anything.
    fs::write(&state, "{\"note\": \"forged\\n\\n\u{2014} x AAAA\\n\"}").unwrap();
    let (code, lines) = watch(&url(&h), &wrong, &state, &h.operator_token, &["--once"]).await;
    assert_eq!(code, 64, "{lines:?}");
    assert!(lines.is_empty());
    h.stop().await;
}

// ---- `warden serve` with `[checkpoints]`, as a process ----

/// `warden serve --config FILE` on free loopback ports, in front of an echo server, with the
/// environment `env`; stderr piped.
async fn serve(dir: &Path, config: &str, env: &[(&str, &str)]) -> tokio::process::Child {
    let (echo_url, _calls) = warden_testkit::echo::spawn().await.unwrap();
    let charter = dir.join("charter.yaml");
    fs::write(&charter, echo_charter(&echo_url)).unwrap();
    let config_path = dir.join("warden.toml");
    fs::write(&config_path, config).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(["serve", "--charter"])
        .arg(&charter)
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config_path)
        .args([
            "--agent-listen",
            &format!("127.0.0.1:{}", common::free_port()),
            "--operator-listen",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .env_remove("WARDEN_CHECKPOINT_KEY")
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_LOG_FORMAT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_checkpoint_key_others_may_read() {
    let dir = tempfile::tempdir().unwrap();
    let (_keys, key, _public) = keys();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let config = format!("[checkpoints]\nkey = \"{}\"\n", key.display());
    let child = serve(dir.path(), &config, &[]).await;
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("serve refuses within a minute")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("checkpoint signing key"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    // The key's content is never shown.
    let private = fs::read_to_string(&key).unwrap();
    assert!(!stderr.contains(private.trim().splitn(5, '+').nth(4).unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_signs_with_the_key_from_the_environment_and_ends_with_a_checkpoint() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (_keys, key, public) = keys();
    // The section sets the rhythm; the key comes from the environment.
    let config = "[checkpoints]\nevery_records = 1000\nevery = \"1h\"\n";
    let key_env = key.to_str().unwrap().to_owned();
    // A section without a key and no variable is an error, naming the setting.
    let out = serve(dir.path(), config, &[])
        .await
        .wait_with_output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("checkpoints.key"));

    let dir = tempfile::tempdir().unwrap();
    let mut child = serve(dir.path(), config, &[("WARDEN_CHECKPOINT_KEY", &key_env)]).await;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Gateway listening") {
                return;
            }
        }
        panic!("warden serve ended before listening");
    });
    listening
        .await
        .expect("warden serve listens within a minute");
    // The start-up checkpoint is recorded.
    let data = dir.path().join("data");
    let started = Instant::now();
    loop {
        let reader = warden_audit::LedgerReader::open(&data).await.unwrap();
        let found = reader
            .newest_of_kinds(&["checkpoint_signed"], None, 1)
            .await
            .unwrap();
        reader.close().await;
        if !found.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("serve stops within a minute")
        .unwrap();
    assert!(status.success(), "{status}");
    // The ledger ends with a checkpoint of every record before it, which the `.pub` verifies.
    let reader = warden_audit::LedgerReader::open(&data).await.unwrap();
    let last = reader.tail(1).await.unwrap().pop().unwrap();
    assert_eq!(last.kind, RecordKind::CheckpointSigned);
    let vkey = VerifierKey::from_arg(path_str(&public)).unwrap();
    let checkpoint = Checkpoint::from_record_payload(&last.payload, &vkey).unwrap();
    assert_eq!(checkpoint.size, last.seq - 1);
    assert_eq!(
        reader.tree_root(checkpoint.size).await.unwrap(),
        checkpoint.root
    );
    reader.close().await;
}
