//! The operator plane's view of the fleet's chains (`GET /v1/instances`, the stream's
//! `?instance=`) over a real shared store: every instance listed with its ledger id and head,
//! this gateway's own chain by its name, another's read from the store with its head polled,
//! an unknown or malformed name answered as unknown.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warden_audit::LedgerReader;
use warden_gateway::telemetry::GatewayFeed;
use warden_gateway::telemetry::instances::GatewayDirectory;
use warden_operator::LedgerFeed;
use warden_operator::instances::LedgerDirectory;

use super::{open, record, store};

#[tokio::test]
async fn the_directory_lists_every_instance_and_feeds_another_ones_chain() {
    let (_db, pool) = store().await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let me = open(&pool, "gw-1", d1.path()).await;
    let other = open(&pool, "gw-2", d2.path()).await;
    me.append(record("s", 1)).await.unwrap();
    for n in 0..3 {
        other.append(record("s", n)).await.unwrap();
    }
    let stop = CancellationToken::new();
    let own: Arc<dyn LedgerFeed> = Arc::new(GatewayFeed {
        reader: LedgerReader::open_source(&me.source()).await.unwrap(),
        head: me.watch_head(),
        stop: stop.clone(),
    });
    let directory = GatewayDirectory {
        own: own.clone(),
        own_name: "gw-1".to_owned(),
        own_ledger: me.id().to_owned(),
        store: Some(pool.clone()),
        stop: stop.clone(),
    };

    let listed = directory.list().await.unwrap();
    let listed: Vec<_> = listed
        .iter()
        .map(|i| (i.instance.as_str(), i.ledger.as_str(), i.head))
        .collect();
    assert_eq!(listed, [("gw-1", me.id(), 1), ("gw-2", other.id(), 3)]);

    let mine = directory.feed("gw-1").await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&mine, &own));
    assert!(
        mine.poll_head().is_none(),
        "this gateway's chain follows its watch"
    );

    for unknown in ["gw-9", "gw-1'; DROP TABLE ledger_records; --", ""] {
        assert!(
            directory.feed(unknown).await.unwrap().is_none(),
            "{unknown}"
        );
    }

    let theirs = directory.feed("gw-2").await.unwrap().unwrap();
    let records = theirs.range(1, 10).await.unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(theirs.poll_head().unwrap().await.unwrap(), 3);
    other.append(record("s", 9)).await.unwrap();
    assert_eq!(theirs.poll_head().unwrap().await.unwrap(), 4);
    assert_eq!(theirs.range(4, 10).await.unwrap().len(), 1);

    me.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
    // The store stays the source of truth after the writers stop.
    assert_eq!(directory.list().await.unwrap().len(), 2);
}
