//! What the operator plane reads a ledger chain through, so that it does not depend on the
//! ledger's crate: the gateway implements [`LedgerFeed`] over its ledger (or another instance's
//! chain in the shared store), and the ledger stream and `GET /v1/instances` read through it.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

/// A boxed future, as the feed's methods return.
pub type FeedFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One committed record, as the stream sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Its JSON line (`Record::to_json_line`): one line, no newline.
    pub line: String,
}

/// What the stream reads: the gateway implements it over the ledger.
pub trait LedgerFeed: Send + Sync + 'static {
    /// Up to `limit` committed records from `from` on, in sequence order; `Err` with a
    /// sentence when the ledger cannot be read.
    fn range(&self, from: u64, limit: usize) -> FeedFuture<'_, Result<Vec<FeedRecord>, String>>;
    /// A watch on the committed head (the last durable record's `seq`). When its sender is
    /// gone, the ledger has closed.
    fn watch_head(&self) -> watch::Receiver<u64>;
    /// Resolves when the gateway is stopping: open streams end.
    fn stopping(&self) -> FeedFuture<'static, ()>;
    /// For a chain another instance writes, whose head no watch carries here: its committed
    /// head read from the store now (the stream asks every [`crate::POLL_HEAD`] instead of waiting
    /// on [`LedgerFeed::watch_head`]). `None`, the default: the watch is authoritative.
    fn poll_head(&self) -> Option<FeedFuture<'_, Result<u64, String>>> {
        None
    }
}
