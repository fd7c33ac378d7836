//! Operator credentials: who may use the operator plane, and as what. Tokens are shown once
//! when issued; only their BLAKE3 hash is stored in `state.db`, compared in constant time.

use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state_db::{StateDb, StoreError, fmt_time};
use crate::tokens::{self, Plane, TokenHash};

/// What an operator credential may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorRole {
    /// Sessions, operator tokens, reading approvals; never deciding them.
    Admin,
    /// Reading and deciding approvals, as this charter principal.
    Approver(String),
}

impl OperatorRole {
    /// `admin` or `approver`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OperatorRole::Admin => "admin",
            OperatorRole::Approver(_) => "approver",
        }
    }

    /// The principal of an approver's credential.
    pub fn principal(&self) -> Option<&str> {
        match self {
            OperatorRole::Admin => None,
            OperatorRole::Approver(p) => Some(p),
        }
    }
}

/// Whose operator credential authenticated a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorIdentity {
    /// The credential's name.
    pub name: String,
    /// What it may do.
    pub role: OperatorRole,
}

/// The operator credentials in `state.db`.
#[derive(Debug, Clone)]
pub struct OperatorCredentials {
    pool: SqlitePool,
}

impl OperatorCredentials {
    /// The credentials of `state.db`.
    pub fn open(db: &StateDb) -> OperatorCredentials {
        OperatorCredentials { pool: db.pool() }
    }

    /// Issues an operator token: an admin's (sessions, tokens, reading approvals) or an
    /// approver's, tied to a charter principal (reading and deciding approvals). The caller has
    /// checked the principal against the charter.
    pub async fn create(
        &self,
        name: &str,
        role: OperatorRole,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        let (token, hash) = tokens::generate(Plane::Operator)?;
        let principal = match &role {
            OperatorRole::Admin => None,
            OperatorRole::Approver(p) => Some(p.as_str()),
        };
        sqlx::query(
            "INSERT INTO operator_tokens (id, token_hash, name, created_at, role, principal) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(&hash[..])
        .bind(name)
        .bind(fmt_time(now))
        .bind(role.as_str())
        .bind(principal)
        .execute(&self.pool)
        .await?;
        Ok(token)
    }

    /// How many operator tokens exist (revoked ones included).
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM operator_tokens")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Whether a presented operator token is valid; returns whose it is.
    pub async fn authenticate(&self, token: &str) -> Result<Option<OperatorIdentity>, StoreError> {
        if tokens::plane_of(token) != Some(Plane::Operator) {
            return Ok(None);
        }
        let hash = tokens::hash(token);
        let row = sqlx::query("SELECT token_hash, name, role, principal FROM operator_tokens WHERE token_hash = ? AND revoked_at IS NULL")
            .bind(&hash[..])
            .fetch_optional(&self.pool)
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
        let principal: Option<String> = row.try_get("principal")?;
        let role = match (role.as_str(), principal) {
            ("admin", None) => OperatorRole::Admin,
            ("approver", Some(p)) => OperatorRole::Approver(p),
            _ => return Err(StoreError::Corrupt("operator_tokens.role")),
        };
        Ok(Some(OperatorIdentity {
            name: row.try_get("name")?,
            role,
        }))
    }
}
