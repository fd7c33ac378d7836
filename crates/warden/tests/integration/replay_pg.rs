//! `warden replay --store URL --instance ID` as the real binary, against a fleet's ledger in a
//! real PostgreSQL (`warden_testkit::postgres`): the same chain written to a data directory
//! and to an instance of the store replays to the same report; the other instance's chain is
//! not read; the store is only read; and what names no single chain is refused with 64
//! (no `--instance`, an unknown one, `--data` beside a store), the URL's password never
//! echoed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::Row as _;
use time::macros::datetime;
use warden_audit::{Ledger, LedgerConfig, NewRecord, RecordKind};
use warden_core::store::StoreLocation;
use warden_core::{InstanceId, ManualClock};
use warden_session::state_db::postgres::{self, PoolBounds};
use warden_testkit::postgres::TestDb;

const LIVE: &str = r#"version: 1
identity: { id: agent-1, name: Agent, purpose: tests, serves: the replay tests }
inventory:
  servers:
    - { id: echo, url: "http://127.0.0.1:9/mcp", tools: [echo] }
actions:
  rules:
    - { id: hello, tool: echo.echo, tier: autonomous }
"#;

/// `echo.echo` prohibited: every recorded allow becomes a denial.
fn tightened() -> String {
    LIVE.replace("tier: autonomous", "tier: prohibited")
}

/// A session of `agent-1` for alice with `n` allowed `echo.echo` calls, as the governor
/// records them (the text of each call tagged with `tag`).
fn history(tag: &str, n: u32) -> Vec<NewRecord> {
    let charter = "blake3:".to_owned() + &"0".repeat(64);
    let mut batch = vec![
        NewRecord::new(
            None,
            RecordKind::CharterLoaded,
            json!({ "charter": charter, "agent": "agent-1", "files": ["charter.yaml"], "rules": 1 }),
        ),
        NewRecord::new(
            Some("s1"),
            RecordKind::SessionOpened,
            json!({ "session": "s1", "agent": "agent-1", "principal": "alice", "roles": [],
                    "task": "replay test", "by": "admin" }),
        ),
    ];
    for i in 0..n {
        let action = format!("{tag}-{i}");
        batch.push(NewRecord::new(
            Some("s1"),
            RecordKind::ActionAttempted,
            json!({ "action": action, "via": "mcp", "tool": "echo.echo",
                    "arguments": { "text": format!("hello {tag} {i}") } }),
        ));
        batch.push(NewRecord::new(
            Some("s1"),
            RecordKind::ActionDecided,
            json!({ "action": action, "decision": { "tier": "autonomous", "verdict": "allow",
                    "reason": "rule", "rules": [{ "id": "hello", "tier": "autonomous" }],
                    "posture": "normal", "charter": charter } }),
        ));
    }
    batch
}

/// A migrated store with `gw-1` (3 calls) and `gw-2` (5 calls), and a data directory whose
/// ledger holds what `gw-1` holds (recorded at the same, stopped, time).
async fn recorded() -> (TestDb, sqlx::PgPool, tempfile::TempDir) {
    let db = TestDb::new().await.unwrap();
    let StoreLocation::Postgres(url) = StoreLocation::parse(db.url()).unwrap() else {
        panic!("not a PostgreSQL URL");
    };
    let pool = postgres::connect(&url, PoolBounds::default())
        .await
        .unwrap();
    postgres::migrate(&pool).await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    for (name, n) in [("gw-1", 3), ("gw-2", 5)] {
        let ledger = Ledger::open_postgres(
            pool.clone(),
            &InstanceId::parse(name).unwrap(),
            scratch.path(),
            Arc::new(ManualClock::new(datetime!(2026-12-01 09:00 UTC))),
            LedgerConfig::default(),
            None,
        )
        .await
        .unwrap();
        ledger.append_batch(history(name, n)).await.unwrap();
        ledger.shutdown().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(datetime!(2026-12-01 09:00 UTC)));
    let ledger = Ledger::open(dir.path(), clock, LedgerConfig::default())
        .await
        .unwrap();
    ledger.append_batch(history("gw-1", 3)).await.unwrap();
    ledger.shutdown().await.unwrap();
    (db, pool, dir)
}

/// Runs `warden replay ARGS` (no `WARDEN_*` from the caller's environment).
fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("replay")
        .args(args)
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_STORE")
        .output()
        .expect("run warden")
}

fn report(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)))
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every row the store holds for the ledger, in order, as text.
async fn snapshot(pool: &sqlx::PgPool) -> Vec<String> {
    let mut rows = Vec::new();
    for sql in [
        "SELECT instance || ' ' || seq || ' ' || time || ' ' || kind || ' ' || payload || ' ' \
         || encode(hash, 'hex') FROM ledger_records ORDER BY instance, seq",
        "SELECT instance || ' ' || ledger_id || ' ' || mark FROM ledger_instances \
         ORDER BY instance",
        "SELECT instance || ' ' || level || ' ' || idx || ' ' || encode(hash, 'hex') \
         FROM ledger_tree_nodes ORDER BY instance, level, idx",
    ] {
        for row in sqlx::query(sql).fetch_all(pool).await.unwrap() {
            rows.push(row.get::<String, _>(0));
        }
    }
    rows
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_chain_in_the_store_replays_as_the_same_chain_in_a_data_directory() {
    let (db, pool, dir) = recorded().await;
    let charters = tempfile::tempdir().unwrap();
    let tight = write(charters.path(), "tight.yaml", &tightened());
    let before = snapshot(&pool).await;

    let from_dir = replay(&[
        "--charter",
        &tight,
        "--data",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(from_dir.status.code(), Some(0), "{}", err(&from_dir));
    let one = [
        "--charter",
        &tight,
        "--store",
        db.url(),
        "--instance",
        "gw-1",
        "--format",
        "json",
    ];
    let from_store = replay(&one);
    assert_eq!(from_store.status.code(), Some(0), "{}", err(&from_store));
    let (a, b) = (report(&from_dir), report(&from_store));
    assert_eq!(a["totals"], b["totals"]);
    assert_eq!(a["changes"], b["changes"]);
    assert_eq!(b["totals"]["attempts"], 3, "{b}");
    assert_eq!(b["totals"]["changed"], 3, "{b}");
    assert_eq!(b["changes"][0]["change"], "newly_denied", "{b}");

    // The other instance's chain is its own: five attempts, none of gw-1's.
    let other = replay(&[
        "--charter",
        &tight,
        "--store",
        db.url(),
        "--instance",
        "gw-2",
        "--format",
        "json",
    ]);
    assert_eq!(other.status.code(), Some(0), "{}", err(&other));
    let other = report(&other);
    assert_eq!(other["totals"]["attempts"], 5, "{other}");
    let examples = other["changes"][0]["examples"].to_string();
    assert!(
        examples.contains("gw-2") && !examples.contains("gw-1"),
        "{examples}"
    );

    // Loosening nothing, the live charter reproduces every decision.
    let live = write(charters.path(), "live.yaml", LIVE);
    let same = replay(&[
        "--charter",
        &live,
        "--store",
        db.url(),
        "--instance",
        "gw-1",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", err(&same));

    // Read-only: the store holds what it held.
    assert_eq!(snapshot(&pool).await, before);
}

#[tokio::test]
async fn what_names_no_single_chain_is_refused_with_64() {
    let (db, pool, dir) = recorded().await;
    let charters = tempfile::tempdir().unwrap();
    let live = write(charters.path(), "live.yaml", LIVE);
    let before = snapshot(&pool).await;

    let no_instance = replay(&["--charter", &live, "--store", db.url()]);
    assert_eq!(no_instance.status.code(), Some(64), "{}", err(&no_instance));
    assert!(
        err(&no_instance).contains("--instance"),
        "{}",
        err(&no_instance)
    );

    let unknown = replay(&[
        "--charter",
        &live,
        "--store",
        db.url(),
        "--instance",
        "gw-9",
    ]);
    assert_eq!(unknown.status.code(), Some(64), "{}", err(&unknown));
    assert!(err(&unknown).contains("gw-9"), "{}", err(&unknown));

    let both = replay(&[
        "--charter",
        &live,
        "--data",
        dir.path().to_str().unwrap(),
        "--store",
        db.url(),
        "--instance",
        "gw-1",
    ]);
    assert_eq!(both.status.code(), Some(64), "{}", err(&both));

    // `--instance` without a store, and a bad instance name.
    let alone = replay(&[
        "--charter",
        &live,
        "--data",
        dir.path().to_str().unwrap(),
        "--instance",
        "gw-1",
    ]);
    assert_eq!(alone.status.code(), Some(64), "{}", err(&alone));
    let bad = replay(&[
        "--charter",
        &live,
        "--store",
        db.url(),
        "--instance",
        "gw 1; DROP TABLE ledger_records",
    ]);
    assert_eq!(bad.status.code(), Some(64), "{}", err(&bad));

    // Neither a data directory nor a store.
    let neither = replay(&["--charter", &live]);
    assert_eq!(neither.status.code(), Some(64), "{}", err(&neither));

    // An unreachable store: 74, and its password is never echoed.
    let unreachable = replay(&[
        "--charter",
        &live,
        "--store",
        "postgres://warden:hunter2-secret@127.0.0.1:1/warden",
        "--instance",
        "gw-1",
    ]);
    assert_eq!(unreachable.status.code(), Some(74), "{}", err(&unreachable));
    assert!(
        !err(&unreachable).contains("hunter2"),
        "{}",
        err(&unreachable)
    );

    assert_eq!(snapshot(&pool).await, before);
}
