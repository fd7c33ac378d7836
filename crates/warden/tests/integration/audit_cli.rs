//! `warden audit` end to end: a ledger written through the library, then `verify`, `tail` and
//! `show` run as the real binary, before and after the database file is tampered with.

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
use warden_audit::{Ledger, LedgerConfig, NewRecord, RecordKind};
use warden_core::SystemClock;

fn warden(args: &[&str], data_env: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(args).env_remove("WARDEN_DATA");
    if let Some(dir) = data_env {
        cmd.env("WARDEN_DATA", dir);
    }
    cmd.output().expect("run warden")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A ledger of five records, written and closed through the library.
fn ledger(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ledger = Ledger::open(dir, Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap();
        // As warden writes it: the first start's `charter_loaded`, then actions.
        ledger
            .append(NewRecord {
                session: None,
                kind: RecordKind::CharterLoaded,
                payload: json!({"charter": "blake3:test"}),
            })
            .await
            .unwrap();
        for i in 2..=5 {
            ledger
                .append(NewRecord {
                    session: Some("s-1".to_owned()),
                    kind: RecordKind::ActionAttempted,
                    payload: json!({"tool": "fs.read_text_file", "args": {"path": format!("/ws/file-{i}")}}),
                })
                .await
                .unwrap();
        }
        ledger.shutdown().await.unwrap();
    });
}

/// Overwrites `from` with `to` (same length) in the database file, as a hex editor would.
fn patch_file(db: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(db).unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("the text is in the file");
    bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
    std::fs::write(db, bytes).unwrap();
}

#[test]
fn verify_tail_and_show_an_intact_ledger() {
    let dir = tempfile::tempdir().unwrap();
    ledger(dir.path());
    let data = dir.path().to_str().unwrap();

    let out = warden(&["audit", "verify", "--data", data], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ledger intact: 5 records verified in "),
        "{}",
        stdout(&out)
    );

    let out = warden(
        &["audit", "verify", "--format", "json", "--data", data],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["intact"], json!(true));
    assert_eq!(report["records"], json!(5));
    assert_eq!(report["head"]["seq"], json!(5));
    assert_eq!(report["problem"], Value::Null);

    let out = warden(&["audit", "tail", "--data", data, "-n", "2"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with(r#"{"seq":4,"time":""#), "{}", lines[0]);
    let last: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(last["seq"], json!(5));
    assert_eq!(last["session"], json!("s-1"));
    assert_eq!(last["kind"], json!("action_attempted"));
    assert_eq!(last["payload"]["args"]["path"], json!("/ws/file-5"));
    let fourth: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(last["prev_hash"], fourth["hash"]);
    assert_eq!(last["hash"].as_str().unwrap().len(), 64);

    // `WARDEN_DATA` stands in for `--data`.
    let out = warden(&["audit", "show", "3"], Some(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let third: Value = serde_json::from_str(stdout(&out).trim_end()).unwrap();
    assert_eq!(third["seq"], json!(3));
    assert_eq!(third["payload"]["args"]["path"], json!("/ws/file-3"));

    let out = warden(&["audit", "show", "99", "--data", data], None);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("has no record 99"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn verify_names_the_tampered_record() {
    let dir = tempfile::tempdir().unwrap();
    ledger(dir.path());
    let data = dir.path().to_str().unwrap();
    patch_file(&dir.path().join("ledger.db"), "/ws/file-3", "/ws/file-X");

    let out = warden(&["audit", "verify", "--data", data], None);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with(
            "ledger NOT intact: record 3 was changed: its content no longer matches its hash\n\
             2 records verified before it; last intact record 2 (hash "
        ),
        "{}",
        stdout(&out)
    );

    let out = warden(
        &["audit", "verify", "--data", data, "--format", "json"],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["intact"], json!(false));
    assert_eq!(report["records"], json!(2));
    assert_eq!(report["problem"]["problem"], json!("changed"));
    assert_eq!(report["problem"]["seq"], json!(3));
    assert!(
        report["problem"]["message"]
            .as_str()
            .unwrap()
            .starts_with("record 3 was changed")
    );

    // The tampered record still shows: what it says now is what an investigator needs.
    let out = warden(&["audit", "show", "3", "--data", data], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("/ws/file-X"));
}

#[test]
fn a_directory_without_a_ledger_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nothing");
    let out = warden(&["audit", "verify", "--data", data.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).starts_with("error: there is no ledger at `"),
        "{}",
        stderr(&out)
    );
    assert!(!data.exists(), "verify creates nothing");
}

/// A ledger of `records` (session, kind, payload), written and closed through the library.
fn write_ledger(dir: &Path, records: &[(&str, RecordKind, Value)]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ledger = Ledger::open(dir, Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap();
        for (session, kind, payload) in records {
            ledger
                .append(NewRecord {
                    session: Some((*session).to_owned()),
                    kind: *kind,
                    payload: payload.clone(),
                })
                .await
                .unwrap();
        }
        ledger.shutdown().await.unwrap();
    });
}

#[test]
fn search_finds_model_text_and_keeps_up_with_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    write_ledger(
        dir.path(),
        &[
            (
                "s-1",
                RecordKind::ModelRequested,
                json!({"call": "c-1", "request": {"messages": [
                    {"role": "user", "content": "what is the capital of France"}
                ]}}),
            ),
            (
                "s-1",
                RecordKind::ModelCompleted,
                json!({"call": "c-1", "completion": {"text": "Paris"}}),
            ),
            (
                "s-2",
                RecordKind::ModelCompleted,
                json!({"call": "c-2", "completion": {"text": "Paris, again (\"surely\")"}}),
            ),
        ],
    );

    let out = warden(
        &["audit", "search", "capital", "of", "france", "--data", data],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fields: Vec<&str> = lines[0].split("  ").collect();
    assert_eq!(fields[0], "1");
    assert_eq!(fields[1].len(), 30, "{}", fields[1]);
    assert_eq!(fields[2], "s-1");
    assert_eq!(fields[3], "model_requested");
    assert!(fields[4].contains("[capital of France]"), "{}", lines[0]);
    assert!(dir.path().join("search.db").is_file());

    // Newest first, as JSON lines; the session filter; the limit; `WARDEN_DATA`.
    let out = warden(&["audit", "search", "paris", "--json"], Some(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let hits: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["seq"], json!(3));
    assert_eq!(hits[0]["session"], json!("s-2"));
    assert_eq!(hits[0]["kind"], json!("model_completed"));
    assert!(hits[0]["time"].is_string());
    assert_eq!(
        hits[0]["snippet"],
        json!("c-2\n[Paris], again (\"surely\")")
    );
    assert_eq!(hits[1]["seq"], json!(2));
    let out = warden(
        &[
            "audit",
            "search",
            "paris",
            "--session",
            "s-1",
            "--json",
            "--data",
            data,
        ],
        None,
    );
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    assert!(stdout(&out).starts_with(r#"{"seq":2,"#), "{}", stdout(&out));
    let out = warden(
        &["audit", "search", "paris", "--limit", "1", "--data", data],
        None,
    );
    assert!(stdout(&out).starts_with("3  "), "{}", stdout(&out));

    // Search syntax is plain text: no error, and nothing to find here.
    for query in ["\"", "(", "AND", "*", "paris OR", "NEAR(paris)"] {
        let out = warden(&["audit", "search", query, "--data", data], None);
        assert_eq!(out.status.code(), Some(0), "{query}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{query}");
    }
    let out = warden(&["audit", "search", "\"surely\")", "--data", data], None);
    assert!(stdout(&out).starts_with("3  "), "{}", stdout(&out));

    // Records appended since are found by the next search.
    write_ledger(
        dir.path(),
        &[(
            "s-1",
            RecordKind::ModelIntent,
            json!({"call": "c-3", "tool": "maps.lookup", "arguments": "{\"city\":\"Paris\"}"}),
        )],
    );
    let out = warden(&["audit", "search", "maps.lookup", "--data", data], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("4  "), "{}", stdout(&out));
    assert_eq!(stderr(&out), "");

    // Another ledger in its place: the index is rebuilt, and says so.
    std::fs::remove_file(dir.path().join("ledger.db")).unwrap();
    write_ledger(
        dir.path(),
        &[(
            "s-9",
            RecordKind::ModelRequested,
            json!({"prompt": "hello Rome"}),
        )],
    );
    let out = warden(&["audit", "search", "paris", "--data", data], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("rebuilt it"), "{}", stderr(&out));
    let out = warden(&["audit", "search", "rome", "--data", data], None);
    assert!(stdout(&out).starts_with("1  "), "{}", stdout(&out));

    // No ledger: a usage error, and no index is created.
    let nothing = dir.path().join("nothing");
    let out = warden(
        &[
            "audit",
            "search",
            "paris",
            "--data",
            nothing.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).starts_with("error: there is no ledger at `"),
        "{}",
        stderr(&out)
    );
    assert!(!nothing.exists());
}

/// Issue 10, point 26 (in part): an emptied ledger, or one whose first record is not the
/// `charter_loaded` every ledger warden writes starts with, is not intact. Before, both were
/// reported intact ("holds no records").
#[test]
fn an_empty_ledger_or_one_without_its_start_is_not_intact() {
    let empty = tempfile::tempdir().unwrap();
    write_ledger(empty.path(), &[]);
    let out = warden(
        &["audit", "verify", "--data", empty.path().to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("ledger NOT intact: the ledger holds no records"),
        "{}",
        stdout(&out)
    );

    let headless = tempfile::tempdir().unwrap();
    write_ledger(
        headless.path(),
        &[
            ("s-1", RecordKind::ActionAttempted, json!({})),
            ("s-1", RecordKind::ActionDecided, json!({})),
        ],
    );
    let data = headless.path().to_str().unwrap();
    let out = warden(&["audit", "verify", "--data", data], None);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("record 1 is `action_attempted`"),
        "{}",
        stdout(&out)
    );
    let out = warden(
        &["audit", "verify", "--format", "json", "--data", data],
        None,
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["intact"], json!(false));
    assert_eq!(report["problem"]["kind"], json!("missing_start"));

    let whole = tempfile::tempdir().unwrap();
    write_ledger(
        whole.path(),
        &[
            ("s-1", RecordKind::CharterLoaded, json!({})),
            ("s-1", RecordKind::GatewayStarted, json!({})),
        ],
    );
    let out = warden(
        &["audit", "verify", "--data", whole.path().to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// Issue 10, point 26: a ledger whose last records were removed (the chain still intact) fails
/// `verify`, because its head is older than the last sequence number the gateway recorded in
/// `state.db`. Before, it verified.
#[test]
fn issue_10_a_ledger_cut_short_of_the_recorded_head_fails_verify() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = rt.block_on(async {
        let h = warden_testkit::harness::Harness::builder(|echo_url| {
            format!(
                "version: 1\nidentity: {{ id: agent-1, name: Agent, purpose: tests, serves: tests }}\ninventory:\n  servers:\n    - {{ id: echo, url: \"{echo_url}\", tools: [echo] }}\nactions:\n  rules:\n    - {{ id: echo, tool: echo.echo, tier: autonomous }}\nauthority:\n  principals:\n    - {{ id: alice }}\n"
            )
        })
        .start()
        .await;
        let (_, token) = h.open_session("1h").await;
        for i in 0..3 {
            h.call(&token, &format!("hello {i}")).await;
        }
        h.stop().await;
        h
    });
    let data = h.data.to_str().unwrap().to_owned();
    let out = warden(&["audit", "verify", "--data", &data], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Remove the last three records with SQL: the chain of what is left is intact.
    let db = rusqlite::Connection::open(h.data.join("ledger.db")).unwrap();
    let head: i64 = db
        .query_row("SELECT max(seq) FROM records", [], |r| r.get(0))
        .unwrap();
    db.execute("DELETE FROM records WHERE seq > ?1", [head - 3])
        .unwrap();
    drop(db);

    let out = warden(&["audit", "verify", "--data", &data], None);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    let expected = format!(
        "ledger NOT intact: truncated tail: the ledger ends at record {}, but the gateway recorded in `state.db` that record {head} was committed",
        head - 3
    );
    assert!(stdout(&out).contains(&expected), "{}", stdout(&out));
    let out = warden(
        &["audit", "verify", "--format", "json", "--data", &data],
        None,
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["intact"], json!(false));
    assert_eq!(report["problem"]["kind"], json!("truncated_tail"));
}
