//! Decide-API actions awaiting their result report in the fleet's PostgreSQL store, so that
//! a report reaches its action on any instance, exactly once.
//!
//! Each allowed action is a row of `pending_results` (its session, tool, arguments, the
//! instance that allowed it, and its deadline on the database's clock). Whoever locks the row
//! first closes the action, and deletes the row in the transaction that held the lock, after
//! its record is in the ledger:
//!
//! - a **report** on any instance locks the row (`SELECT … FOR UPDATE`, waiting for a sweep
//!   that holds it), checks that the reporting session is the one that was allowed the action,
//!   records the `action_result` in its own chain (naming the instance that allowed it, as
//!   `allowed_on`), then deletes the row;
//! - the allowing instance's **sweep** locks the rows past their deadline (`FOR UPDATE SKIP
//!   LOCKED`: a row a report holds is left to it) and records them as `unknown`; it also takes
//!   the rows of instances that have not swept them for [`ABANDONED_AFTER`] past their
//!   deadline (an instance that went away).
//!
//! A report that finds no row (taken already, never allowed, or another session's) is refused
//! as unknown; a ledger that cannot record releases the row, so the action stays pending. The
//! one window left: a ledger record committed and the row's delete lost with the database
//! connection before its commit, after which the sweep records `unknown` as well (two
//! results, never none).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::{PgPool, Postgres, Row as _, Transaction};
use warden_core::InstanceId;

use crate::governor::Governor;
use crate::outstanding::OutstandingAction;

/// Most actions one session may have awaiting their result in the store; past it, a new one
/// waits in the allowing instance's memory (its report then works on that instance only).
pub const MAX_PENDING_PER_SESSION: i64 = 1_000;
/// Most actions one instance may have awaiting their result in the store (as
/// [`super::MAX_PENDING_RESULTS`] in memory); past it, as past the session's bound.
pub const MAX_PENDING_PER_INSTANCE: i64 = super::MAX_PENDING_RESULTS as i64;
/// Rows the sweep closes in one transaction.
const SWEEP_BATCH: i64 = 500;
/// How long past its deadline an action's row waits for the instance that allowed it to
/// sweep it; after that any instance records it as `unknown`.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// The fleet's store of decide-API actions awaiting their result.
#[derive(Debug, Clone)]
pub struct SharedResults {
    pool: PgPool,
    instance: InstanceId,
    deadline: Duration,
}

/// An action awaiting its result, taken from the store: its row stays locked until
/// [`Claim::close`] (deleted) or until dropped (released, the action stays pending).
#[derive(Debug)]
pub struct Claim {
    tx: Transaction<'static, Postgres>,
    /// The action id.
    pub action_id: String,
    /// The tool.
    pub tool: String,
    /// The arguments it was allowed with.
    pub args: Value,
    /// How long ago it was allowed (on the database's clock).
    pub elapsed: Duration,
    /// The instance that allowed it.
    pub allowed_on: String,
}

impl Claim {
    /// Deletes the row and commits: the action is closed on every instance.
    pub async fn close(mut self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM pending_results WHERE action = $1")
            .bind(&self.action_id)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await
    }
}

impl SharedResults {
    /// The store on `pool` for `instance`, whose decide-API actions are overdue `deadline`
    /// after they were allowed.
    pub fn new(pool: PgPool, instance: InstanceId, deadline: Duration) -> SharedResults {
        SharedResults {
            pool,
            instance,
            deadline,
        }
    }

    /// Stores an allowed action. `Ok(false)` when its session or this instance has reached
    /// its bound (nothing stored).
    pub async fn insert(
        &self,
        action_id: &str,
        session: &str,
        tool: &str,
        args: &Value,
    ) -> Result<bool, sqlx::Error> {
        let deadline_ms = i64::try_from(self.deadline.as_millis()).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "INSERT INTO pending_results (action, session, instance, tool, args, due) \
             SELECT $1, $2, $3, $4, $5, now() + make_interval(secs => $6::double precision / 1000) \
             WHERE (SELECT count(*) FROM pending_results WHERE session = $2) < $7 \
               AND (SELECT count(*) FROM pending_results WHERE instance = $3) < $8",
        )
        .bind(action_id)
        .bind(session)
        .bind(self.instance.as_str())
        .bind(tool)
        .bind(args.to_string())
        .bind(deadline_ms)
        .bind(MAX_PENDING_PER_SESSION)
        .bind(MAX_PENDING_PER_INSTANCE)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes the action `action_id` for `session`'s report: its row locked (waiting for a
    /// sweep or another report that holds it). `None` when no such action awaits its result,
    /// or it is another session's (both are refused alike).
    pub async fn claim(
        &self,
        action_id: &str,
        session: &str,
    ) -> Result<Option<Claim>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT session, tool, args, instance, \
             (EXTRACT(EPOCH FROM (clock_timestamp() - allowed_at)) * 1000)::BIGINT AS elapsed_ms \
             FROM pending_results WHERE action = $1 FOR UPDATE",
        )
        .bind(action_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.try_get::<String, _>("session")? != session {
            return Ok(None);
        }
        let args: String = row.try_get("args")?;
        let args = serde_json::from_str(&args).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let elapsed_ms: i64 = row.try_get("elapsed_ms")?;
        Ok(Some(Claim {
            action_id: action_id.to_owned(),
            tool: row.try_get("tool")?,
            args,
            elapsed: Duration::from_millis(u64::try_from(elapsed_ms).unwrap_or(0)),
            allowed_on: row.try_get("instance")?,
            tx,
        }))
    }

    /// Records as `unknown` the actions this instance allowed whose deadline passed (and those
    /// of any instance abandoned [`ABANDONED_AFTER`] past theirs), in `governor`'s ledger, at
    /// most one batch; returns how many. A row a report holds is skipped; a ledger that cannot
    /// record leaves them all pending for the next sweep.
    pub async fn sweep(&self, governor: &Governor) -> Result<usize, SweepError> {
        let mut tx = self.pool.begin().await?;
        let abandoned_ms = i64::try_from(ABANDONED_AFTER.as_millis()).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT action, session, tool, instance FROM pending_results \
             WHERE (instance = $1 AND due <= now()) \
                OR due <= now() - make_interval(secs => $2::double precision / 1000) \
             ORDER BY due LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.instance.as_str())
        .bind(abandoned_ms)
        .bind(SWEEP_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let action = OutstandingAction {
                action_id: row.try_get("action")?,
                session: row.try_get("session")?,
                tool: row.try_get("tool")?,
                due: std::time::Instant::now(),
            };
            let allowed_on: String = row.try_get("instance")?;
            let mut record = action.unknown_result("no result was reported within the deadline");
            if let Some(obj) = record.payload.as_object_mut() {
                obj.insert("allowed_on".to_owned(), Value::String(allowed_on));
            }
            ids.push(action.action_id);
            records.push(record);
        }
        governor.ledger().append_batch(records).await?;
        sqlx::query("DELETE FROM pending_results WHERE action = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ids.len())
    }

    /// Sweeps every `interval` until `stop`.
    pub fn sweep_in_background(
        self,
        governor: Arc<Governor>,
        tasks: &tokio_util::task::TaskTracker,
        stop: tokio_util::sync::CancellationToken,
        interval: Duration,
    ) {
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {
                        // Until the batches run dry (a backlog after an outage), one at a time.
                        loop {
                            match self.sweep(&governor).await {
                                Ok(n) if i64::try_from(n) == Ok(SWEEP_BATCH) => {}
                                Ok(_) => break,
                                Err(e) => {
                                    tracing::warn!(error = %e, "Overdue decide-API actions could not be recorded as unknown; the next sweep tries again.");
                                    break;
                                }
                            }
                        }
                    }
                    () = stop.cancelled() => break,
                }
            }
        });
    }
}

/// Why a sweep recorded nothing.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The store failed.
    #[error("pending results: {0}")]
    Store(#[from] sqlx::Error),
    /// The ledger could not record the results.
    #[error(transparent)]
    Ledger(#[from] warden_audit::LedgerError),
}
