//! Operator credentials: who may use the operator plane, and as what. Tokens are shown once
//! when issued; only their BLAKE3 hash is stored in `state.db`, compared in constant time.
//! A credential can be listed (never its token) and revoked; a revoked one never
//! authenticates again. Each credential knows whether its issue reached the ledger
//! (`recorded_at`): one made offline has not, and the gateway records it before its first use.
//!
//! On PostgreSQL every instance reads the shared `operator_tokens` at each request (nothing is
//! cached): a credential issued on one instance works on all, and one revoked anywhere is
//! refused everywhere from the next request.

use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state_db::{Backend, StateDb, StoreError, fmt_time, parse_time};
use crate::tokens::{self, Plane, TokenHash};

mod postgres;

/// Most credentials a list returns.
pub const MAX_OPERATOR_LIST: u32 = 1000;

/// What an operator credential may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorRole {
    /// Sessions, operator tokens, reading approvals; never deciding them.
    Admin,
    /// Reading and deciding approvals, as this charter principal.
    Approver(String),
    /// The observer process: reads the ledger stream and the metrics, sends its heartbeat and
    /// sets controls; never lifts one, decides an approval, opens a session or issues a
    /// credential.
    Observer,
}

impl OperatorRole {
    /// `admin`, `approver` or `observer`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OperatorRole::Admin => "admin",
            OperatorRole::Approver(_) => "approver",
            OperatorRole::Observer => "observer",
        }
    }

    /// The principal of an approver's credential.
    pub fn principal(&self) -> Option<&str> {
        match self {
            OperatorRole::Admin | OperatorRole::Observer => None,
            OperatorRole::Approver(p) => Some(p),
        }
    }

    pub(crate) fn from_row(
        role: &str,
        principal: Option<String>,
    ) -> Result<OperatorRole, StoreError> {
        match (role, principal) {
            ("admin", None) => Ok(OperatorRole::Admin),
            ("approver", Some(p)) => Ok(OperatorRole::Approver(p)),
            ("observer", None) => Ok(OperatorRole::Observer),
            _ => Err(StoreError::Corrupt("operator_tokens.role")),
        }
    }
}

/// Whose operator credential authenticated a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorIdentity {
    /// The credential's id (UUID v7): what a list shows and a revocation names.
    pub id: String,
    /// The credential's name.
    pub name: String,
    /// What it may do.
    pub role: OperatorRole,
    /// Whether its issue is in the ledger (`false` for one made offline, until the gateway
    /// recorded it).
    pub recorded: bool,
}

/// One operator credential, as a list shows it (never its token or hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorToken {
    /// Id (UUID v7).
    pub id: String,
    /// Name.
    pub name: String,
    /// What it may do.
    pub role: OperatorRole,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// When its issue reached the ledger (`None`: made offline and not used since).
    pub recorded_at: Option<OffsetDateTime>,
}

/// A credential just issued: its id and its token (shown once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The credential's id.
    pub id: String,
    /// The token.
    pub token: String,
}

/// The operator credentials in `state.db`.
#[derive(Debug, Clone)]
pub struct OperatorCredentials {
    db: StateDb,
}

impl OperatorCredentials {
    /// The credentials of `state.db`.
    pub fn open(db: &StateDb) -> OperatorCredentials {
        OperatorCredentials { db: db.clone() }
    }

    /// Issues an operator token: an admin's (sessions, tokens, reading approvals) or an
    /// approver's, tied to a charter principal (reading and deciding approvals). The caller has
    /// checked the principal against the charter. `recorded` says whether the caller already
    /// recorded the issue in the ledger (`false` offline: the gateway records it before the
    /// credential's first use).
    pub async fn create(
        &self,
        name: &str,
        role: OperatorRole,
        now: OffsetDateTime,
        recorded: bool,
    ) -> Result<Issued, StoreError> {
        if let Backend::Postgres(pg) = self.db.backend() {
            return postgres::create(pg, name, &role, now, recorded).await;
        }
        let (token, hash) = tokens::generate(Plane::Operator)?;
        let id = Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO operator_tokens (id, token_hash, name, created_at, role, principal, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&hash[..])
        .bind(name)
        .bind(fmt_time(now))
        .bind(role.as_str())
        .bind(role.principal())
        .bind(recorded.then(|| fmt_time(now)))
        .execute(&self.db.pool()?)
        .await?;
        Ok(Issued { id, token })
    }

    /// How many operator tokens exist (revoked ones included).
    pub async fn count(&self) -> Result<i64, StoreError> {
        if let Backend::Postgres(pg) = self.db.backend() {
            return postgres::count(pg).await;
        }
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM operator_tokens")
            .fetch_one(&self.db.pool()?)
            .await?
            .try_get("n")?)
    }

    /// Issues the first credential of an empty store (the bootstrap token), or nothing when
    /// there is a credential already. On PostgreSQL the check and the insert run under one
    /// advisory lock, so of several instances starting together on an empty store exactly one
    /// writes it (the others find it there and answer `None`).
    pub async fn create_first(
        &self,
        name: &str,
        role: OperatorRole,
        now: OffsetDateTime,
    ) -> Result<Option<Issued>, StoreError> {
        if let Backend::Postgres(pg) = self.db.backend() {
            return postgres::create_first(pg, name, &role, now).await;
        }
        if self.count().await? > 0 {
            return Ok(None);
        }
        self.create(name, role, now, false).await.map(Some)
    }

    /// Whether a presented operator token is valid (issued, not revoked); returns whose it is.
    pub async fn authenticate(&self, token: &str) -> Result<Option<OperatorIdentity>, StoreError> {
        if tokens::plane_of(token) != Some(Plane::Operator) {
            return Ok(None);
        }
        let hash = tokens::hash(token);
        if let Backend::Postgres(pg) = self.db.backend() {
            return postgres::authenticate(pg, &hash).await;
        }
        let row = sqlx::query("SELECT id, token_hash, name, role, principal, recorded_at FROM operator_tokens WHERE token_hash = ? AND revoked_at IS NULL")
            .bind(&hash[..])
            .fetch_optional(&self.db.pool()?)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: Vec<u8> = row.try_get("token_hash")?;
        let stored: TokenHash = stored
            .try_into()
            .map_err(|_| StoreError::Corrupt("token_hash"))?;
        if !tokens::hashes_equal(&stored, &hash) {
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

    /// Notes that the issue of credential `id` is now in the ledger.
    pub async fn mark_recorded(&self, id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        if let Backend::Postgres(pg) = self.db.backend() {
            return postgres::mark_recorded(pg, id, now).await;
        }
        sqlx::query(
            "UPDATE operator_tokens SET recorded_at = ? WHERE id = ? AND recorded_at IS NULL",
        )
        .bind(fmt_time(now))
        .bind(id)
        .execute(&self.db.pool()?)
        .await?;
        Ok(())
    }

    /// The credentials, oldest first, at most [`MAX_OPERATOR_LIST`].
    pub async fn list(&self) -> Result<Vec<OperatorToken>, StoreError> {
        if let Backend::Postgres(pg) = self.db.backend() {
            return postgres::list(pg).await;
        }
        let rows = sqlx::query("SELECT id, name, role, principal, created_at, revoked_at, recorded_at FROM operator_tokens ORDER BY created_at, id LIMIT ?")
            .bind(MAX_OPERATOR_LIST)
            .fetch_all(&self.db.pool()?)
            .await?;
        rows.iter().map(token_of).collect()
    }

    /// One credential by id.
    pub async fn get(&self, id: &str) -> Result<Option<OperatorToken>, StoreError> {
        if let Backend::Postgres(pg) = self.db.backend() {
            return postgres::get(pg, id).await;
        }
        let row = sqlx::query("SELECT id, name, role, principal, created_at, revoked_at, recorded_at FROM operator_tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.db.pool()?)
            .await?;
        row.as_ref().map(token_of).transpose()
    }

    /// Revokes credential `id`: it never authenticates again. Returns whether it changed
    /// (`false` when it was already revoked or does not exist).
    pub async fn revoke(&self, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        if let Backend::Postgres(pg) = self.db.backend() {
            return postgres::revoke(pg, id, now).await;
        }
        let done = sqlx::query(
            "UPDATE operator_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(fmt_time(now))
        .bind(id)
        .execute(&self.db.pool()?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether credential `id` exists and is not revoked.
    pub async fn is_active(&self, id: &str) -> Result<bool, StoreError> {
        if let Backend::Postgres(pg) = self.db.backend() {
            return postgres::is_active(pg, id).await;
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM operator_tokens WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_one(&self.db.pool()?)
        .await?;
        Ok(n > 0)
    }
}

fn token_of(row: &sqlx::sqlite::SqliteRow) -> Result<OperatorToken, StoreError> {
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
