//! `warden migrate` on PostgreSQL (a throwaway database, see `warden_testkit::postgres`):
//! the schema is created once, a second run has nothing to do, a schema of a newer warden is
//! refused and left alone, and a password in the URL is never printed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use std::process::{Command, Output};

use warden_testkit::postgres::TestDb;

fn migrate(store: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["migrate", "--store", store])
        .env_remove("WARDEN_STORE")
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

#[tokio::test(flavor = "multi_thread")]
async fn migrate_creates_the_schema_once_and_refuses_a_newer_one() {
    let db = TestDb::new().await.unwrap();
    let first = migrate(db.url());
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("applied migration 1"),
        "{}",
        text(&first)
    );
    let second = migrate(db.url());
    assert!(second.status.success(), "{}", text(&second));
    assert!(text(&second).contains("nothing to do"), "{}", text(&second));

    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url())
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for t in [
        "approvals",
        "controls",
        "fleet_settings",
        "ledger_records",
        "pending_results",
        "scope_usage",
        "sessions",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} missing from {tables:?}");
    }
    sqlx::query("INSERT INTO warden_schema (version) VALUES (99)")
        .execute(&mut conn)
        .await
        .unwrap();
    let refused = migrate(db.url());
    assert_eq!(refused.status.code(), Some(64), "{}", text(&refused));
    assert!(text(&refused).contains("version 99"), "{}", text(&refused));
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM warden_schema ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(versions, vec![1, 2, 99]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_store_is_a_clear_error_without_the_password() {
    // Nothing listens on port 9 of the loopback.
    let out = migrate("postgres://warden:hunter2@127.0.0.1:9/warden?connect_timeout=2");
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("error"), "{shown}");
    let bad = migrate("mysql://root:hunter2@db/x");
    assert_eq!(bad.status.code(), Some(64));
    assert!(!text(&bad).contains("hunter2"), "{}", text(&bad));
}
