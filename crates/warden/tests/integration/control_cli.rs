//! `warden control list|set|lift` as the real binary, against an in-process gateway.

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

fn control(h: &Harness, args: &[&str]) -> Output {
    let url = format!("http://{}", h.operator_addr);
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("control")
        .args(args)
        .args(["--operator-url", &url, "--token", &h.operator_token])
        .env_remove("WARDEN_OPERATOR_TOKEN")
        .env_remove("WARDEN_OPERATOR_URL")
        .output()
        .expect("run warden")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_control_sets_lists_and_lifts() {
    let h = Harness::builder(charter).start().await;
    let out = control(
        &h,
        &[
            "set",
            "freeze_tool",
            "--scope",
            "principal",
            "--target",
            "alice",
            "--tool",
            "echo.echo",
            "--reason",
            "under review",
            "--expires",
            "10m",
            "--evidence",
            "1,2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout);
    assert_eq!(id.len(), 36, "{id}");

    let out = control(&h, &["list"]);
    let listed = text(&out.stdout);
    assert!(
        listed.contains(&id) && listed.contains("under review"),
        "{listed}"
    );
    let out = control(&h, &["list", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["controls"][0]["evidence"], serde_json::json!([1, 2]));
    assert!(json["controls"][0]["expires_at"].is_string());

    // A target the gateway does not know: refused, exit 64, the reason printed.
    let out = control(
        &h,
        &[
            "set",
            "frozen",
            "--scope",
            "principal",
            "--target",
            "mallory",
            "--reason",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("mallory"),
        "{}",
        text(&out.stderr)
    );

    let out = control(&h, &["lift", &id, "--reason", "cleared"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&control(&h, &["list"]).stdout), "no controls");
    let all = text(&control(&h, &["list", "--all"]).stdout);
    assert!(all.contains("(lifted)"), "{all}");
    h.stop().await;
}
