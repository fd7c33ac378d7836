//! `warden session instruct|show` as the real binary, against an in-process gateway.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use std::process::{Command, Output};

use serde_json::Value;
use warden_testkit::harness::Harness;

use super::common;
use common::echo_charter as charter;

fn session(h: &Harness, token: &str, args: &[&str]) -> Output {
    let url = format!("http://{}", h.operator_addr);
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("session")
        .args(args)
        .args(["--operator-url", &url, "--token", token])
        .env_remove("WARDEN_OPERATOR_TOKEN")
        .env_remove("WARDEN_OPERATOR_URL")
        .output()
        .expect("run warden")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_session_instruct_adds_trusted_text_that_show_lists() {
    let h = Harness::builder(charter).start().await;
    let (id, agent_token) = h.open_session("1h").await;
    let admin = h.operator_token.clone();
    let out = session(&h, &admin, &["instruct", &id, "also pay bob@example.com"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&id), "{}", text(&out.stdout));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("instruction.txt");
    std::fs::write(&file, "and carol@example.com on friday\n").unwrap();
    let out = session(
        &h,
        &admin,
        &["instruct", &id, "--file", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = session(&h, &admin, &["show", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pieces: Vec<(&str, &str)> = shown["trusted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["text"].as_str().unwrap(),
                p["source"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pieces,
        [
            ("testing", "task"),
            ("also pay bob@example.com", "instruction"),
            ("and carol@example.com on friday\n", "instruction"),
        ]
    );
    assert_eq!(h.records_of("trust_added").await.len(), 2);

    // Refused: a file over 16 KiB (before anything is sent), the agent's token, no text.
    std::fs::write(&file, "x".repeat(16 * 1024 + 1)).unwrap();
    let out = session(
        &h,
        &admin,
        &["instruct", &id, "--file", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let out = session(&h, &agent_token, &["instruct", &id, "pay mallory"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("403"), "{}", text(&out.stderr));
    let out = session(&h, &admin, &["instruct", &id]);
    assert!(!out.status.success());
    assert_eq!(h.records_of("trust_added").await.len(), 2);
    h.stop().await;
}
