//! Crash safety of the result records, with real binaries: under a load of concurrent MCP
//! calls, `warden serve` is killed with SIGKILL at a random point, then started again, several
//! rounds over one ledger (SQLite; one round on PostgreSQL). Afterwards every call the client
//! saw answered has its attempt, decision and forwarding in the ledger, every forwarded action
//! has exactly one `action_result` (its real result, or `unknown` from the start-up after the
//! kill), and `warden audit verify` (the real binary) passes.
//!
//! The kill points come from a seed, printed; `WARDEN_CRASH_SEED=N` replays a run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

use super::common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use warden_audit::{LedgerReader, LedgerSource, Record};
use warden_core::InstanceId;
use warden_testkit::postgres::TestDb;

/// Rounds of load, kill and restart on SQLite.
const ROUNDS: usize = 5;
/// Concurrent callers.
const WORKERS: usize = 8;

/// A small deterministic generator (xorshift64*), so a seed replays the kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    let seed = std::env::var("WARDEN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    eprintln!("crash test seed: {seed} (replay with WARDEN_CRASH_SEED={seed})");
    seed
}

/// One `warden serve` and its planes.
struct Serve {
    child: tokio::process::Child,
    agent: String,
    operator: String,
}

/// `warden serve` on `data` (with `--store URL --instance gw-a` on PostgreSQL), once ready.
async fn serve(data: &Path, charter: &Path, store: Option<&str>) -> Serve {
    let agent = format!("127.0.0.1:{}", common::free_port());
    let operator = format!("127.0.0.1:{}", common::free_port());
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(["serve", "--charter"])
        .arg(charter)
        .arg("--data")
        .arg(data)
        .args(["--agent-listen", &agent, "--operator-listen", &operator]);
    if let Some(store) = store {
        cmd.args(["--store", store, "--instance", "gw-a"]);
    }
    let child = cmd
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
    assert!(ready, "warden serve is not ready after a minute");
    Serve {
        child,
        agent,
        operator,
    }
}

/// A session for `agent-1`, opened with the bootstrap operator token in `data`.
async fn session(http: &reqwest::Client, gw: &Serve, data: &Path) -> String {
    let admin = std::fs::read_to_string(data.join(warden_gateway::OPERATOR_TOKEN_FILE)).unwrap();
    let opened: Value = http
        .post(format!("http://{}/v1/sessions", gw.operator))
        .bearer_auth(admin.trim())
        .json(&json!({ "agent": "agent-1", "user": "alice", "ttl": "1h" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    opened["token"].as_str().unwrap().to_owned()
}

/// A `tools/call` of `echo.echo` with `text` at `agent`: whether it was acknowledged.
async fn call(http: &reqwest::Client, agent: &str, token: &str, text: &str) -> bool {
    warden_testkit::planes::echo_acknowledged(http, agent, token, text).await
}

/// Load on `gw` from [`WORKERS`] callers until SIGKILL, `delay_ms` after the first answer;
/// returns the texts of the answered calls.
async fn load_then_kill(gw: Serve, token: &str, round: usize, delay_ms: u64) -> Vec<String> {
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (http, agent, token, stop, acked) = (
            http.clone(),
            gw.agent.clone(),
            token.to_owned(),
            stop.clone(),
            acked.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut k = 0usize;
            while !stop.load(Ordering::Acquire) {
                let text = format!("r{round}-w{w}-{k}");
                k += 1;
                if call(&http, &agent, &token, &text).await {
                    acked.lock().unwrap().push(text);
                } else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    while acked.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    // SIGKILL, with calls in flight.
    let mut gw = gw;
    gw.child.start_kill().unwrap();
    gw.child.wait().await.unwrap();
    stop.store(true, Ordering::Release);
    for w in workers {
        w.await.unwrap();
    }
    std::mem::take(&mut *acked.lock().unwrap())
}

/// Stops `gw` as asked (SIGTERM).
async fn stop(gw: Serve) {
    let mut gw = gw;
    let pid = gw.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), gw.child.wait())
        .await
        .expect("warden stops within 30 s of SIGTERM")
        .unwrap();
}

/// Every acknowledged call has its attempt, decision and forwarding; every forwarded action
/// exactly one result. Returns how many results are `unknown`.
fn check(records: &[Record], acked: &[String]) -> usize {
    let of_kind = |kind: &'static str| records.iter().filter(move |r| r.kind.as_str() == kind);
    let attempts: HashMap<&str, &Value> = of_kind("action_attempted")
        .filter_map(|r| {
            Some((
                r.payload["arguments"]["text"].as_str()?,
                &r.payload["action"],
            ))
        })
        .collect();
    for text in acked {
        let action = attempts
            .get(text.as_str())
            .unwrap_or_else(|| panic!("answered call `{text}` has no attempt in the ledger"));
        for kind in ["action_decided", "action_forwarded"] {
            assert!(
                of_kind(kind).any(|r| &&r.payload["action"] == action),
                "answered call `{text}` has no {kind}"
            );
        }
    }
    let mut results: HashMap<&Value, Vec<&str>> = HashMap::new();
    for r in of_kind("action_result") {
        results
            .entry(&r.payload["action"])
            .or_default()
            .push(r.payload["status"].as_str().unwrap_or_default());
    }
    let mut unknown = 0;
    for forwarded in of_kind("action_forwarded") {
        let action = &forwarded.payload["action"];
        let got = results.get(action).cloned().unwrap_or_default();
        assert_eq!(
            got.len(),
            1,
            "forwarded action {action} has {} results: {got:?}",
            got.len()
        );
        if got[0] == "unknown" {
            unknown += 1;
        }
    }
    unknown
}

async fn records(source: &LedgerSource) -> Vec<Record> {
    let reader = LedgerReader::open_source(source).await.unwrap();
    let records = reader.range(1, 10_000_000).await.unwrap();
    reader.close().await;
    records
}

fn verify(args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify"])
        .args(args)
        .env_remove("WARDEN_STORE")
        .env_remove("WARDEN_DATA")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "warden audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_then_restart_leaves_every_forwarded_action_with_one_result() {
    let mut rng = Rng(seed());
    let (echo_url, _calls) = warden_testkit::echo::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let charter = dir.path().join("charter.yaml");
    std::fs::write(&charter, common::echo_charter(&echo_url)).unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    let mut acked = Vec::new();
    for round in 0..ROUNDS {
        let gw = serve(&data, &charter, None).await;
        let token = session(&http, &gw, &data).await;
        let delay_ms = rng.below(400);
        eprintln!("round {round}: SIGKILL {delay_ms} ms after the first answer");
        acked.extend(load_then_kill(gw, &token, round, delay_ms).await);
    }
    // The last start closes what the last kill left open; then a clean stop.
    let gw = serve(&data, &charter, None).await;
    stop(gw).await;
    let records = records(&LedgerSource::Dir(data.clone())).await;
    let unknown = check(&records, &acked);
    eprintln!(
        "{} answered calls, {} records, {unknown} results unknown",
        acked.len(),
        records.len()
    );
    assert!(!acked.is_empty());
    verify(&["--data", data.to_str().unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_on_postgres_then_restart_closes_every_forwarded_action() {
    let mut rng = Rng(seed());
    let db = TestDb::new().await.unwrap();
    let (echo_url, _calls) = warden_testkit::echo::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let charter = dir.path().join("charter.yaml");
    std::fs::write(&charter, common::echo_charter(&echo_url)).unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    let gw = serve(&data, &charter, Some(db.url())).await;
    let token = session(&http, &gw, &data).await;
    let delay_ms = rng.below(400);
    eprintln!("SIGKILL {delay_ms} ms after the first answer");
    let acked = load_then_kill(gw, &token, 0, delay_ms).await;
    let gw = serve(&data, &charter, Some(db.url())).await;
    stop(gw).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(db.url())
        .await
        .unwrap();
    let source = LedgerSource::Postgres {
        pool: pool.clone(),
        instance: Some(InstanceId::parse("gw-a").unwrap()),
    };
    let records = records(&source).await;
    pool.close().await;
    let unknown = check(&records, &acked);
    eprintln!(
        "{} answered calls, {} records, {unknown} results unknown",
        acked.len(),
        records.len()
    );
    assert!(!acked.is_empty());
    verify(&["--store", db.url(), "--instance", "gw-a"]);
}
