//! PostgreSQL stopped under a running writer: appends fail with a clear error within their
//! timeout (callers fail closed); once it is back the next append commits, no restart, and the
//! chain goes on intact.

use std::sync::Arc;
use std::time::Duration;

use warden_audit::{LedgerConfig, LedgerError, LedgerReader};
use warden_core::SystemClock;
use warden_testkit::postgres::Cluster;

use super::{open_with, pool, record};

#[tokio::test]
async fn appends_fail_while_postgres_is_down_and_commit_again_once_it_is_back() {
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .unwrap()
        .unwrap();
    let pool = pool(&cluster.url("postgres")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = LedgerConfig {
        append_timeout: Duration::from_secs(20),
        ..LedgerConfig::default()
    };
    let ledger = open_with(&pool, "gw-1", dir.path(), Arc::new(SystemClock), config)
        .await
        .unwrap();
    for n in 0..3 {
        ledger.append(record("s", n)).await.unwrap();
    }

    cluster.stop().unwrap();
    for n in 0..2 {
        match ledger.append(record("s", 10 + n)).await {
            Err(LedgerError::Postgres(_)) => {}
            other => panic!("expected a PostgreSQL error, got {other:?}"),
        }
    }
    assert!(!ledger.is_accepting());

    cluster.start_server().unwrap();
    let appended = ledger.append(record("s", 20)).await.unwrap();
    assert_eq!(appended.seq, 4, "the failed appends left no record behind");
    assert!(ledger.is_accepting());
    let reader = LedgerReader::open_source(&ledger.source()).await.unwrap();
    let report = reader.verify().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 4);
    assert_eq!(reader.mark().await.unwrap(), Some(4));
    ledger.shutdown().await.unwrap();
}
