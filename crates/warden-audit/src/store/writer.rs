//! The one writer: a dedicated OS thread that owns the only write connection (`rusqlite`,
//! driven directly, no hop to another thread per statement), drains the bounded queue into
//! group commits, and acknowledges each append after its transaction committed.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::mpsc;
use warden_core::Clock;
use warden_core::private;

use super::schema::{self, Tail};
use super::tree::{self, Node};
use super::wal::Checkpoints;
use super::{Appended, DB_FILE, LOCK_FILE, LedgerConfig, LedgerError};
use crate::chain::{format_time, record_hash};
use crate::merkle::Frontier;

/// Rows per `INSERT` statement (7 parameters each, far below SQLite's limit of 32766).
const ROWS_PER_INSERT: usize = 64;
/// Prepared statements kept: the `INSERT`s of every row count, `BEGIN`, `COMMIT`, `ROLLBACK`,
/// the tree's node insert and the tail and frontier queries, so a group of any size never
/// re-prepares.
const STATEMENT_CACHE: usize = ROWS_PER_INSERT + 12;

pub(super) use super::intake::{Ack, Command, Health, Job, Pending, Publish};
use super::intake::{Failed, Group, Intake, Next};

/// A stamped record, ready to insert (its text borrowed from its job, which is kept until the
/// commit's outcome is known, so a queued append whose commit failed can be carried whole).
struct Row<'a> {
    seq: i64,
    time: String,
    session: Option<&'a str>,
    kind: &'static str,
    payload: &'a str,
    prev_hash: [u8; 32],
    hash: [u8; 32],
}

/// The ledger's end as the writer knows it: the last record and the tree's right edge.
#[derive(Debug, Clone)]
struct Edge {
    tail: Tail,
    /// The tree of the records `1..=tail.seq`.
    frontier: Frontier,
}

pub(super) struct Writer {
    conn: Connection,
    intake: Intake,
    clock: Arc<dyn Clock>,
    // INVARIANT: `Some` only while it equals the last committed record in the database and
    // the tree of the committed records (whose stored nodes the same transactions wrote).
    // After a failed commit it is `None`, and both are read again before the next write.
    edge: Option<Edge>,
    /// The ledger's identity (in `meta`).
    id: String,
    /// `INSERT` statements by row count (index `n - 1`).
    inserts: Vec<String>,
    /// The committed head and tree head, published after each commit (and at open), so
    /// readers following the ledger wake on new records without polling; and the observer.
    publish: Publish,
    /// Runs the wait of a group of queued appends for more work (`Intake::linger`) on this
    /// thread; `None` if it could not be built, and such groups are committed at once.
    timer: Option<tokio::runtime::Runtime>,
    /// The WAL's checkpoints, run off the commit path (see [`super::wal`]).
    wal: Checkpoints,
    /// Held for the writer's lifetime: one writing process per ledger.
    _lock: File,
}

impl Writer {
    /// Takes the lock, opens (or creates) the database, makes the tree's tables and the
    /// ledger id if missing (rebuilding `tree_nodes` from the records if it does not match
    /// them), and reads its last record and the tree's right edge. Blocking: runs on the
    /// writer's thread.
    pub(super) fn open(
        dir: &Path,
        clock: Arc<dyn Clock>,
        config: &LedgerConfig,
        rx: mpsc::Receiver<Command>,
        publish: Publish,
    ) -> Result<Writer, LedgerError> {
        // The owner's only: the directory 0700, every file 0600, the database created before
        // SQLite opens it so its `-wal` and `-shm` files get its mode (see
        // `warden_core::private`).
        private::private_dir(dir).map_err(|e| LedgerError::CreateDir {
            path: dir.to_path_buf(),
            source: Arc::new(e),
        })?;
        let lock = lock(dir)?;
        let path = dir.join(DB_FILE);
        private::private_database(&path).map_err(|e| schema::open_error(&path, e))?;
        let conn = schema::connect_writer(&path, config)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let id = tree::prepare(&conn, &path)?;
        let tail = schema::read_tail(&conn).map_err(|source| LedgerError::Open {
            path: path.clone(),
            source,
        })?;
        let frontier = tree::open_frontier(&conn, tail.seq, &path)?;
        publish.committed(tail.seq, &frontier);
        let wal = Checkpoints::start(&conn, &path, config, publish.observer.clone());
        Ok(Writer {
            conn,
            intake: Intake::new(rx, config.max_batch.get()),
            clock,
            edge: Some(Edge { tail, frontier }),
            id,
            inserts: (1..=ROWS_PER_INSERT).map(insert_sql).collect(),
            publish,
            timer: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "The ledger writer commits queued records at once: it cannot start the timer that groups them.");
                })
                .ok(),
            wal,
            _lock: lock,
        })
    }

    /// The ledger's identity, as stored in `meta`.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// The ledger's end, read from the database (after a failed commit).
    fn read_edge(&self) -> Result<Edge, super::error::Source> {
        let tail = schema::read_tail(&self.conn)?;
        let frontier = tree::read_frontier(&self.conn, tail.seq)?;
        Ok(Edge { tail, frontier })
    }

    /// Runs until every handle is dropped or a shutdown was asked for and the queue drained,
    /// then closes the database, releases the lock and answers the shutdowns. Blocking: the
    /// body of the writer's thread (never call it on an async task).
    pub(super) fn run(mut self) {
        loop {
            let first = match self.intake.next() {
                Next::Receive => match self.intake.rx().blocking_recv() {
                    Some(command) => Some(command),
                    None => break,
                },
                Next::Retry(pause) => {
                    std::thread::sleep(pause);
                    None
                }
            };
            let mut group = self.intake.group(first);
            if let Some(timer) = &self.timer {
                timer.block_on(self.intake.linger(&mut group));
            }
            if !group.jobs.is_empty() {
                let failed = self.commit(group);
                self.intake.after_commit(failed);
            }
        }
        let shutdowns = self.intake.shutdowns();
        let Writer {
            conn,
            wal,
            _lock: lock,
            ..
        } = self;
        // The checkpointer first: closing the last connection checkpoints the WAL into the
        // database file.
        wal.stop();
        let closed = conn
            .close()
            .map_err(|(_, e)| LedgerError::Write(Arc::new(e)));
        // Released before the shutdown is answered, so the ledger can be reopened at once.
        drop(lock);
        for ack in shutdowns {
            let _ = ack.send(closed.clone());
        }
    }

    /// Stamps, writes and commits `group` in one transaction, then answers each job. Returns
    /// the queued appends of a failed commit (to carry), with the tail that commit would have
    /// ended at and its error.
    fn commit(&mut self, group: Group) -> Option<Failed> {
        let Group {
            mut jobs,
            carried,
            carried_tail,
        } = group;
        let edge = match &self.edge {
            Some(edge) => edge.clone(),
            None => match self.read_edge() {
                Ok(edge) => self.edge.insert(edge).clone(),
                Err(e) => {
                    return Some(fail(jobs, None, LedgerError::Write(e)));
                }
            },
        };
        // The failed commit of the carried appends did happen: they are in the chain already.
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
        let mut rows = Vec::new();
        let mut stamped = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let s = self.stamp(&job.records, next, &mut rows);
            if let Ok((_, after)) = &s {
                next = *after;
            }
            stamped.push(s.map(|(appended, _)| appended));
        }
        let started = std::time::Instant::now();
        // The tree grows by the same records, and its completed subtrees are written in the
        // same transaction as they are.
        let mut nodes = Vec::new();
        for row in &rows {
            tree::push_record(&mut frontier, &row.hash, &mut nodes);
        }
        let wrote = !rows.is_empty();
        let written = if !wrote {
            Ok(())
        } else {
            let written = self.write(&rows, &nodes);
            self.publish
                .observe(rows.len(), started.elapsed(), written.is_ok());
            written
        };
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
                // Published once durable (above), before the appenders hear of it.
                for (job, s) in jobs.into_iter().zip(stamped) {
                    match s {
                        Ok(appended) => job.committed(appended),
                        Err(e) => job.failed(&e),
                    }
                }
                if wrote {
                    // After the appenders heard of the commit: a checkpoint the writer must run
                    // itself delays the next group, never this one.
                    self.wal.after_commit(&self.conn);
                }
                None
            }
            Err(e) => {
                self.edge = None;
                Some(fail(jobs, Some(next), LedgerError::Write(Arc::new(e))))
            }
        }
    }

    /// Gives one job's records their sequence numbers, times and hashes, after `tail`.
    /// On error nothing is added to `rows`.
    fn stamp<'a>(
        &self,
        records: &'a [Pending],
        tail: Tail,
        rows: &mut Vec<Row<'a>>,
    ) -> Result<(Vec<Appended>, Tail), LedgerError> {
        let start = rows.len();
        let mut appended = Vec::with_capacity(records.len());
        let mut prev = tail;
        for r in records {
            let seq = prev.seq.saturating_add(1);
            let time = self.clock.now();
            let stamped = format_time(time)
                .map_err(LedgerError::Time)
                .and_then(|text| {
                    let db_seq = i64::try_from(seq).map_err(|_| LedgerError::Exhausted)?;
                    Ok((text, db_seq))
                });
            let (time_text, db_seq) = match stamped {
                Ok(s) => s,
                Err(e) => {
                    rows.truncate(start);
                    return Err(e);
                }
            };
            let kind = r.kind.as_str();
            let hash = record_hash(
                &prev.hash,
                seq,
                &time_text,
                r.session.as_deref(),
                kind,
                &r.payload,
            );
            rows.push(Row {
                seq: db_seq,
                time: time_text,
                session: r.session.as_deref(),
                kind,
                payload: &r.payload,
                prev_hash: prev.hash,
                hash,
            });
            appended.push(Appended { seq, hash, time });
            prev = Tail { seq, hash };
        }
        Ok((appended, prev))
    }

    /// Inserts `rows` and the tree's completed `nodes` in one transaction and commits it.
    ///
    /// The transaction is driven with plain `BEGIN IMMEDIATE` / `COMMIT` / `ROLLBACK`
    /// statements, and a failed write always ends with an explicit ROLLBACK (its "no
    /// transaction is active" error ignored): when a COMMIT fails on an I/O error (a full disk),
    /// SQLite may or may not have rolled back already, and the connection must be back in
    /// autocommit before the next batch, or every later write would run inside a transaction
    /// that is never committed, acknowledged but never durable. (This is why the writer never
    /// used a transaction guard that tracks its own depth, as sqlx's once got stuck at 1.)
    fn write(&mut self, rows: &[Row<'_>], nodes: &[Node]) -> rusqlite::Result<()> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let result = self.insert_and_commit(rows, nodes);
        if result.is_err()
            && let Ok(mut rollback) = self.conn.prepare_cached("ROLLBACK")
        {
            let _ = rollback.execute([]);
        }
        result
    }

    fn insert_and_commit(&mut self, rows: &[Row<'_>], nodes: &[Node]) -> rusqlite::Result<()> {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let Some(sql) = chunk.len().checked_sub(1).and_then(|i| self.inserts.get(i)) else {
                break;
            };
            let mut insert = self.conn.prepare_cached(sql)?;
            let mut at = 0;
            let mut next = || {
                at += 1;
                at
            };
            for r in chunk {
                insert.raw_bind_parameter(next(), r.seq)?;
                insert.raw_bind_parameter(next(), r.time.as_str())?;
                insert.raw_bind_parameter(next(), r.session)?;
                insert.raw_bind_parameter(next(), r.kind)?;
                insert.raw_bind_parameter(next(), r.payload)?;
                insert.raw_bind_parameter(next(), r.prev_hash.as_slice())?;
                insert.raw_bind_parameter(next(), r.hash.as_slice())?;
            }
            insert.raw_execute()?;
        }
        tree::insert_nodes(&self.conn, nodes)?;
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }
}

/// Answers every waiting job of a failed commit with `error`; keeps the queued ones, to carry
/// (`tail`: where the commit would have ended).
pub(super) fn fail(jobs: Vec<Job>, tail: Option<Tail>, error: LedgerError) -> Failed {
    let mut queued = Vec::new();
    for job in jobs {
        if job.queued() {
            queued.push(job);
        } else {
            job.failed(&error);
        }
    }
    Failed {
        queued,
        tail,
        error,
    }
}

/// `INSERT INTO records (...) VALUES (?, ...), ...` for `n` rows. Only placeholders are
/// spliced in: no data ever is.
fn insert_sql(n: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?)";
    let mut sql = format!("INSERT INTO records ({}) VALUES ", schema::COLUMNS);
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql
}

/// Takes the ledger's advisory lock, so two processes never write one ledger (their
/// in-memory tails would race; the primary key would refuse the loser's records).
fn lock(dir: &Path) -> Result<File, LedgerError> {
    let path = dir.join(LOCK_FILE);
    private::private_file(&path).map_err(|e| LedgerError::Lock {
        path: path.clone(),
        source: Arc::new(e),
    })?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LedgerError::Lock {
            path: path.clone(),
            source: Arc::new(e),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LedgerError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(LedgerError::Lock {
            path,
            source: Arc::new(e),
        }),
    }
}
