//! A session's trusted text beyond its task — instructions added for the principal, values an
//! approver confirmed for the session — kept in `state.db` (`session_trust`) so that it is
//! trusted again after a restart, in the order it was added and with its source.
//!
//! Fail closed: a stored piece that cannot be read back, or that would pass the session's
//! trusted-text bound, is not trusted (it is skipped with a warning); nothing here ever makes
//! text trusted that was not added through [`SessionStore::persist_trust`](crate::SessionStore::persist_trust)
//! after being recorded.
//!
//! On PostgreSQL the same table is shared by the fleet: a piece persisted on one instance is
//! added to the session on the others at their next request or notice, and never twice (see
//! `sessions::postgres`).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use sqlx::{Row, SqlitePool};
use warden_core::TrustedSource;

use crate::sessions::Session;
use crate::state_db::StoreError;

/// One piece of a session's trusted text, as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustedPiece {
    /// The text.
    pub text: String,
    /// Where it came from (the task, an instruction, an approval).
    pub source: TrustedSource,
}

/// Stores one piece of trusted text of `session`.
pub(crate) async fn insert(
    pool: &SqlitePool,
    session: &str,
    text: &str,
    source: &TrustedSource,
) -> Result<(), StoreError> {
    let source = serde_json::to_string(source).map_err(|_| StoreError::Corrupt("source"))?;
    sqlx::query("INSERT INTO session_trust (session, text, source) VALUES (?, ?, ?)")
        .bind(session)
        .bind(text)
        .bind(source)
        .execute(pool)
        .await?;
    Ok(())
}

/// One stored piece of trusted text: its session, text and source (as JSON).
pub(crate) struct Stored {
    session: String,
    text: String,
    source: String,
}

/// Every stored piece of trusted text, in the order it was added.
pub(crate) async fn load(pool: &SqlitePool) -> Result<Vec<Stored>, StoreError> {
    let rows = sqlx::query("SELECT session, text, source FROM session_trust ORDER BY n")
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Stored {
                session: row.try_get("session")?,
                text: row.try_get("text")?,
                source: row.try_get("source")?,
            })
        })
        .collect()
}

/// Adds the `stored` trusted text to each of `sessions` (after its task), in the order it was
/// added. Returns how many pieces were restored.
pub(crate) fn restore(stored: Vec<Stored>, sessions: &HashMap<String, Arc<Session>>) -> usize {
    let mut restored = 0;
    for Stored {
        session: id,
        text,
        source,
    } in stored
    {
        let Some(session) = sessions.get(&id) else {
            continue;
        };
        let Ok(source) = serde_json::from_str::<TrustedSource>(&source) else {
            tracing::warn!(session = %id, "A stored piece of trusted text has an unreadable source; it is not trusted.");
            continue;
        };
        if session.add_trusted(&text, source).is_err() {
            tracing::warn!(session = %id, "A stored piece of trusted text exceeds the session's bound; it is not trusted.");
            continue;
        }
        restored += 1;
    }
    restored
}
