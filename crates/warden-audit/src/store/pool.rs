//! The reader's connections: a small pool of read-only `rusqlite` connections, each used by one
//! blocking task at a time, so a query never blocks the async runtime.
//!
//! Bounds: at most [`MAX_CONNECTIONS`] connections exist at once (idle or in use), and at most
//! as many of the pool's queries run at once (each on a `spawn_blocking` thread); further
//! queries wait, asynchronously, for a connection. Connections are opened on demand with
//! [`connect_reader`](super::schema::connect_reader) (read-only, format checked) and kept
//! until the pool is closed or dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::LedgerError;
use super::schema::connect_reader;

/// The most connections (and running queries) one pool has.
const MAX_CONNECTIONS: usize = 4;

/// A bounded pool of read-only connections to one ledger; shared by the clones of a
/// [`LedgerReader`](super::LedgerReader).
#[derive(Debug)]
pub(super) struct ReadPool {
    path: PathBuf,
    // INVARIANT: a connection exists only in `idle` or in the hands of a query that holds one
    // of these permits, so there are never more connections than `MAX_CONNECTIONS`.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

/// The error of a query on a closed pool.
fn closed() -> LedgerError {
    LedgerError::Read(Arc::new(std::io::Error::other(
        "the ledger reader is closed",
    )))
}

impl ReadPool {
    /// A pool for the ledger `path` that starts with `first`, a connection opened by
    /// [`connect_reader`].
    pub(super) fn new(path: PathBuf, first: Connection) -> ReadPool {
        ReadPool {
            path,
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            idle: Mutex::new(vec![first]),
            closed: AtomicBool::new(false),
        }
    }

    /// The database file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `query` on one of the pool's connections, on a blocking thread, once a connection
    /// is free. A connection that cannot be opened, a closed pool, or a query that did not
    /// finish (it panicked) is [`LedgerError::Read`]; otherwise the query's own result.
    ///
    /// If the caller stops waiting, the query still runs to its end (and keeps its
    /// connection until then).
    pub(super) async fn run<T, F>(self: &Arc<Self>, query: F) -> Result<T, LedgerError>
    where
        F: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let taken = pool.idle().pop();
            let conn = match taken {
                Some(conn) => conn,
                None => connect_reader(&pool.path).map_err(|e| LedgerError::Read(Arc::new(e)))?,
            };
            let result = query(&conn);
            pool.idle().push(conn);
            // Released only once the connection is back, for the next query to take.
            drop(permit);
            result
        })
        .await
        .map_err(|e| LedgerError::Read(Arc::new(e)))?
    }

    /// Refuses new queries (they fail with [`LedgerError::Read`], as do those still waiting
    /// for a connection), waits for the running ones to end, and closes every connection.
    pub(super) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Queued behind the queries waiting now (which see `closed` and give their permit
        // back) and granted once the running ones have ended.
        let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
        let running_ended = self.permits.acquire_many(all).await;
        self.permits.close();
        drop(running_ended);
        let idle = std::mem::take(&mut *self.idle());
        for conn in idle {
            // Closing a read-only connection has nothing to lose; dropped either way.
            let _ = conn.close();
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // The lock is held only to push or pop; a panic elsewhere cannot leave the list
        // inconsistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
