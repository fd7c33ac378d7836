//! The ledger on PostgreSQL, shared by a fleet: one hash chain per instance in
//! `ledger_records` (its `instance` column names the chain; `seq` counts from 1 per
//! instance, with the genesis rules of the SQLite ledger), each instance's Merkle subtrees in
//! `ledger_tree_nodes`, and the instances with their ledger identities and marks (the last
//! committed `seq`, moved in the same transaction as the records) in `ledger_instances`. The
//! tables are created by the state store's migrations (`warden_session::state_db::postgres`).
//!
//! - The writer ([`Ledger::open_postgres`], `writer.rs`) runs on a thread of its own with a
//!   runtime and a connection of its own; the connection holds a session-level advisory lock
//!   on the instance for the writer's life, so one instance has one writer.
//! - The reader ([`LedgerReader::open_postgres`], `reader.rs`) reads one instance's chain
//!   with every query of the SQLite reader, or every instance merged by time.
//! - The tree (`tree.rs`) answers the Merkle questions from the stored nodes.

mod reader;
mod scan;
mod tree;
mod writer;

use std::path::Path;
use std::sync::Arc;

use sqlx::{PgConnection, PgPool, Row as _};
use tokio::sync::{mpsc, oneshot, watch};
use warden_core::{Clock, InstanceId};

pub(super) use reader::PgReader;

use super::schema::Tail;
use super::{CommitObserver, Ledger, LedgerConfig, LedgerError, LedgerReader, TreeHead};
use crate::merkle;

/// One instance of the shared store's ledger: what [`LedgerReader::instances`] lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceInfo {
    /// The instance's name (`--instance`); on SQLite, the ledger id.
    pub instance: String,
    /// Its ledger's identity (a UUID made when its chain was started).
    pub ledger: String,
    /// The last record its writer committed (its mark; on SQLite the last record).
    pub head: u64,
}

/// The error of a failed PostgreSQL call.
pub(super) fn pg_error(e: sqlx::Error) -> LedgerError {
    LedgerError::Postgres(Arc::new(e))
}

/// A [`LedgerError::Postgres`] with a sentence of ours.
pub(super) fn message(text: String) -> LedgerError {
    LedgerError::Postgres(Arc::new(std::io::Error::other(text)))
}

/// The advisory lock key of `instance`'s writer: the first 8 bytes of
/// SHA-256(`warden-ledger:` + instance). (A collision between two instance names would make
/// one refuse to start, never two write one chain.)
pub(super) fn lock_key(instance: &str) -> i64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("warden-ledger:{instance}").as_bytes());
    let mut bytes = [0u8; 8];
    for (b, d) in bytes.iter_mut().zip(digest.iter()) {
        *b = *d;
    }
    i64::from_be_bytes(bytes)
}

/// `instance`'s last record (`seq` 0 and the genesis hash for an empty chain).
pub(super) async fn read_tail(
    conn: &mut PgConnection,
    instance: &str,
) -> Result<Tail, LedgerError> {
    let row = sqlx::query(
        "SELECT seq, hash FROM ledger_records WHERE instance = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(instance)
    .fetch_optional(&mut *conn)
    .await
    .map_err(pg_error)?;
    let Some(row) = row else {
        return Ok(writer::GENESIS);
    };
    let seq: i64 = row.try_get(0).map_err(pg_error)?;
    let hash: Vec<u8> = row.try_get(1).map_err(pg_error)?;
    let malformed = |reason: &str| LedgerError::Malformed {
        seq,
        reason: reason.to_owned(),
    };
    Ok(Tail {
        seq: u64::try_from(seq).map_err(|_| malformed("its sequence number is negative"))?,
        hash: hash
            .try_into()
            .map_err(|_| malformed("its hash is not 32 bytes"))?,
    })
}

impl Ledger {
    /// Opens `instance`'s chain in the shared store and starts its writer, on a thread of its
    /// own (`warden-ledger`) with a small runtime of its own and one connection made from
    /// `pool`'s connect options (sqlx connections belong to the runtime that made them): one
    /// group commit per transaction, the chain's tail and Merkle frontier read at open, the
    /// instance held by a session-level advisory lock for as long as the writer runs (a second
    /// writer of the same instance is refused with [`LedgerError::InstanceLocked`]). `dir` is
    /// the local data directory (what [`Ledger::dir`] answers).
    ///
    /// Fails with [`LedgerError::Postgres`] if the store cannot be reached, or if the chain
    /// ends before its mark (records were removed).
    pub async fn open_postgres(
        pool: PgPool,
        instance: &InstanceId,
        dir: &Path,
        clock: Arc<dyn Clock>,
        config: LedgerConfig,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> Result<Ledger, LedgerError> {
        let (tx, rx) = mpsc::channel(config.queue_capacity.get());
        let (head_tx, committed) = watch::channel(0);
        let (tree_tx, tree) = watch::channel(TreeHead {
            size: 0,
            root: merkle::empty_root(),
        });
        let publish = super::intake::Publish {
            head: head_tx,
            tree: tree_tx,
            observer,
        };
        let append_timeout = config.append_timeout;
        let (opened_tx, opened) = oneshot::channel();
        let options = pool.connect_options();
        let name = instance.as_str().to_owned();
        std::thread::Builder::new()
            .name("warden-ledger".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = opened_tx.send(Err(LedgerError::Postgres(Arc::new(e))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match writer::PgWriter::open(options, &name, clock, &config, rx, publish).await
                    {
                        Ok(writer) => {
                            if opened_tx.send(Ok(Arc::from(writer.id()))).is_ok() {
                                writer.run().await;
                            }
                        }
                        Err(e) => {
                            let _ = opened_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| LedgerError::Postgres(Arc::new(e)))?;
        let id = opened.await.map_err(|_| LedgerError::Closed)??;
        Ok(Ledger::handle(
            tx,
            dir,
            append_timeout,
            (committed, tree),
            id,
            Some(Arc::new((pool, instance.clone()))),
        ))
    }
}

impl LedgerReader {
    /// A reader of `instance`'s chain in the shared store, or, with `None`, of every
    /// instance's records merged by (time, instance, seq) for the queries by session, kind and
    /// time (`tail`, `session_page`, `session_count`, `newest_of_kinds`,
    /// `session_kinds_before`); the queries by sequence number, the tree, `id` and `verify`
    /// need one instance and answer [`LedgerError::Unsupported`] on the merged reader.
    ///
    /// Nothing is read at open except, with an instance, that it exists
    /// ([`LedgerError::UnknownInstance`] otherwise).
    pub async fn open_postgres(
        pool: PgPool,
        instance: Option<InstanceId>,
    ) -> Result<LedgerReader, LedgerError> {
        let reader = PgReader::new(pool, instance.map(|i| i.as_str().to_owned()));
        reader.check().await?;
        Ok(LedgerReader::postgres(reader))
    }
}
