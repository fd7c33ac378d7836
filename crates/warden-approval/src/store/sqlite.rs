//! The approval requests in `state.db` (one gateway instance): the table, and the queries of
//! [`ApprovalStore`](super::ApprovalStore) on SQLite. The in-memory index is authoritative
//! for the requests that can still matter; the table is written through on every change.

use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use super::{StoreError, decode, earlier_of};
use crate::request::{ActionHash, ApprovalRequest, Earlier, MAX_EARLIER, Status};

/// Creates the table and its index (if missing).
pub(super) async fn create_tables(pool: &SqlitePool) -> Result<(), StoreError> {
    for stmt in [
        "CREATE TABLE IF NOT EXISTS approvals (id TEXT PRIMARY KEY, action_hash TEXT NOT NULL, status TEXT NOT NULL, requested_at TEXT NOT NULL, deadline TEXT NOT NULL, body TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, requested_at)",
    ] {
        sqlx::query(stmt).execute(pool).await?;
    }
    Ok(())
}

/// The requests that can still matter at `now`: open ones, and denials before their
/// deadline.
pub(super) async fn load_live(
    pool: &SqlitePool,
    now: OffsetDateTime,
) -> Result<Vec<ApprovalRequest>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, body FROM approvals WHERE status IN ('pending', 'granted') OR (status = 'denied' AND deadline > ?) ORDER BY id",
    )
    .bind(warden_core::text::rfc3339(now))
    .fetch_all(pool)
    .await?;
    rows.iter().map(row_request).collect()
}

/// Inserts a new request.
pub(super) async fn insert(
    pool: &SqlitePool,
    req: &ApprovalRequest,
    body: String,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO approvals (id, action_hash, status, requested_at, deadline, body) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&req.id)
        .bind(req.action_hash.as_str())
        .bind(req.status.as_str())
        .bind(warden_core::text::rfc3339(req.requested_at))
        .bind(warden_core::text::rfc3339(req.deadline))
        .bind(body)
        .execute(pool)
        .await?;
    Ok(())
}

/// Writes the new state of a request.
pub(super) async fn update(
    pool: &SqlitePool,
    next: &ApprovalRequest,
    body: String,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE approvals SET status = ?, body = ? WHERE id = ?")
        .bind(next.status.as_str())
        .bind(body)
        .bind(&next.id)
        .execute(pool)
        .await?;
    Ok(())
}

/// A stored request by id.
pub(super) async fn get(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<ApprovalRequest>, StoreError> {
    let row = sqlx::query("SELECT id, body FROM approvals WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(row_request).transpose()
}

/// Requests, newest first, at most `limit`; only those in `status` when given.
pub(super) async fn list(
    pool: &SqlitePool,
    status: Option<Status>,
    limit: u32,
) -> Result<Vec<ApprovalRequest>, StoreError> {
    let rows = match status {
        Some(s) => {
            sqlx::query("SELECT id, body FROM approvals WHERE status = ? ORDER BY id DESC LIMIT ?")
                .bind(s.as_str())
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
        None => {
            sqlx::query("SELECT id, body FROM approvals ORDER BY id DESC LIMIT ?")
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter().map(row_request).collect()
}

/// The earlier refusals of the action `hash`.
pub(super) async fn earlier(
    pool: &SqlitePool,
    hash: &ActionHash,
) -> Result<Vec<Earlier>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, status, requested_at, body FROM approvals WHERE action_hash = ? AND status IN ('denied', 'timed_out') ORDER BY id DESC LIMIT ?",
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

fn row_request(row: &sqlx::sqlite::SqliteRow) -> Result<ApprovalRequest, StoreError> {
    decode(row.try_get("id")?, &row.try_get::<String, _>("body")?)
}
