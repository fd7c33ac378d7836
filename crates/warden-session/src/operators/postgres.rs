//! The operator credentials on PostgreSQL: the same rows as in `state.db`, shared by every
//! instance of the fleet (read at each request, never cached).

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Issued, MAX_OPERATOR_LIST, OperatorIdentity, OperatorRole, OperatorToken};
use crate::state_db::{StoreError, fmt_time, parse_time};
use crate::tokens::{self, Plane, TokenHash};

/// An arbitrary, fixed key for the advisory lock under which the bootstrap credential is
/// written (one writer fleet-wide).
const BOOTSTRAP_LOCK: i64 = 0x5741_5244_454e_0002;

pub(super) async fn create(
    pg: &PgPool,
    name: &str,
    role: &OperatorRole,
    now: OffsetDateTime,
    recorded: bool,
) -> Result<Issued, StoreError> {
    let (token, hash) = tokens::generate(Plane::Operator)?;
    let id = Uuid::now_v7().to_string();
    insert(pg, (&id, &hash), name, role, now, recorded).await?;
    Ok(Issued { id, token })
}

async fn insert<'e, E>(
    executor: E,
    (id, hash): (&str, &TokenHash),
    name: &str,
    role: &OperatorRole,
    now: OffsetDateTime,
    recorded: bool,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    sqlx::query(
        "INSERT INTO operator_tokens (id, token_hash, name, created_at, role, principal, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&hash[..])
    .bind(name)
    .bind(fmt_time(now))
    .bind(role.as_str())
    .bind(role.principal())
    .bind(recorded.then(|| fmt_time(now)))
    .execute(executor)
    .await?;
    Ok(())
}

pub(super) async fn create_first(
    pg: &PgPool,
    name: &str,
    role: &OperatorRole,
    now: OffsetDateTime,
) -> Result<Option<Issued>, StoreError> {
    let mut tx = pg.begin().await?;
    // Held until the transaction ends: a second instance waits here, then sees the first's
    // credential (committed) and writes none.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(BOOTSTRAP_LOCK)
        .execute(&mut *tx)
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operator_tokens")
        .fetch_one(&mut *tx)
        .await?;
    if n > 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    let (token, hash) = tokens::generate(Plane::Operator)?;
    let id = Uuid::now_v7().to_string();
    insert(&mut *tx, (&id, &hash), name, role, now, false).await?;
    tx.commit().await?;
    Ok(Some(Issued { id, token }))
}

pub(super) async fn count(pg: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM operator_tokens")
        .fetch_one(pg)
        .await?)
}

pub(super) async fn authenticate(
    pg: &PgPool,
    hash: &TokenHash,
) -> Result<Option<OperatorIdentity>, StoreError> {
    let row = sqlx::query("SELECT id, token_hash, name, role, principal, recorded_at FROM operator_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
        .bind(&hash[..])
        .fetch_optional(pg)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored: Vec<u8> = row.try_get("token_hash")?;
    let stored: TokenHash = stored
        .try_into()
        .map_err(|_| StoreError::Corrupt("token_hash"))?;
    if !tokens::hashes_equal(&stored, hash) {
        return Ok(None);
    }
    let role: String = row.try_get("role")?;
    let recorded_at: Option<String> = row.try_get("recorded_at")?;
    Ok(Some(OperatorIdentity {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: OperatorRole::from_row(&role, row.try_get("principal")?)?,
        recorded: recorded_at.is_some(),
    }))
}

pub(super) async fn mark_recorded(
    pg: &PgPool,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE operator_tokens SET recorded_at = $1 WHERE id = $2 AND recorded_at IS NULL",
    )
    .bind(fmt_time(now))
    .bind(id)
    .execute(pg)
    .await?;
    Ok(())
}

pub(super) async fn list(pg: &PgPool) -> Result<Vec<OperatorToken>, StoreError> {
    let rows = sqlx::query("SELECT id, name, role, principal, created_at, revoked_at, recorded_at FROM operator_tokens ORDER BY created_at, id LIMIT $1")
        .bind(i64::from(MAX_OPERATOR_LIST))
        .fetch_all(pg)
        .await?;
    rows.iter().map(token_of).collect()
}

pub(super) async fn get(pg: &PgPool, id: &str) -> Result<Option<OperatorToken>, StoreError> {
    let row = sqlx::query("SELECT id, name, role, principal, created_at, revoked_at, recorded_at FROM operator_tokens WHERE id = $1")
        .bind(id)
        .fetch_optional(pg)
        .await?;
    row.as_ref().map(token_of).transpose()
}

pub(super) async fn revoke(pg: &PgPool, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE operator_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(fmt_time(now))
    .bind(id)
    .execute(pg)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn is_active(pg: &PgPool, id: &str) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM operator_tokens WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .fetch_one(pg)
    .await?;
    Ok(n > 0)
}

fn token_of(row: &PgRow) -> Result<OperatorToken, StoreError> {
    let role: String = row.try_get("role")?;
    let time = |col: &str| -> Result<Option<OffsetDateTime>, StoreError> {
        let s: Option<String> = row.try_get(col)?;
        s.as_deref().map(parse_time).transpose()
    };
    Ok(OperatorToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: OperatorRole::from_row(&role, row.try_get("principal")?)?,
        created_at: time("created_at")?.ok_or(StoreError::Corrupt("operator_tokens.created_at"))?,
        revoked_at: time("revoked_at")?,
        recorded_at: time("recorded_at")?,
    })
}
