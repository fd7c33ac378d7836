//! The other instances of a fleet. On PostgreSQL every gateway instance writes its own hash
//! chain into the shared store, and any instance's operator plane serves any instance's chain
//! (`GET /v1/ledger/stream?instance=ID`). The observer follows the gateway it is pointed at as
//! its primary stream (checkpoint, sweep, heartbeat, metrics as before) and, beside it, every
//! other instance `GET /v1/instances` lists — each chain checked on its own, from the last
//! record of it the observer read (saved with the checkpoint) — and feeds all their records to
//! the one engine, so a session served by several instances is observed as one.
//!
//! Bounded: at most [`MAX_PEERS`] other instances are followed; the list is read again every
//! [`DISCOVER_EVERY`], so an instance that joins the fleet is followed from its first record.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_audit::Head;

use crate::gateway::body_snippet;
use crate::stream::{ChainCheck, StreamClient, StreamItem};

/// How often the list of instances is read again.
pub const DISCOVER_EVERY: Duration = Duration::from_secs(10);
/// The most other instances followed.
pub const MAX_PEERS: usize = 64;
/// Items one peer's reader may queue before it waits.
const PEER_QUEUE: usize = 256;
/// The largest `GET /v1/instances` answer read.
const MAX_LIST_BYTES: usize = 256 * 1024;

/// One item of another instance's chain.
#[derive(Debug)]
pub struct PeerItem {
    /// The instance.
    pub instance: Arc<str>,
    /// What its stream delivered.
    pub item: StreamItem,
}

#[derive(Debug, Deserialize)]
struct Listed {
    instances: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    instance: String,
    /// The instance serving this answer (the primary stream's).
    #[serde(default)]
    this: bool,
}

/// The other instances the gateway lists: every entry but the one serving the answer. A
/// gateway without the route (404) or with a single instance has none.
pub async fn others(stream: &StreamClient) -> Result<Vec<String>, String> {
    let response = stream
        .gateway()
        .request(reqwest::Method::GET, "/v1/instances")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    if !status.is_success() {
        return Err(format!("{status}: {}", body_snippet(response, 512).await));
    }
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    if bytes.len() > MAX_LIST_BYTES {
        return Err(format!(
            "the instance list is larger than {MAX_LIST_BYTES} bytes"
        ));
    }
    let listed: Listed = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if listed.instances.len() <= 1 {
        return Ok(Vec::new());
    }
    Ok(listed
        .instances
        .into_iter()
        .filter(|e| !e.this)
        .map(|e| e.instance)
        .take(MAX_PEERS)
        .collect())
}

/// Follows every other instance until `stop`: lists them now and every [`DISCOVER_EVERY`],
/// and starts one reader per new instance (from `saved`'s head for it, or its first record),
/// each handing its items, tagged, to `tx`.
pub async fn follow(
    stream: StreamClient,
    saved: HashMap<String, Head>,
    tx: mpsc::Sender<PeerItem>,
    tasks: TaskTracker,
    stop: CancellationToken,
) {
    let mut following: HashSet<String> = HashSet::new();
    loop {
        match others(&stream).await {
            Ok(list) => {
                for instance in list {
                    if following.len() >= MAX_PEERS || following.contains(&instance) {
                        continue;
                    }
                    following.insert(instance.clone());
                    tracing::info!(instance, "Following another instance's ledger chain.");
                    let start = saved.get(&instance).copied();
                    spawn_reader(&stream, &instance, start, &tx, &tasks, &stop);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot list the fleet's instances; trying again.");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(DISCOVER_EVERY) => {}
        }
    }
}

fn spawn_reader(
    stream: &StreamClient,
    instance: &str,
    start: Option<Head>,
    tx: &mpsc::Sender<PeerItem>,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) {
    let client = stream.for_instance(instance);
    let (item_tx, mut item_rx) = mpsc::channel(PEER_QUEUE);
    let reader_stop = stop.clone();
    let name: Arc<str> = Arc::from(instance);
    tasks.spawn(async move {
        if let Err(e) = client
            .follow(ChainCheck::new(start), item_tx, reader_stop)
            .await
        {
            tracing::error!(instance = %client_name(&client), error = %e, "Stopped following another instance's chain.");
        }
    });
    let tx = tx.clone();
    tasks.spawn(async move {
        while let Some(item) = item_rx.recv().await {
            let tagged = PeerItem {
                instance: name.clone(),
                item,
            };
            if tx.send(tagged).await.is_err() {
                return;
            }
        }
    });
}

fn client_name(client: &StreamClient) -> String {
    client.instance().unwrap_or_default().to_owned()
}
