//! The shared store on PostgreSQL: one database for every gateway instance of a fleet.
//!
//! - **Connections** come from one bounded pool ([`PoolBounds`]): at most `max_connections`,
//!   an acquire waits at most `acquire_timeout` and then fails (which every caller on the
//!   decision path turns into a refusal), and each statement is cut off by the server after
//!   `statement_timeout`. A pool whose server went away reconnects by itself on the next
//!   acquire.
//! - **Migrations** are versioned in `warden_schema` (one row per applied version) and run at
//!   start-up (or by `warden migrate`) under a transaction-scoped advisory lock, so instances
//!   starting together apply each migration exactly once. A database already at a version
//!   newer than this warden knows is refused.
//! - **Tables** mirror `state.db`'s, plus the approvals and the ledger (one hash chain per
//!   instance, see `warden_audit`), each group defined in [`schema`].

pub mod schema;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row as _};
use warden_core::store::PostgresUrl;

use super::StoreError;

/// Bounds of the PostgreSQL connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolBounds {
    /// The most connections one instance opens. Default 16.
    pub max_connections: u32,
    /// How long taking a connection may wait. Default 5 s.
    pub acquire_timeout: Duration,
    /// The server-side limit on one statement. Default 10 s.
    pub statement_timeout: Duration,
}

impl Default for PoolBounds {
    fn default() -> Self {
        PoolBounds {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// The migrations, in order: migration `n` (1-based) brings the schema from version `n - 1`
/// to `n`. Never edit one that has shipped; append a new one.
fn migrations() -> Vec<Vec<&'static str>> {
    vec![
        schema::VERSION_1
            .iter()
            .flat_map(|group| group.iter().copied())
            .collect(),
        schema::VERSION_2.to_vec(),
    ]
}

/// The schema version this warden writes on PostgreSQL.
pub fn schema_version() -> i64 {
    migrations().len() as i64
}

/// An arbitrary, fixed key for the advisory lock that serialises migrations across instances.
const MIGRATION_LOCK: i64 = 0x5741_5244_454e_0001;

/// Connects a bounded pool to `url`. Nothing is migrated.
pub async fn connect(url: &PostgresUrl, bounds: PoolBounds) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url
        .expose()
        .parse()
        .map_err(|_| StoreError::BadUrl(url.to_string()))?;
    let statement_ms = bounds.statement_timeout.as_millis().max(1);
    let options = options
        .application_name("warden")
        .options([("statement_timeout", statement_ms.to_string())]);
    let pool = PgPoolOptions::new()
        .max_connections(bounds.max_connections.max(1))
        .acquire_timeout(bounds.acquire_timeout)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// The schema version of the database (0 for an empty one).
pub async fn current_version(pool: &PgPool) -> Result<i64, StoreError> {
    sqlx::query("CREATE TABLE IF NOT EXISTS warden_schema (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .execute(pool)
        .await?;
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM warden_schema")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<i64, _>("v")?)
}

/// Brings the database to [`schema_version`], each migration in its own transaction under the
/// migration lock; returns the versions it applied. Refuses a database of a newer version.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let found = current_version(pool).await?;
    let supported = schema_version();
    if found > supported {
        return Err(StoreError::NewerSchema { found, supported });
    }
    let mut applied = Vec::new();
    for (n, statements) in (1..).zip(migrations()) {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM warden_schema WHERE version = $1")
                .bind(n)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            tx.rollback().await?;
            continue;
        }
        for stmt in statements {
            sqlx::query(stmt).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO warden_schema (version) VALUES ($1)")
            .bind(n)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        applied.push(n);
    }
    Ok(applied)
}
