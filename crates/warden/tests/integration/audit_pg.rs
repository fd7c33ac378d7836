//! `warden audit verify|tail|show --store` as the real binary, against a fleet's ledger in a
//! real PostgreSQL (`warden_testkit::postgres`): one report line per instance, a finding in
//! any chain (a changed record, a truncated chain) exits 3, usage errors exit 64, and the
//! store URL's password is never echoed. `signed.rs`: verification against each instance's
//! signed checkpoints; `retention.rs`: archive per instance, prune and search refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

#[path = "audit_pg/retention.rs"]
mod retention;
#[path = "audit_pg/signed.rs"]
mod signed;

use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::{Value, json};
use warden_audit::{Ledger, LedgerConfig, NewRecord, RecordKind};
use warden_core::store::StoreLocation;
use warden_core::{InstanceId, SystemClock};
use warden_session::state_db::postgres::{self, PoolBounds};
use warden_testkit::postgres::TestDb;

/// Runs `warden audit ARGS` with `WARDEN_STORE=store` (when given).
fn audit(args: &[&str], store: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("audit")
        .args(args)
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_STORE");
    if let Some(url) = store {
        cmd.env("WARDEN_STORE", url);
    }
    cmd.output().expect("run warden")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A migrated store with `gw-1` (5 records) and `gw-2` (3), each starting with
/// `charter_loaded`, writers stopped.
async fn fleet() -> (TestDb, sqlx::PgPool) {
    let db = TestDb::new().await.unwrap();
    let StoreLocation::Postgres(url) = StoreLocation::parse(db.url()).unwrap() else {
        panic!("not a PostgreSQL URL");
    };
    let pool = postgres::connect(&url, PoolBounds::default())
        .await
        .unwrap();
    postgres::migrate(&pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, n) in [("gw-1", 5u64), ("gw-2", 3)] {
        let ledger = Ledger::open_postgres(
            pool.clone(),
            &InstanceId::parse(name).unwrap(),
            dir.path(),
            Arc::new(SystemClock),
            LedgerConfig::default(),
            None,
        )
        .await
        .unwrap();
        let mut batch = vec![NewRecord::new(
            None,
            RecordKind::CharterLoaded,
            json!({ "instance": name }),
        )];
        batch.extend(
            (1..n).map(|i| {
                NewRecord::new(Some("s1"), RecordKind::ActionAttempted, json!({ "i": i }))
            }),
        );
        ledger.append_batch(batch).await.unwrap();
        ledger.shutdown().await.unwrap();
    }
    (db, pool)
}

#[tokio::test]
async fn verify_reports_each_instance_and_exits_3_on_a_finding_in_any() {
    let (db, pool) = fleet().await;
    let url = Some(db.url());
    let intact = audit(&["verify"], url);
    assert_eq!(intact.status.code(), Some(0), "{}", err(&intact));
    let lines: Vec<String> = out(&intact).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("instance gw-1: ledger intact: 5 records verified"));
    assert!(lines[1].starts_with("instance gw-2: ledger intact: 3 records verified"));

    let one = audit(&["verify", "--instance", "gw-2", "--format", "json"], url);
    assert_eq!(one.status.code(), Some(0));
    let report: Value = serde_json::from_str(out(&one).trim()).unwrap();
    assert_eq!(report["instance"], "gw-2");
    assert_eq!(report["intact"], true);
    assert_eq!(report["records"], 3);

    // A changed record in gw-2: its line names it, gw-1's stays intact, exit 3.
    sqlx::query(
        "UPDATE ledger_records SET payload = '{\"i\":7}' WHERE instance = 'gw-2' AND seq = 2",
    )
    .execute(&pool)
    .await
    .unwrap();
    let changed = audit(&["verify"], url);
    assert_eq!(changed.status.code(), Some(3));
    let text = out(&changed);
    assert!(text.contains("instance gw-1: ledger intact"), "{text}");
    assert!(
        text.contains("instance gw-2: ledger NOT intact: record 2 was changed"),
        "{text}"
    );

    // gw-1 cut short of its mark: the chain that is left links, but it is truncated.
    sqlx::query("DELETE FROM ledger_records WHERE instance = 'gw-1' AND seq > 3")
        .execute(&pool)
        .await
        .unwrap();
    let cut = audit(&["verify", "--instance", "gw-1", "--format", "json"], url);
    assert_eq!(cut.status.code(), Some(3));
    let report: Value = serde_json::from_str(out(&cut).trim()).unwrap();
    assert_eq!(report["problem"]["kind"], "truncated");
    assert!(
        report["problem"]["message"]
            .as_str()
            .unwrap()
            .contains("ends at record 3, but its writer recorded that record 5 was committed")
    );
}

#[tokio::test]
async fn tail_merges_the_instances_and_show_reads_one_chain() {
    let (db, _pool) = fleet().await;
    let url = Some(db.url());
    let tail = audit(&["tail", "-n", "20"], url);
    assert_eq!(tail.status.code(), Some(0), "{}", err(&tail));
    let lines: Vec<Value> = out(&tail)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    let times: Vec<&str> = lines.iter().map(|l| l["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(lines.iter().filter(|l| l["instance"] == "gw-2").count(), 3);

    let only = audit(&["tail", "-n", "2", "--instance", "gw-1"], url);
    let seqs: Vec<u64> = out(&only)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [4, 5]);

    let show = audit(&["show", "1", "--instance", "gw-2"], url);
    assert_eq!(show.status.code(), Some(0), "{}", err(&show));
    let record: Value = serde_json::from_str(out(&show).trim()).unwrap();
    assert_eq!(record["kind"], "charter_loaded");
    assert_eq!(record["instance"], "gw-2");
}

#[tokio::test]
async fn usage_errors_exit_64_and_the_password_is_never_echoed() {
    let (db, _pool) = fleet().await;
    let url = Some(db.url());
    for (args, store, needle) in [
        (
            &["verify", "--instance", "gw-9"][..],
            url,
            "no ledger of instance `gw-9`",
        ),
        (
            &["verify", "--instance", "gw-1"][..],
            None,
            "give `--store URL`",
        ),
        (&["verify", "--instance", "bad id;"][..], url, "instance"),
        (&["show", "1"][..], url, "give `--instance ID`"),
        (&["verify"][..], Some("mysql://x"), "PostgreSQL URL"),
    ] {
        let o = audit(args, store);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(needle), "{args:?}: {}", err(&o));
    }
    let unreachable = audit(
        &["verify"],
        Some("postgres://warden:hunter2-secret@127.0.0.1:1/nowhere"),
    );
    assert_eq!(unreachable.status.code(), Some(74));
    assert!(
        !err(&unreachable).contains("hunter2"),
        "{}",
        err(&unreachable)
    );
    assert!(
        err(&unreachable).contains("cannot connect"),
        "{}",
        err(&unreachable)
    );
}
