//! The approval requests in the fleet's PostgreSQL database (several gateway instances): the
//! queries of [`ApprovalStore`](super::ApprovalStore) on PostgreSQL. The table is made by the
//! shared schema (`warden_session::state_db::postgres::schema::APPROVALS`); each row carries a
//! `version`, raised by every change, so an instance can tell which of the requests it holds
//! in memory another instance changed.
//!
//! Every change of a request is made in one transaction that locks its row (`SELECT … FOR
//! UPDATE`), re-reads it, writes the new state and announces it on [`NOTIFY_CHANNEL`]
//! (delivered only if, and when, the transaction commits). A new request is inserted in one
//! transaction that first looks for an open request (or an unexpired denial) of the same
//! action, and a partial unique index (`approvals_open_action`) keeps one open request per
//! action fleet-wide even when two instances insert at once.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use time::OffsetDateTime;

use super::{StoreError, decode, earlier_of};
use crate::request::{ActionHash, ApprovalRequest, Earlier, MAX_EARLIER, Status};

/// The PostgreSQL notification channel a change of a request is announced on (its payload:
/// the request id). The same name as `warden_session::Channel::Approvals`.
pub const NOTIFY_CHANNEL: &str = "warden_approvals";

/// The most rows one reconciliation reads (the open requests of the fleet, and the ones this
/// instance holds): past it, the rest wait for the next poll.
pub(super) const MAX_RECONCILE: i64 = 10_000;

/// A stored request and its row version.
pub(super) type Versioned = (ApprovalRequest, i64);

const LIVE: &str = "(status IN ('pending', 'granted') OR (status = 'denied' AND deadline > $1))";

/// The requests that can still matter at `now`: open ones, and denials before their deadline.
pub(super) async fn load_live(
    pool: &PgPool,
    now: OffsetDateTime,
) -> Result<Vec<Versioned>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, body, version FROM approvals WHERE {LIVE} ORDER BY id LIMIT $2"
    )))
    .bind(warden_core::text::rfc3339(now))
    .bind(MAX_RECONCILE)
    .fetch_all(pool)
    .await?;
    rows.iter().map(row_versioned).collect()
}

/// Inserts a new request, unless the action has an open request or an unexpired denial
/// already: then that one (`Some`), which the caller joins.
pub(super) async fn insert(
    pool: &PgPool,
    req: &ApprovalRequest,
    body: String,
) -> Result<Option<Versioned>, StoreError> {
    let mut tx = pool.begin().await?;
    if let Some(existing) = existing(&mut tx, &req.action_hash, req.requested_at).await? {
        tx.rollback().await?;
        return Ok(Some(existing));
    }
    let inserted = sqlx::query("INSERT INTO approvals (id, action_hash, status, requested_at, deadline, body, version) VALUES ($1, $2, $3, $4, $5, $6, 1) ON CONFLICT DO NOTHING")
        .bind(&req.id)
        .bind(req.action_hash.as_str())
        .bind(req.status.as_str())
        .bind(warden_core::text::rfc3339(req.requested_at))
        .bind(warden_core::text::rfc3339(req.deadline))
        .bind(body)
        .execute(&mut *tx)
        .await?;
    if inserted.rows_affected() == 0 {
        // Another instance inserted an open request for the same action a moment ago (the
        // unique index waited for its commit): that one.
        let existing = existing(&mut tx, &req.action_hash, req.requested_at).await?;
        tx.rollback().await?;
        return existing.map(Some).ok_or(StoreError::Duplicate);
    }
    notify(&mut tx, &req.id).await?;
    tx.commit().await?;
    Ok(None)
}

/// The open request of the action `hash`, or else its denial before its deadline.
async fn existing(
    tx: &mut Transaction<'static, Postgres>,
    hash: &ActionHash,
    now: OffsetDateTime,
) -> Result<Option<Versioned>, StoreError> {
    let row = sqlx::query(
        "SELECT id, body, version FROM approvals WHERE action_hash = $1 AND (status IN ('pending', 'granted') OR (status = 'denied' AND deadline > $2)) ORDER BY (status = 'denied'), id DESC LIMIT 1",
    )
    .bind(hash.as_str())
    .bind(warden_core::text::rfc3339(now))
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(row_versioned).transpose()
}

/// Locks the row of request `id` until the transaction ends, and reads it.
pub(super) async fn lock(
    tx: &mut Transaction<'static, Postgres>,
    id: &str,
) -> Result<Option<Versioned>, StoreError> {
    let row = sqlx::query("SELECT id, body, version FROM approvals WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(row_versioned).transpose()
}

/// Writes the new state of a locked request and announces it; returns the row's new
/// version.
pub(super) async fn update(
    tx: &mut Transaction<'static, Postgres>,
    next: &ApprovalRequest,
    body: String,
) -> Result<i64, StoreError> {
    let version: Option<i64> = sqlx::query_scalar(
        "UPDATE approvals SET status = $1, body = $2, version = version + 1 WHERE id = $3 RETURNING version",
    )
    .bind(next.status.as_str())
    .bind(body)
    .bind(&next.id)
    .fetch_optional(&mut **tx)
    .await?;
    let version = version.ok_or_else(|| StoreError::Missing(next.id.clone()))?;
    notify(tx, &next.id).await?;
    Ok(version)
}

async fn notify(tx: &mut Transaction<'static, Postgres>, id: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A stored request by id.
pub(super) async fn get(pool: &PgPool, id: &str) -> Result<Option<Versioned>, StoreError> {
    let row = sqlx::query("SELECT id, body, version FROM approvals WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(row_versioned).transpose()
}

/// The stored requests among `ids`.
pub(super) async fn get_many(pool: &PgPool, ids: &[String]) -> Result<Vec<Versioned>, StoreError> {
    let rows = sqlx::query("SELECT id, body, version FROM approvals WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await?;
    rows.iter().map(row_versioned).collect()
}

/// The ids and versions of the requests among `ids` and of every request that can still
/// matter at `now`, at most [`MAX_RECONCILE`].
pub(super) async fn versions(
    pool: &PgPool,
    ids: &[String],
    now: OffsetDateTime,
) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, version FROM approvals WHERE {LIVE} OR id = ANY($2) LIMIT $3"
    )))
    .bind(warden_core::text::rfc3339(now))
    .bind(ids)
    .bind(MAX_RECONCILE)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("version")?)))
        .collect()
}

/// Requests, newest first, at most `limit`; only those in `status` when given.
pub(super) async fn list(
    pool: &PgPool,
    status: Option<Status>,
    limit: u32,
) -> Result<Vec<ApprovalRequest>, StoreError> {
    let rows = match status {
        Some(s) => {
            sqlx::query(
                "SELECT id, body FROM approvals WHERE status = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(s.as_str())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query("SELECT id, body FROM approvals ORDER BY id DESC LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter()
        .map(|row| decode(row.try_get("id")?, &row.try_get::<String, _>("body")?))
        .collect()
}

/// The earlier refusals of the action `hash`.
pub(super) async fn earlier(pool: &PgPool, hash: &ActionHash) -> Result<Vec<Earlier>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, status, requested_at, body FROM approvals WHERE action_hash = $1 AND status IN ('denied', 'timed_out') ORDER BY id DESC LIMIT $2",
    )
    .bind(hash.as_str())
    .bind(i64::try_from(MAX_EARLIER).unwrap_or(8))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            earlier_of(
                row.try_get("id")?,
                &row.try_get::<String, _>("status")?,
                &row.try_get::<String, _>("requested_at")?,
                &row.try_get::<String, _>("body")?,
            )
        })
        .collect()
}

fn row_versioned(row: &PgRow) -> Result<Versioned, StoreError> {
    let req = decode(row.try_get("id")?, &row.try_get::<String, _>("body")?)?;
    Ok((req, row.try_get("version")?))
}
