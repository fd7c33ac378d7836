//! An instance's one writer on PostgreSQL: a thread of its own (`warden-ledger`) running a
//! small tokio runtime of its own, which owns one connection (made from the shared pool's
//! connect options, so it belongs to this runtime) that holds the instance's advisory lock
//! and does every write. It drains the bounded queue into group commits exactly as the SQLite
//! writer does, one transaction per group.
//!
//! After any failed or unknown commit (an error, a lost answer, a timeout), the connection is
//! dropped (which also releases the lock) and the next group starts by connecting again,
//! taking the lock again and reading the chain's tail and frontier from the database: a
//! commit whose answer was lost is then either there (and the chain continues after it) or
//! not, and never forks the chain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use tokio::sync::mpsc;
use warden_core::Clock;

use super::super::intake::{Command, Failed, Group, Intake, Next, Pending, Publish};
use super::super::schema::Tail;
use super::super::writer::fail;
use super::super::{Appended, LedgerConfig, LedgerError};
use super::{pg_error, tree};
use crate::chain::{GENESIS_HASH, format_time, record_hash};
use crate::merkle::Frontier;

/// How long connecting (and taking the lock) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The chain's end as the writer knows it.
#[derive(Debug, Clone)]
struct Edge {
    tail: Tail,
    frontier: Frontier,
}

/// The columns of one group, as the arrays `UNNEST` reads (the text borrowed from the jobs,
/// kept until the commit's outcome is known).
#[derive(Default)]
struct Rows<'a> {
    seq: Vec<i64>,
    time: Vec<String>,
    session: Vec<Option<&'a str>>,
    kind: Vec<&'static str>,
    payload: Vec<&'a str>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

pub(super) struct PgWriter {
    options: Arc<PgConnectOptions>,
    instance: String,
    lock_key: i64,
    // INVARIANT: `Some` only while it holds the instance's advisory lock.
    conn: Option<PgConnection>,
    intake: Intake,
    clock: Arc<dyn Clock>,
    commit_timeout: Duration,
    // INVARIANT: `Some` only while it equals the last committed record of the instance and
    // the tree of its committed records. After a failed or unknown commit it is `None`, and
    // both are read again (on a new connection) before the next write.
    edge: Option<Edge>,
    id: String,
    publish: Publish,
}

impl PgWriter {
    /// Connects, takes the instance's lock, makes its `ledger_instances` row (and ledger id)
    /// if missing, and reads its tail and frontier.
    pub(super) async fn open(
        options: Arc<PgConnectOptions>,
        instance: &str,
        clock: Arc<dyn Clock>,
        config: &LedgerConfig,
        rx: mpsc::Receiver<Command>,
        publish: Publish,
    ) -> Result<PgWriter, LedgerError> {
        let mut writer = PgWriter {
            options,
            instance: instance.to_owned(),
            lock_key: super::lock_key(instance),
            conn: None,
            intake: Intake::new(rx, config.max_batch.get()),
            clock,
            commit_timeout: config.append_timeout,
            edge: None,
            id: String::new(),
            publish,
        };
        writer.connect().await?;
        writer.id = writer.make_instance().await?;
        let edge = writer.read_edge().await?;
        writer.publish.committed(edge.tail.seq, &edge.frontier);
        writer.edge = Some(edge);
        Ok(writer)
    }

    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// A new connection holding the instance's lock, unless one is held.
    async fn connect(&mut self) -> Result<&mut PgConnection, LedgerError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let connecting = async {
                    let mut conn = self.options.connect().await.map_err(pg_error)?;
                    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                        .bind(self.lock_key)
                        .fetch_one(&mut conn)
                        .await
                        .map_err(pg_error)?;
                    if !locked {
                        let _ = conn.close().await;
                        return Err(LedgerError::InstanceLocked {
                            instance: self.instance.clone(),
                        });
                    }
                    Ok(conn)
                };
                tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                    .await
                    .unwrap_or_else(|_| {
                        Err(super::message(format!(
                            "no connection within {CONNECT_TIMEOUT:?}"
                        )))
                    })?
            }
        };
        Ok(self.conn.insert(conn))
    }

    /// The instance's ledger id, its row made (with a new UUID) if missing.
    async fn make_instance(&mut self) -> Result<String, LedgerError> {
        let instance = self.instance.clone();
        let id = uuid::Uuid::now_v7().to_string();
        let created = format_time(self.clock.now()).map_err(LedgerError::Time)?;
        let conn = self.connect().await?;
        sqlx::query(
            "INSERT INTO ledger_instances (instance, ledger_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (instance) DO NOTHING",
        )
        .bind(&instance)
        .bind(&id)
        .bind(&created)
        .execute(&mut *conn)
        .await
        .map_err(pg_error)?;
        sqlx::query_scalar("SELECT ledger_id FROM ledger_instances WHERE instance = $1")
            .bind(&instance)
            .fetch_one(&mut *conn)
            .await
            .map_err(pg_error)
    }

    /// The chain's end read from the database: its last record and tree. A chain that ends
    /// before its mark (the head a commit recorded) was truncated: refused.
    async fn read_edge(&mut self) -> Result<Edge, LedgerError> {
        let instance = self.instance.clone();
        let conn = self.connect().await?;
        let tail = super::read_tail(conn, &instance).await?;
        let mark: i64 = sqlx::query_scalar("SELECT mark FROM ledger_instances WHERE instance = $1")
            .bind(&instance)
            .fetch_one(&mut *conn)
            .await
            .map_err(pg_error)?;
        if u64::try_from(mark).unwrap_or(0) > tail.seq {
            return Err(super::message(format!(
                "the chain of instance `{instance}` ends at record {}, but record {mark} was \
                 committed: records were removed; run `warden audit verify --store`",
                tail.seq
            )));
        }
        let frontier = tree::open_frontier(conn, &instance, tail.seq).await?;
        Ok(Edge { tail, frontier })
    }

    /// Runs until every handle is dropped or a shutdown was asked for and the queue drained;
    /// then closes the connection (releasing the lock) and answers the shutdowns.
    pub(super) async fn run(mut self) {
        loop {
            let first = match self.intake.next() {
                Next::Receive => match self.intake.rx().recv().await {
                    Some(command) => Some(command),
                    None => break,
                },
                Next::Retry(pause) => {
                    tokio::time::sleep(pause).await;
                    None
                }
            };
            let mut group = self.intake.group(first);
            self.intake.linger(&mut group).await;
            if !group.jobs.is_empty() {
                let failed = self.commit(group).await;
                self.intake.after_commit(failed);
            }
        }
        let closed = match self.conn.take() {
            Some(mut conn) => {
                // Released before the shutdown is answered, so the instance can be opened again
                // at once (closing alone releases it only once the server has ended the
                // session, a moment later).
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(self.lock_key)
                    .execute(&mut conn)
                    .await;
                conn.close().await.map_err(pg_error)
            }
            None => Ok(()),
        };
        for ack in self.intake.shutdowns() {
            let _ = ack.send(closed.clone());
        }
    }

    /// Stamps, writes and commits `group` in one transaction, then answers each job. Returns
    /// the queued appends of a failed (or unknown) commit, to carry, with the tail that commit
    /// would have ended at: if it did commit (its answer lost), the chain read again ends
    /// exactly there and they are not written twice.
    async fn commit(&mut self, group: Group) -> Option<Failed> {
        let Group {
            mut jobs,
            carried,
            carried_tail,
        } = group;
        let edge = match self.edge.clone() {
            Some(edge) => Ok(edge),
            None => self.read_edge().await,
        };
        let edge = match edge {
            Ok(edge) => edge,
            Err(e) => {
                self.conn = None;
                return Some(fail(jobs, carried_tail, e));
            }
        };
        self.edge = Some(edge.clone());
        if carried_tail.is_some_and(|t| t == edge.tail) {
            for job in jobs.drain(..carried.min(jobs.len())) {
                job.found_committed(edge.tail.seq);
            }
        }
        let Edge {
            tail: mut next,
            mut frontier,
        } = edge;
        jobs.retain(|job| !job.abandoned());
        let mut rows = Rows::default();
        let mut stamped = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let s = self.stamp(&job.records, next, &mut rows);
            if let Ok((_, after)) = &s {
                next = *after;
            }
            stamped.push(s.map(|(appended, _)| appended));
        }
        let written = if rows.seq.is_empty() {
            Ok(())
        } else {
            self.write_rows(&rows, &mut frontier, next.seq).await
        };
        let wrote = !rows.seq.is_empty();
        drop(rows);
        match written {
            Ok(()) => {
                if wrote {
                    self.publish.committed(next.seq, &frontier);
                }
                self.edge = Some(Edge {
                    tail: next,
                    frontier,
                });
                for (job, s) in jobs.into_iter().zip(stamped) {
                    match s {
                        Ok(appended) => job.committed(appended),
                        Err(e) => job.failed(&e),
                    }
                }
                None
            }
            Err(e) => {
                // Failed or unknown: the connection (and with it the lock and any open
                // transaction) is dropped, and the chain's end is read again before the next.
                self.edge = None;
                self.conn = None;
                Some(fail(jobs, Some(next), e))
            }
        }
    }

    /// Writes `rows` (growing `frontier` by them) in one transaction ending the chain at
    /// `head`, within the commit timeout; tells the observer.
    async fn write_rows(
        &mut self,
        rows: &Rows<'_>,
        frontier: &mut Frontier,
        head: u64,
    ) -> Result<(), LedgerError> {
        let mut nodes = Vec::new();
        for hash in &rows.hash {
            if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                super::super::tree::push_record(frontier, &hash, &mut nodes);
            }
        }
        let started = Instant::now();
        let previous = self.edge.as_ref().map_or(0, |e| e.tail.seq);
        let timeout = self.commit_timeout;
        let written =
            match tokio::time::timeout(timeout, self.write(rows, &nodes, previous, head)).await {
                Ok(result) => result,
                Err(_) => Err(super::message(format!(
                    "the commit did not finish within {timeout:?} (it may or may not have \
                     committed; the chain is read again before the next)"
                ))),
            };
        self.publish
            .observe(rows.seq.len(), started.elapsed(), written.is_ok());
        written
    }

    /// Gives one job's records their sequence numbers, times and hashes, after `tail`.
    fn stamp<'a>(
        &self,
        records: &'a [Pending],
        tail: Tail,
        rows: &mut Rows<'a>,
    ) -> Result<(Vec<Appended>, Tail), LedgerError> {
        let mut stamped = Vec::with_capacity(records.len());
        let mut appended = Vec::with_capacity(records.len());
        let mut prev = tail;
        for r in records {
            let seq = prev.seq.saturating_add(1);
            let time = self.clock.now();
            let text = format_time(time).map_err(LedgerError::Time)?;
            let db_seq = i64::try_from(seq).map_err(|_| LedgerError::Exhausted)?;
            let kind = r.kind.as_str();
            let hash = record_hash(
                &prev.hash,
                seq,
                &text,
                r.session.as_deref(),
                kind,
                &r.payload,
            );
            stamped.push((
                db_seq,
                text,
                r.session.as_deref(),
                kind,
                r.payload.as_str(),
                prev.hash,
                hash,
            ));
            appended.push(Appended { seq, hash, time });
            prev = Tail { seq, hash };
        }
        for (seq, time, session, kind, payload, prev_hash, hash) in stamped {
            rows.seq.push(seq);
            rows.time.push(time);
            rows.session.push(session);
            rows.kind.push(kind);
            rows.payload.push(payload);
            rows.prev_hash.push(prev_hash.to_vec());
            rows.hash.push(hash.to_vec());
        }
        Ok((appended, prev))
    }

    /// One transaction: the rows, the tree's completed nodes, and the mark moved from
    /// `previous` to `head` (a compare-and-set: a mark that moved meanwhile means another
    /// writer, and nothing is committed).
    async fn write(
        &mut self,
        rows: &Rows<'_>,
        nodes: &[super::super::tree::Node],
        previous: u64,
        head: u64,
    ) -> Result<(), LedgerError> {
        let instance = self.instance.clone();
        let conn = self.connect().await?;
        let mut tx = conn.begin().await.map_err(pg_error)?;
        sqlx::query(
            "INSERT INTO ledger_records \
             (instance, seq, time, session, kind, payload, prev_hash, hash) \
             SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::bytea[], $8::bytea[])",
        )
        .bind(&instance)
        .bind(&rows.seq)
        .bind(&rows.time)
        .bind(&rows.session)
        .bind(&rows.kind)
        .bind(&rows.payload)
        .bind(&rows.prev_hash)
        .bind(&rows.hash)
        .execute(&mut *tx)
        .await
        .map_err(pg_error)?;
        tree::insert_nodes(&mut tx, &instance, nodes)
            .await
            .map_err(pg_error)?;
        let moved =
            sqlx::query("UPDATE ledger_instances SET mark = $2 WHERE instance = $1 AND mark = $3")
                .bind(&instance)
                .bind(tree::clamp(head))
                .bind(tree::clamp(previous))
                .execute(&mut *tx)
                .await
                .map_err(pg_error)?;
        if moved.rows_affected() != 1 {
            return Err(super::message(format!(
                "the mark of instance `{instance}` is not at record {previous}: another \
                 process wrote this chain"
            )));
        }
        tx.commit().await.map_err(pg_error)
    }
}

/// The genesis tail of an empty chain.
pub(super) const GENESIS: Tail = Tail {
    seq: 0,
    hash: GENESIS_HASH,
};
