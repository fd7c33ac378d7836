//! `warden operator create-token --store URL` (and `WARDEN_STORE`): a credential made offline
//! in a fleet's PostgreSQL store (a throwaway database, see `warden_testkit::postgres`) works
//! for every instance on it; no data directory is made; a password in the URL is never
//! printed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use std::process::{Command, Output};

use warden_core::StoreLocation;
use warden_session::{OperatorCredentials, OperatorRole, PoolBounds, StateDb};
use warden_testkit::postgres::TestDb;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn create_token(args: &[&str], store_env: Option<&str>, data: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(["operator", "create-token"])
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("WARDEN_STORE")
        .env_remove("WARDEN_DATA");
    if let Some(url) = store_env {
        cmd.env("WARDEN_STORE", url);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_made_with_store_works_on_every_instance_of_the_fleet() {
    let pg = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("unused");
    let flag = create_token(
        &["--name", "ops", "--principal", "alice", "--store", pg.url()],
        None,
        &data,
    );
    assert!(flag.status.success(), "{}", text(&flag));
    let env = create_token(&["--name", "observer", "--observer"], Some(pg.url()), &data);
    assert!(env.status.success(), "{}", text(&env));
    assert!(
        !data.exists(),
        "no data directory is made for the shared store"
    );

    let location = StoreLocation::parse(pg.url()).unwrap();
    for instance in ["gw-a", "gw-b"] {
        let scratch = dir.path().join(instance);
        let db = StateDb::connect(&location, &scratch, PoolBounds::default())
            .await
            .unwrap();
        let operators = OperatorCredentials::open(&db);
        let approver = operators
            .authenticate(String::from_utf8_lossy(&flag.stdout).trim())
            .await
            .unwrap()
            .expect("the --store token authenticates");
        assert_eq!(approver.role, OperatorRole::Approver("alice".to_owned()));
        assert!(
            !approver.recorded,
            "made offline: recorded before its first use"
        );
        let observer = operators
            .authenticate(String::from_utf8_lossy(&env.stdout).trim())
            .await
            .unwrap()
            .expect("the WARDEN_STORE token authenticates");
        assert_eq!(observer.role, OperatorRole::Observer);
        db.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_store_is_a_clear_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = create_token(
        &[
            "--name",
            "ops",
            "--store",
            "postgres://warden:s3cret-pw@127.0.0.1:1/warden",
        ],
        None,
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("error:"), "{}", text(&out));
    assert!(!text(&out).contains("s3cret-pw"), "{}", text(&out));
    let bad = create_token(&["--name", "ops", "--store", "mysql://x"], None, dir.path());
    assert_eq!(bad.status.code(), Some(64), "{}", text(&bad));
}
