//! One approval key for the fleet: an instance started with the first instance's
//! `approval.key` joins; one with another key refuses to start, saying what to do, and
//! neither key (nor anything the store keeps of it) is in the message.

use warden_core::{InstanceId, SystemClock};
use warden_gateway::{APPROVAL_KEY_FILE, Gateway};
use warden_testkit::fleet::share_approval_key;

use super::*;

fn key_text(data: &std::path::Path) -> String {
    std::fs::read_to_string(data.join(APPROVAL_KEY_FILE))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_with_the_fleets_key_starts_and_one_with_another_key_refuses() {
    let db = TestDb::new().await.unwrap();
    let fleet = Fleet::start(1, charter, db.url()).await;
    let first = &fleet.instances[0];
    let dir = tempfile::tempdir().unwrap();
    // As the fleet's instances are configured, each with its own data directory and id.
    let config_for = |name: &str| {
        let mut config = first.config.clone();
        config.data_dir = dir.path().join(name);
        config.store.instance = Some(InstanceId::parse(name).unwrap());
        config
    };

    // The same key: it starts.
    let same = config_for("gw-b");
    share_approval_key(&first.data, &same.data_dir);
    let b = Gateway::start(same, Arc::new(SystemClock)).await.unwrap();
    b.shutdown().await;

    // Its own key (made at its first start): refused, with what to do.
    let other = config_for("gw-c");
    let data = other.data_dir.clone();
    let err = match Gateway::start(other, Arc::new(SystemClock)).await {
        Ok(_) => panic!("an instance with another approval key started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("approval key"), "{err}");
    assert!(err.contains("copy the `approval.key`"), "{err}");
    assert!(
        err.contains(&data.join(APPROVAL_KEY_FILE).display().to_string()),
        "{err}"
    );
    let pool = fleet.pool().await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT value FROM fleet_settings")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    for key in [key_text(&first.data), key_text(&data)] {
        assert!(!err.contains(&key), "the message shows a key: {err}");
        assert!(!stored[0].contains(&key), "the store holds a key");
    }
    assert_ne!(
        key_text(&first.data),
        key_text(&data),
        "gw-c made a key of its own"
    );
    // It was refused before it wrote anything: no chain, no record, no session noted.
    let pool = fleet.pool().await;
    for table in ["ledger_instances", "ledger_records", "session_instances"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE instance = 'gw-c'"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    pool.close().await;
    fleet.stop().await;
}
