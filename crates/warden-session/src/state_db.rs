//! `state.db`: the gateway's mutable state beside the ledger — sessions, operator credentials,
//! preapproved-scope counters, token budgets, recent model turns, controls, the sessions'
//! trusted text (and the approval requests, whose store creates its own table). One
//! connection pool in WAL mode with `synchronous=FULL`; the schema is versioned (`PRAGMA
//! user_version`) and migrated forward at open; a database written by a newer warden is
//! refused rather than misread.
//!
//! With `--store postgres://…` the same state lives in one PostgreSQL database shared by every
//! instance of a fleet ([`postgres`]): [`StateDb::connect`] picks the backend, and each store
//! works on either ([`Backend`]). Changes other instances make arrive as [`notices`].

pub mod notices;
pub mod postgres;

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};
use time::OffsetDateTime;
use warden_core::StoreLocation;

use crate::tokens;
pub use notices::{Channel, Notice, Notices};
pub use postgres::PoolBounds;

/// The file inside the data directory.
pub const STATE_DB_FILE: &str = "state.db";

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("state store: {0}")]
    Database(#[from] sqlx::Error),
    /// No random token could be made.
    #[error(transparent)]
    Random(#[from] tokens::RandomError),
    /// A lock was poisoned by a panic elsewhere.
    #[error("state store: a lock was poisoned")]
    Poisoned,
    /// A stored value could not be read back.
    #[error("state store: corrupt value in `{0}`")]
    Corrupt(&'static str),
    /// A session's lifetime ends past the end of the calendar.
    #[error("the session's time to live ends past the year 9999")]
    InvalidTtl,
    /// `state.db` cannot be created with mode 0600 (or an existing one made so).
    #[error("state store: cannot create `{}` with mode 0600: {source}", path.display())]
    Create {
        /// The database file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store's URL could not be read (shown without its password).
    #[error("state store: cannot read the PostgreSQL URL `{0}`")]
    BadUrl(String),
    /// This store does not work on this backend yet.
    #[error("state store: {0} is not available on this backend")]
    Unsupported(&'static str),
    /// The database was written by a newer warden.
    #[error(
        "state store: the schema is at version {found}, this warden reads up to {supported}; run the newer warden, or use another database"
    )]
    NewerSchema {
        /// The version found.
        found: i64,
        /// The newest version this warden knows.
        supported: i64,
    },
}

/// The migrations, in order: migration `n` (1-based) brings the schema from version `n - 1`
/// to `n`. Never edit one that has shipped; append a new one.
const MIGRATIONS: &[&[&str]] = &[
    // 1: sessions, their labels, operator credentials, scope counters, token budgets. The
    // `IF NOT EXISTS` keeps databases made before versioning (version 0 with these tables)
    // readable; their missing operator columns are added below.
    &[
        "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, token_hash BLOB NOT NULL UNIQUE, agent TEXT NOT NULL, principal TEXT NOT NULL, task TEXT NOT NULL, opened_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked_at TEXT)",
        "CREATE TABLE IF NOT EXISTS session_labels (session TEXT NOT NULL, label TEXT NOT NULL, PRIMARY KEY (session, label))",
        "CREATE TABLE IF NOT EXISTS operator_tokens (id TEXT PRIMARY KEY, token_hash BLOB NOT NULL UNIQUE, name TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT, role TEXT NOT NULL DEFAULT 'admin', principal TEXT)",
        "CREATE TABLE IF NOT EXISTS scope_usage (rule TEXT NOT NULL, window TEXT NOT NULL, count INTEGER NOT NULL, spend TEXT NOT NULL, PRIMARY KEY (rule, window))",
        "CREATE TABLE IF NOT EXISTS model_usage (scope TEXT NOT NULL, key TEXT NOT NULL, window_start INTEGER NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (scope, key, window_start))",
    ],
    // 2: the last ledger sequence number the gateway knows committed (one row), for
    // `warden audit verify` to tell a ledger whose tail was cut off (see `ledger_mark`).
    &["CREATE TABLE ledger_mark (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)"],
    // 3: when an operator credential's issue reached the ledger. `NULL` for credentials made
    // offline (and for every credential made before this column): the gateway records them
    // before their first use.
    &["ALTER TABLE operator_tokens ADD COLUMN recorded_at TEXT"],
    // 4: each session's last model turns, so approvals raised after a restart still show
    // them (see `model_turns`).
    &[
        "CREATE TABLE model_turns (session TEXT PRIMARY KEY, turns TEXT NOT NULL, seq INTEGER NOT NULL)",
        "CREATE INDEX model_turns_seq ON model_turns (seq)",
    ],
    // 5: the controls (see `controls`): each as its JSON, with its state (`in_force`,
    // `lifted`, `expired`, or `alert` for an alert that never was in force).
    &["CREATE TABLE controls (id TEXT PRIMARY KEY, state TEXT NOT NULL, body TEXT NOT NULL)"],
    // 6: each session's trusted text beyond its task (instructions, values confirmed on
    // approval), in the order it was added, with its source as JSON (see `trust`).
    &[
        "CREATE TABLE session_trust (n INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL, text TEXT NOT NULL, source TEXT NOT NULL)",
        "CREATE INDEX session_trust_session ON session_trust (session)",
    ],
    // 7: delegation: a child session's parent and its chain of ancestors (JSON `[{session,
    // agent}]`, root first); `NULL` for a root session.
    &[
        "ALTER TABLE sessions ADD COLUMN parent TEXT",
        "ALTER TABLE sessions ADD COLUMN chain TEXT",
    ],
];

/// The schema version this warden writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The database behind the state: `state.db`, or the fleet's PostgreSQL.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `state.db` in the data directory.
    Sqlite(SqlitePool),
    /// The shared PostgreSQL database.
    Postgres(PgPool),
}

/// The state database.
#[derive(Debug, Clone)]
pub struct StateDb {
    backend: Backend,
    /// Set once, by [`StateDb::listen`].
    notices: std::sync::Arc<std::sync::OnceLock<Notices>>,
}

impl StateDb {
    /// Opens (creating if needed, mode 0600) `state.db` in `data_dir` and migrates it to
    /// [`SCHEMA_VERSION`]. Refuses a database of a newer version.
    pub async fn open(data_dir: &Path) -> Result<StateDb, StoreError> {
        let path = data_dir.join(STATE_DB_FILE);
        // Created 0600 before SQLite opens it, so its `-wal` and `-shm` files get that mode
        // too (see `warden_core::private`): it holds sessions and credential hashes.
        warden_core::private::private_database(&path).map_err(|source| StoreError::Create {
            path: path.clone(),
            source,
        })?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        migrate(&pool).await?;
        Ok(StateDb {
            backend: Backend::Sqlite(pool),
            notices: Default::default(),
        })
    }

    /// Opens the store at `location`: `state.db` in `data_dir`, or the PostgreSQL database
    /// (connected with `bounds`, migrated to [`postgres::schema_version`]). Refuses a schema
    /// of a newer version. Other instances' changes come once [`StateDb::listen`] ran.
    pub async fn connect(
        location: &StoreLocation,
        data_dir: &Path,
        bounds: PoolBounds,
    ) -> Result<StateDb, StoreError> {
        match location {
            StoreLocation::Sqlite => StateDb::open(data_dir).await,
            StoreLocation::Postgres(url) => {
                let pool = postgres::connect(url, bounds).await?;
                postgres::migrate(&pool).await?;
                Ok(StateDb::from_postgres_pool(pool))
            }
        }
    }

    /// A state store on an already migrated PostgreSQL pool.
    pub fn from_postgres_pool(pool: PgPool) -> StateDb {
        StateDb {
            backend: Backend::Postgres(pool),
            notices: Default::default(),
        }
    }

    /// Starts listening for other instances' changes (PostgreSQL; nothing on SQLite) on
    /// `tasks` until `stop`; a second call changes nothing.
    pub fn listen(
        &self,
        tasks: &tokio_util::task::TaskTracker,
        stop: tokio_util::sync::CancellationToken,
    ) -> &Notices {
        self.notices.get_or_init(|| match &self.backend {
            Backend::Sqlite(_) => Notices::none(),
            Backend::Postgres(pool) => Notices::listen(pool.clone(), tasks, stop),
        })
    }

    /// The backend, for the stores kept in this database.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The SQLite pool; [`StoreError::Unsupported`] on PostgreSQL.
    pub fn pool(&self) -> Result<SqlitePool, StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => Ok(pool.clone()),
            Backend::Postgres(_) => Err(StoreError::Unsupported("a SQLite-only store")),
        }
    }

    /// The PostgreSQL pool, when the store is the shared one.
    pub fn postgres(&self) -> Option<&PgPool> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pool) => Some(pool),
        }
    }

    /// What other instances change: nothing on SQLite, or before [`StateDb::listen`].
    pub fn notices(&self) -> Notices {
        self.notices.get().cloned().unwrap_or_else(Notices::none)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// Runs the migrations the database lacks, each in its own transaction with its version.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(pool)
        .await?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (n, statements) in (1..).zip(MIGRATIONS) {
        if n <= version {
            continue;
        }
        let mut tx = pool.begin().await?;
        for stmt in *statements {
            sqlx::query(*stmt).execute(&mut *tx).await?;
        }
        if n == 1 {
            add_operator_columns(&mut tx).await?;
        }
        // `PRAGMA` takes no bound parameters; `n` is an integer of ours.
        sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA user_version = {n}")))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Stores made before approver credentials existed lack the operator role and principal.
async fn add_operator_columns(conn: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    let columns: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('operator_tokens')")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("name"))
        .collect::<Result<_, _>>()?;
    if !columns.iter().any(|c| c == "role") {
        sqlx::query("ALTER TABLE operator_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'")
            .execute(&mut *conn)
            .await?;
    }
    if !columns.iter().any(|c| c == "principal") {
        sqlx::query("ALTER TABLE operator_tokens ADD COLUMN principal TEXT")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A stored time.
pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    warden_core::text::rfc3339(t)
}

/// Reads a stored time.
pub(crate) fn parse_time(s: &str) -> Result<OffsetDateTime, StoreError> {
    warden_core::text::parse_rfc3339(s).ok_or(StoreError::Corrupt("time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_database_is_migrated_to_the_current_version_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).await.unwrap();
        let v: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&db.pool().unwrap())
            .await
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        db.close().await;
        StateDb::open(dir.path()).await.unwrap().close().await;
    }

    #[tokio::test]
    async fn a_database_from_before_versioning_gains_the_operator_columns() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(dir.path().join(STATE_DB_FILE))
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        sqlx::query("CREATE TABLE operator_tokens (id TEXT PRIMARY KEY, token_hash BLOB NOT NULL UNIQUE, name TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let db = StateDb::open(dir.path()).await.unwrap();
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('operator_tokens')")
                .fetch_all(&db.pool().unwrap())
                .await
                .unwrap();
        assert!(columns.iter().any(|c| c == "role"), "{columns:?}");
        assert!(columns.iter().any(|c| c == "principal"), "{columns:?}");
    }

    /// Issue 17: a version-6 database (sessions without delegation) gains `parent` and
    /// `chain`; its sessions stay root sessions (`NULL`).
    #[tokio::test]
    async fn a_version_6_database_gains_the_delegation_columns() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(dir.path().join(STATE_DB_FILE))
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        for statements in &MIGRATIONS[..6] {
            for stmt in *statements {
                sqlx::query(*stmt).execute(&pool).await.unwrap();
            }
        }
        add_operator_columns(&mut pool.acquire().await.unwrap())
            .await
            .unwrap();
        sqlx::query("INSERT INTO sessions VALUES ('s', x'00', 'a', 'p', 't', '2026-12-07T00:00:00Z', '2026-12-07T01:00:00Z', NULL)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("PRAGMA user_version = 6")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let db = StateDb::open(dir.path()).await.unwrap();
        let row = sqlx::query("SELECT parent, chain FROM sessions WHERE id = 's'")
            .fetch_one(&db.pool().unwrap())
            .await
            .unwrap();
        assert_eq!(row.try_get::<Option<String>, _>("parent").unwrap(), None);
        assert_eq!(row.try_get::<Option<String>, _>("chain").unwrap(), None);
    }

    #[tokio::test]
    async fn a_database_of_a_newer_warden_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            SCHEMA_VERSION + 1
        )))
        .execute(&db.pool().unwrap())
        .await
        .unwrap();
        db.close().await;
        let err = StateDb::open(dir.path()).await.unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
    }
}
