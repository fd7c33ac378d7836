//! A fleet of real `warden serve --store` processes on one PostgreSQL database (a throwaway
//! one, see `warden_testkit::postgres`): under load one instance is killed with SIGKILL
//! mid-call, and every call either instance acknowledged is in the store with its attempt,
//! decision and forwarding, and `warden audit verify --store URL --instance ID` (the real
//! binary) passes for both chains; and a record changed in the store is caught by the same
//! command for that instance only; and an instance started with another approval key than
//! the fleet's exits 64, saying what to do, without showing a key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

use super::common;

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use warden_core::InstanceId;
use warden_testkit::postgres::TestDb;

/// One `warden serve --store URL --instance ID` and its planes.
struct Serve {
    child: tokio::process::Child,
    agent: String,
    operator: String,
}

async fn serve(dir: &Path, charter: &Path, store: &str, instance: &str) -> Serve {
    // Every instance after the first holds the first one's approval key (the fleet's).
    if instance != "gw-a" {
        warden_testkit::fleet::share_approval_key(&dir.join("gw-a"), &dir.join(instance));
    }
    let agent = format!("127.0.0.1:{}", common::free_port());
    let operator = format!("127.0.0.1:{}", common::free_port());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--charter"])
        .arg(charter)
        .arg("--data")
        .arg(dir.join(instance))
        .args(["--store", store, "--instance", instance])
        .args(["--agent-listen", &agent, "--operator-listen", &operator])
        .env_remove("WARDEN_STORE")
        .env_remove("WARDEN_INSTANCE")
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_CHECKPOINT_KEY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = warden_testkit::planes::wait_until_ready(
        &reqwest::Client::new(),
        &agent,
        Duration::from_secs(60),
    )
    .await;
    assert!(ready, "{instance} is not ready after a minute");
    Serve {
        child,
        agent,
        operator,
    }
}

/// `warden audit verify --store URL --instance ID`.
fn verify(store: &str, instance: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--store", store, "--instance", instance])
        .env_remove("WARDEN_STORE")
        .env_remove("WARDEN_DATA")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `tools/call` of `echo.echo` with `text` at `agent`: whether it was acknowledged.
async fn call(http: &reqwest::Client, agent: &str, token: &str, text: &str) -> bool {
    warden_testkit::planes::echo_acknowledged(http, agent, token, text).await
}

async fn chain(url: &str, instance: &str) -> Vec<warden_audit::Record> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let reader = warden_audit::LedgerReader::open_postgres(
        pool.clone(),
        Some(InstanceId::parse(instance).unwrap()),
    )
    .await
    .unwrap();
    let records = reader.range(1, 1_000_000).await.unwrap();
    reader.close().await;
    pool.close().await;
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_mid_call_loses_no_acknowledged_call_and_both_chains_verify() {
    let db = TestDb::new().await.unwrap();
    let (echo_url, _calls) = warden_testkit::echo::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let charter = dir.path().join("charter.yaml");
    std::fs::write(&charter, common::echo_charter(&echo_url)).unwrap();
    let a = serve(dir.path(), &charter, db.url(), "gw-a").await;
    let b = serve(dir.path(), &charter, db.url(), "gw-b").await;
    let admin = std::fs::read_to_string(
        dir.path()
            .join("gw-a")
            .join(warden_gateway::OPERATOR_TOKEN_FILE),
    )
    .unwrap()
    .trim()
    .to_owned();
    assert!(
        !dir.path()
            .join("gw-b")
            .join(warden_gateway::OPERATOR_TOKEN_FILE)
            .exists(),
        "the second instance made a bootstrap token of its own"
    );
    let http = reqwest::Client::new();
    // Opened on A, used on both.
    let opened: Value = http
        .post(format!("http://{}/v1/sessions", a.operator))
        .bearer_auth(&admin)
        .json(&json!({ "agent": "agent-1", "user": "alice", "ttl": "1h" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = opened["token"].as_str().unwrap().to_owned();

    let planes = [a.agent.clone(), b.agent.clone()];
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(usize, String)>::new()));
    let mut workers = Vec::new();
    for w in 0..6usize {
        let (http, planes, token, stop, acked) = (
            http.clone(),
            planes.clone(),
            token.clone(),
            stop.clone(),
            acked.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut k = 0usize;
            while !stop.load(Ordering::Acquire) {
                let i = (w + k) % 2;
                let text = format!("w{w}-{k}");
                k += 1;
                if call(&http, &planes[i], &token, &text).await {
                    acked.lock().unwrap().push((i, text));
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    let count = |i: usize| {
        acked
            .lock()
            .unwrap()
            .iter()
            .filter(|(j, _)| *j == i)
            .count()
    };
    while count(1) < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL, with calls in flight on B.
    let mut b = b;
    b.child.start_kill().unwrap();
    b.child.wait().await.unwrap();
    let on_a = count(0);
    while count(0) < on_a + 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Release);
    for w in workers {
        w.await.unwrap();
    }
    // A stops as asked.
    let mut a = a;
    let pid = a.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), a.child.wait())
        .await
        .expect("A stops within 30 s of SIGTERM")
        .unwrap();

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    for (i, instance) in ["gw-a", "gw-b"].into_iter().enumerate() {
        let records = chain(db.url(), instance).await;
        for (_, text) in acked.iter().filter(|(j, _)| *j == i) {
            let attempt = records
                .iter()
                .find(|r| {
                    r.kind.as_str() == "action_attempted" && r.payload["arguments"]["text"] == *text
                })
                .unwrap_or_else(|| {
                    panic!("acknowledged call `{text}` is not in {instance}'s chain")
                });
            for kind in ["action_decided", "action_forwarded"] {
                assert!(
                    records.iter().any(|r| r.kind.as_str() == kind
                        && r.payload["action"] == attempt.payload["action"]),
                    "acknowledged call `{text}` has no {kind} in {instance}'s chain"
                );
            }
        }
        let out = verify(db.url(), instance);
        assert!(out.status.success(), "{instance}: {}", text(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_checks_each_instance_chain_and_catches_a_changed_record() {
    let db = TestDb::new().await.unwrap();
    let fleet = warden_testkit::fleet::Fleet::start(3, common::echo_charter, db.url()).await;
    let (_, token) = fleet.instances[0].open_session("1h").await;
    for (i, gw) in fleet.instances.iter().enumerate() {
        for k in 0..3 {
            // Words no id, hash or time in a record can hold, so the change below finds one.
            let answer = gw.call(&token, &format!("call {i}-{k}")).await;
            assert_ne!(answer["result"]["isError"], json!(true), "{answer}");
        }
    }
    fleet.stop().await;
    for instance in ["gw-a", "gw-b", "gw-c"] {
        let out = verify(db.url(), instance);
        assert!(out.status.success(), "{instance}: {}", text(&out));
    }
    // The password of a URL is never printed (the test cluster trusts any).
    let with_password = db.url().replacen("warden@", "warden:hunter2@", 1);
    let out = verify(&with_password, "gw-a");
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));

    // One payload of B's chain changed in place: B fails, A and C still pass.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url())
        .await
        .unwrap();
    let changed = sqlx::query(
        "UPDATE ledger_records SET payload = replace(payload, 'call 1-1', 'call 1-9') WHERE instance = 'gw-b' AND kind = 'action_attempted' AND payload LIKE '%call 1-1%'",
    )
    .execute(&mut conn)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(changed, 1);
    let out = verify(db.url(), "gw-b");
    assert!(
        !out.status.success(),
        "a changed record passed: {}",
        text(&out)
    );
    for instance in ["gw-a", "gw-c"] {
        let out = verify(db.url(), instance);
        assert!(out.status.success(), "{instance}: {}", text(&out));
    }
    // An instance with no chain is an error, not an empty success.
    let out = verify(db.url(), "gw-nobody");
    assert!(!out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_another_approval_key_exits_64_without_showing_a_key() {
    let db = TestDb::new().await.unwrap();
    let (echo_url, _calls) = warden_testkit::echo::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let charter = dir.path().join("charter.yaml");
    std::fs::write(&charter, common::echo_charter(&echo_url)).unwrap();
    let mut a = serve(dir.path(), &charter, db.url(), "gw-a").await;
    // Its own data directory, its own key (made at its first start).
    let agent = format!("127.0.0.1:{}", common::free_port());
    let operator = format!("127.0.0.1:{}", common::free_port());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--charter"])
        .arg(&charter)
        .arg("--data")
        .arg(dir.path().join("gw-b"))
        .args(["--store", db.url(), "--instance", "gw-b"])
        .args(["--agent-listen", &agent, "--operator-listen", &operator])
        .env_remove("WARDEN_STORE")
        .env_remove("WARDEN_INSTANCE")
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_CHECKPOINT_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(64), "{shown}");
    assert!(shown.contains("copy the `approval.key`"), "{shown}");
    for instance in ["gw-a", "gw-b"] {
        let key = std::fs::read_to_string(dir.path().join(instance).join("approval.key")).unwrap();
        assert!(
            !shown.contains(key.trim()),
            "the message shows {instance}'s key: {shown}"
        );
    }
    a.child.kill().await.unwrap();
}
