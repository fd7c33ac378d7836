//! The observer on a fleet (issue 18): pointed at instance A's operator plane, it follows
//! every other instance's chain too (`GET /v1/instances`, `?instance=`), checks each on its
//! own and intervenes through A — so a record changed in B's chain in the shared store is
//! found and the posture frozen everywhere, and B's head is saved with the checkpoint. Real
//! gateways (`warden_testkit::fleet`) on a real PostgreSQL database, the observer in process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warden_core::SystemClock;
use warden_observer::store::Store;
use warden_observer::stream::DEFAULT_MAX_LINE_BYTES;
use warden_observer::{GatewayClient, ObserverConfig, Token};
use warden_testkit::fleet::Fleet;
use warden_testkit::postgres::TestDb;

fn charter(echo_url: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: tests, serves: the observer on a fleet }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
actions:
  rules:
    - {{ id: echo-hello, tool: echo.echo, tier: autonomous, args: {{ text: {{ prefix: hello }} }} }}
authority:
  principals:
    - {{ id: alice }}
observer:
  detectors:
    - {{ id: ledger, kind: ledger_integrity, response: frozen }}
"#
    )
}

/// An observer credential made in the shared store with the real binary.
fn observer_token(store: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "operator",
            "create-token",
            "--name",
            "observer",
            "--observer",
            "--store",
            store,
        ])
        .env_remove("WARDEN_STORE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .find(|w| w.starts_with("wo_"))
        .unwrap_or_else(|| panic!("no token in {text}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_observer_checks_every_instances_chain_and_freezes_the_fleet_on_a_change_in_another() {
    let db = TestDb::new().await.unwrap();
    let fleet = Fleet::start(2, charter, db.url()).await;
    let (a, b) = (&fleet.instances[0], &fleet.instances[1]);
    // Activity on B only: A's own chain stays intact.
    let (_, token_b) = b.open_session("1h").await;
    for i in 0..3 {
        let (_, d) = b.decide(&token_b, &format!("hello {i}"), None).await;
        assert_eq!(d["verdict"], "allow", "{d}");
    }
    // A record of B's chain is changed in the shared store, after it was written.
    let pool = fleet.pool().await;
    let changed = sqlx::query(
        "UPDATE ledger_records SET payload = '{\"changed\":true}' WHERE instance = 'gw-b' AND seq = 3",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(changed.rows_affected(), 1);

    let observer_dir = tempfile::tempdir().unwrap();
    let charter_path = a.config.charters.paths().unwrap()[0].clone();
    let compiled = Arc::new(warden_charter::load(&charter_path).unwrap().charter);
    let token = observer_token(db.url());
    let config = ObserverConfig {
        gateway: GatewayClient::new(&format!("http://{}", a.operator_addr), Token::new(&token))
            .unwrap(),
        charter_path,
        charter: compiled,
        others: Vec::new(),
        data_dir: observer_dir.path().to_path_buf(),
        metrics_listener: None,
        metrics_token: Token::new(&token),
        alert: None,
        heartbeat_interval: Some(Duration::from_millis(200)),
        checkpoint_interval: Duration::from_millis(100),
        sweep_interval: None,
        max_line_bytes: DEFAULT_MAX_LINE_BYTES,
    };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(warden_observer::run(
        config,
        Arc::new(SystemClock),
        cancel.clone(),
    ));

    // The observer, reading B's chain through A, finds the change and freezes the posture
    // through A; the control reaches every instance (A's, then B's next call is refused).
    let (_, token_a) = a.open_session("1h").await;
    let mut frozen = None;
    for _ in 0..100 {
        let (_, d) = b.decide(&token_b, "hello after", None).await;
        if d["verdict"] == "deny" {
            frozen = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let frozen = frozen.expect("the observer froze the fleet after B's chain broke");
    assert_eq!(frozen["decision"]["reason"], "posture_frozen", "{frozen}");
    let (_, on_a) = a.decide(&token_a, "hello on a", None).await;
    assert_eq!(on_a["verdict"], "deny", "{on_a}");
    // The control was set through A, by the observer, about B's record 3.
    let set = a.records_of("control_set").await;
    assert_eq!(set.len(), 1, "{set:?}");
    let body = set[0].to_string();
    assert!(body.contains("observer"), "{body}");

    cancel.cancel();
    running.await.unwrap().unwrap();
    // B's head was saved with the observer's checkpoint; A's chain is the primary's.
    let (store, _) = Store::open(observer_dir.path()).unwrap();
    let peers = store.peer_heads().unwrap();
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0].0, "gw-b");
    assert!(peers[0].1.seq >= 3, "{peers:?}");
    // B's chain stays broken (that is the point), so the fleet is stopped without the
    // harness's verification of every chain; A's own chain verifies.
    for instance in fleet.instances.iter().rev() {
        instance.take().shutdown().await;
    }
    warden_testkit::fleet::assert_chain_verifies(&pool, &a.id).await;
}
