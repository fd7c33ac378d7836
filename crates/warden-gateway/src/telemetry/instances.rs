//! The fleet's chains for the operator plane (`GET /v1/instances`, `GET
//! /v1/ledger/stream?instance=ID`): on SQLite the one ledger, named by its ledger id; on
//! PostgreSQL every instance of the shared store, this gateway's own chain followed through
//! its writer's head watch and another instance's through its mark, read every
//! [`warden_operator::POLL_HEAD`].

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warden_audit::{LedgerError, LedgerReader, LedgerSource};
use warden_core::InstanceId;
use warden_operator::instances::{InstanceEntry, LedgerDirectory};
use warden_operator::{FeedFuture, FeedRecord, LedgerFeed};

/// This gateway's chain and, on PostgreSQL, the store's others.
pub struct GatewayDirectory {
    /// This gateway's own feed (its writer's head watch).
    pub own: Arc<dyn LedgerFeed>,
    /// Its name: the instance on PostgreSQL, the ledger id on SQLite.
    pub own_name: String,
    /// Its ledger id.
    pub own_ledger: String,
    /// The shared store, when the ledger is there.
    pub store: Option<sqlx::PgPool>,
    /// Cancelled when the gateway stops (ends the other instances' streams too).
    pub stop: CancellationToken,
}

fn sentence(e: &LedgerError) -> String {
    format!("the ledger's store cannot be read: {e}")
}

impl LedgerDirectory for GatewayDirectory {
    fn list(&self) -> FeedFuture<'_, Result<Vec<InstanceEntry>, String>> {
        Box::pin(async move {
            let Some(pool) = &self.store else {
                return Ok(vec![InstanceEntry {
                    instance: self.own_name.clone(),
                    ledger: self.own_ledger.clone(),
                    head: *self.own.watch_head().borrow(),
                }]);
            };
            let merged = LedgerReader::open_postgres(pool.clone(), None)
                .await
                .map_err(|e| sentence(&e))?;
            let listed = merged.instances().await.map_err(|e| sentence(&e))?;
            Ok(listed
                .into_iter()
                .map(|i| InstanceEntry {
                    instance: i.instance,
                    ledger: i.ledger,
                    head: i.head,
                })
                .collect())
        })
    }

    fn feed(&self, instance: &str) -> FeedFuture<'_, Result<Option<Arc<dyn LedgerFeed>>, String>> {
        let instance = instance.to_owned();
        Box::pin(async move {
            if instance == self.own_name {
                return Ok(Some(self.own.clone()));
            }
            let (Some(pool), Ok(id)) = (&self.store, InstanceId::parse(&instance)) else {
                return Ok(None);
            };
            let source = LedgerSource::Postgres {
                pool: pool.clone(),
                instance: Some(id),
            };
            match LedgerReader::open_source(&source).await {
                Ok(reader) => {
                    let (held, head) = watch::channel(0);
                    Ok(Some(Arc::new(OtherInstance {
                        reader,
                        head,
                        _held: held,
                        stop: self.stop.clone(),
                    }) as Arc<dyn LedgerFeed>))
                }
                Err(LedgerError::UnknownInstance { .. }) => Ok(None),
                Err(e) => Err(sentence(&e)),
            }
        })
    }
}

/// Another instance's chain in the shared store: its records through a reader of that
/// chain, its head (the mark its writer moves in each commit) read when the stream asks.
struct OtherInstance {
    reader: LedgerReader,
    /// Never moves: the stream polls [`LedgerFeed::poll_head`] instead.
    head: watch::Receiver<u64>,
    _held: watch::Sender<u64>,
    stop: CancellationToken,
}

impl LedgerFeed for OtherInstance {
    fn range(&self, from: u64, limit: usize) -> FeedFuture<'_, Result<Vec<FeedRecord>, String>> {
        Box::pin(async move {
            let limit = u64::try_from(limit).unwrap_or(u64::MAX);
            let records = self
                .reader
                .range(from, limit)
                .await
                .map_err(|e| sentence(&e))?;
            Ok(records
                .iter()
                .map(|r| FeedRecord {
                    seq: r.seq,
                    line: r.to_json_line(),
                })
                .collect())
        })
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    fn stopping(&self) -> FeedFuture<'static, ()> {
        Box::pin(self.stop.clone().cancelled_owned())
    }

    fn poll_head(&self) -> Option<FeedFuture<'_, Result<u64, String>>> {
        Some(Box::pin(async move {
            match self.reader.mark().await {
                Ok(Some(mark)) => Ok(mark),
                Ok(None) => Ok(*self.head.borrow()),
                Err(e) => Err(sentence(&e)),
            }
        }))
    }
}
