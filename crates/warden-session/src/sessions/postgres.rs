//! The sessions on PostgreSQL: one table for the whole fleet, so any instance can serve any
//! session.
//!
//! - What an instance holds in memory is a cache of the sessions it serves, bounded by
//!   [`MAX_HELD`]: loaded when first presented (one indexed query by token hash; an unknown
//!   token adds nothing), refreshed at each request (revocation, labels, new trusted text, and
//!   whether another instance served it: one query), followed between requests by the
//!   notices (`Channel::Sessions`), and evicted once revoked or expired.
//! - The untrusted index is per instance (content read on this instance). Each instance notes
//!   in `session_instances` that it serves a session before its first decision for it; an
//!   instance that finds another one noted there marks the session's provenance incomplete
//!   (fail closed: every value its trusted text does not state counts as untrusted), and so
//!   does one that served it before but holds no index for it now (evicted, or restarted).
//! - A change (revocation, labels, trusted text) is announced in the transaction that makes
//!   it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use time::OffsetDateTime;
use warden_core::TrustedSource;

use super::children::{ChildError, child_provenance, parse_chain};
use super::{Session, SessionInfo, SessionStore, provenance_of};
use crate::state_db::notices::{Channel, notify};
use crate::state_db::{StoreError, fmt_time, parse_time};
use crate::tokens::TokenHash;
use crate::trust::TrustedPiece;

/// Most sessions one instance holds in memory. Past it, a session loaded from the store is
/// served without being held (its provenance marked incomplete: nothing it reads is kept).
pub const MAX_HELD: usize = 100_000;

/// Most sessions a list of the store returns (newest first).
pub const MAX_LISTED: i64 = 10_000;

/// Sessions refreshed per query.
const REFRESH_BATCH: usize = 1_000;

const COLUMNS: &str =
    "id, token_hash, agent, principal, task, opened_at, expires_at, revoked_at, parent, chain";

/// The columns of a child session's row.
pub(super) struct NewChild<'a> {
    pub id: &'a str,
    pub hash: &'a TokenHash,
    pub agent: &'a str,
    pub principal: &'a str,
    pub task: &'a str,
    pub parent: &'a str,
    pub chain: &'a str,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Stores a root session.
pub(super) async fn insert(
    pg: &PgPool,
    (id, hash): (&str, &TokenHash),
    (agent, principal, task): (&str, &str, &str),
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO sessions (id, token_hash, agent, principal, task, opened_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(id)
        .bind(&hash[..])
        .bind(agent)
        .bind(principal)
        .bind(task)
        .bind(fmt_time(now))
        .bind(fmt_time(expires_at))
        .execute(pg)
        .await?;
    Ok(())
}

/// Stores a child session with its labels and trusted text, in one transaction that holds
/// the parent's row: the fan-out bound counts the live children every instance opened.
pub(super) async fn insert_child(
    pg: &PgPool,
    row: &NewChild<'_>,
    labels: &[Arc<str>],
    trusted: &[&TrustedPiece],
    max_children: u32,
) -> Result<(), ChildError> {
    let mut tx = pg.begin().await.map_err(StoreError::from)?;
    let parent: Option<Option<String>> =
        sqlx::query_scalar("SELECT revoked_at FROM sessions WHERE id = $1 FOR UPDATE")
            .bind(row.parent)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
    // A parent revoked on another instance, or unknown to the store, opens nothing.
    if !matches!(parent, Some(None)) {
        return Err(ChildError::ParentInactive);
    }
    let children =
        sqlx::query("SELECT expires_at FROM sessions WHERE parent = $1 AND revoked_at IS NULL")
            .bind(row.parent)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from)?;
    let mut live: u32 = 0;
    for c in &children {
        let at: String = c.try_get("expires_at").map_err(StoreError::from)?;
        if parse_time(&at)? > row.now {
            live = live.saturating_add(1);
        }
    }
    if live >= max_children {
        return Err(ChildError::FanOut {
            live,
            limit: max_children,
        });
    }
    sqlx::query("INSERT INTO sessions (id, token_hash, agent, principal, task, opened_at, expires_at, parent, chain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(row.id)
        .bind(&row.hash[..])
        .bind(row.agent)
        .bind(row.principal)
        .bind(row.task)
        .bind(fmt_time(row.now))
        .bind(fmt_time(row.expires_at))
        .bind(row.parent)
        .bind(row.chain)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    for l in labels {
        sqlx::query(
            "INSERT INTO session_labels (session, label) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(row.id)
        .bind(&**l)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    }
    for piece in trusted {
        let source =
            serde_json::to_string(&piece.source).map_err(|_| StoreError::Corrupt("source"))?;
        sqlx::query("INSERT INTO session_trust (session, text, source) VALUES ($1, $2, $3)")
            .bind(row.id)
            .bind(&piece.text)
            .bind(source)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// Revokes session `id` in the store; whether it changed. Announced on commit.
pub(super) async fn revoke(pg: &PgPool, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
    let mut tx = pg.begin().await?;
    let done =
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(fmt_time(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() > 0 {
        notify(&mut *tx, Channel::Sessions, id).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}

/// Stores labels a session gained; announced on commit.
pub(super) async fn persist_labels(
    pg: &PgPool,
    session: &str,
    labels: &[Arc<str>],
) -> Result<(), StoreError> {
    if labels.is_empty() {
        return Ok(());
    }
    let mut tx = pg.begin().await?;
    for l in labels {
        sqlx::query(
            "INSERT INTO session_labels (session, label) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(session)
        .bind(&**l)
        .execute(&mut *tx)
        .await?;
    }
    notify(&mut *tx, Channel::Sessions, session).await?;
    tx.commit().await?;
    Ok(())
}

/// Stores a piece of trusted text a session gained; announced on commit.
pub(super) async fn persist_trust(
    pg: &PgPool,
    session: &str,
    text: &str,
    source: &TrustedSource,
) -> Result<(), StoreError> {
    let source = serde_json::to_string(source).map_err(|_| StoreError::Corrupt("source"))?;
    let mut tx = pg.begin().await?;
    sqlx::query("INSERT INTO session_trust (session, text, source) VALUES ($1, $2, $3)")
        .bind(session)
        .bind(text)
        .bind(source)
        .execute(&mut *tx)
        .await?;
    notify(&mut *tx, Channel::Sessions, session).await?;
    tx.commit().await?;
    Ok(())
}

/// A session read from its row: labels and trusted text beyond the task come with
/// [`refresh`]. Its token hash, for holding it.
fn session_of(row: &PgRow) -> Result<(TokenHash, Session), StoreError> {
    let hash: Vec<u8> = row.try_get("token_hash")?;
    let hash: TokenHash = hash
        .try_into()
        .map_err(|_| StoreError::Corrupt("token_hash"))?;
    let revoked: Option<String> = row.try_get("revoked_at")?;
    let parent: Option<String> = row.try_get("parent")?;
    let task: String = row.try_get("task")?;
    // As on SQLite: a child's trusted text is its parent's, copied into `session_trust`; its
    // own task is the parent agent's text, never trusted.
    let provenance = if parent.is_some() {
        child_provenance()
    } else {
        provenance_of(&task)
    };
    Ok((
        hash,
        Session {
            id: row.try_get("id")?,
            agent: row.try_get("agent")?,
            principal: row.try_get("principal")?,
            task,
            opened_at: parse_time(&row.try_get::<String, _>("opened_at")?)?,
            expires_at: parse_time(&row.try_get::<String, _>("expires_at")?)?,
            chain: parse_chain(row.try_get("chain")?)?,
            parent,
            revoked: std::sync::atomic::AtomicBool::new(revoked.is_some()),
            labels: Mutex::new(Vec::new()),
            provenance,
            trust_seen: Default::default(),
            served_here: Default::default(),
        },
    ))
}

/// Brings `sessions` up to date with the store in one query per [`REFRESH_BATCH`]:
/// revocation, labels, trusted text added since each last looked, and whether an instance
/// other than `me` served it (then its provenance is incomplete). Sessions not in the store
/// any more are treated as revoked (fail closed).
pub(super) async fn refresh(
    pg: &PgPool,
    me: &str,
    sessions: &[Arc<Session>],
) -> Result<(), StoreError> {
    for batch in sessions.chunks(REFRESH_BATCH) {
        let ids: Vec<&str> = batch.iter().map(|s| s.id.as_str()).collect();
        let after: Vec<i64> = batch
            .iter()
            .map(|s| s.trust_seen.load(Ordering::Acquire))
            .collect();
        let rows = sqlx::query(
            "SELECT q.id, s.id IS NOT NULL AS present, s.revoked_at, \
             COALESCE((SELECT array_agg(l.label ORDER BY l.label) FROM session_labels l WHERE l.session = q.id), '{}') AS labels, \
             COALESCE((SELECT json_agg(json_build_array(t.n, t.text, t.source) ORDER BY t.n) FROM session_trust t WHERE t.session = q.id AND t.n > q.after), '[]')::text AS trust, \
             EXISTS (SELECT 1 FROM session_instances i WHERE i.session = q.id AND i.instance <> $3) AS elsewhere \
             FROM unnest($1::text[], $2::bigint[]) AS q(id, after) LEFT JOIN sessions s ON s.id = q.id",
        )
        .bind(&ids)
        .bind(&after)
        .bind(me)
        .fetch_all(pg)
        .await?;
        let by_id: HashMap<&str, &Arc<Session>> =
            batch.iter().map(|s| (s.id.as_str(), s)).collect();
        for row in rows {
            let id: String = row.try_get("id")?;
            let Some(session) = by_id.get(id.as_str()) else {
                continue;
            };
            let present: bool = row.try_get("present")?;
            let revoked: Option<String> = row.try_get("revoked_at")?;
            if !present || revoked.is_some() {
                session.revoked.store(true, Ordering::SeqCst);
            }
            let labels: Vec<String> = row.try_get("labels")?;
            let labels: Vec<Arc<str>> = labels.iter().map(|l| Arc::from(l.as_str())).collect();
            session.add_labels(&labels);
            let trust: String = row.try_get("trust")?;
            apply_trust(session, &trust);
            if row.try_get::<bool, _>("elsewhere")? {
                session.mark_provenance_incomplete();
            }
        }
    }
    Ok(())
}

/// Adds the stored trusted text `rows` (JSON `[[n, text, source], ...]`, by `n`) not yet
/// applied to `session`. Fail closed: a piece that cannot be read, or that passes the bound,
/// is not trusted; one the session holds already (added here) is not added twice.
fn apply_trust(session: &Session, rows: &str) {
    let Ok(rows) = serde_json::from_str::<Vec<(i64, String, String)>>(rows) else {
        tracing::warn!(session = %session.id, "The session's stored trusted text could not be read; it is not trusted.");
        return;
    };
    let Some(last) = rows.iter().map(|(n, _, _)| *n).max() else {
        return;
    };
    let before = session.trust_seen.fetch_max(last, Ordering::AcqRel);
    for (n, text, source) in rows {
        if n <= before {
            continue;
        }
        let Ok(source) = serde_json::from_str::<TrustedSource>(&source) else {
            tracing::warn!(session = %session.id, "A stored piece of trusted text has an unreadable source; it is not trusted.");
            continue;
        };
        let held = session
            .provenance()
            .trusted()
            .any(|(t, s)| t == text && *s == source);
        if !held && session.add_trusted(&text, source).is_err() {
            tracing::warn!(session = %session.id, "A stored piece of trusted text exceeds the session's bound; it is not trusted.");
        }
    }
}

/// Notes that `me` serves `session`; whether it had served it before (then whatever index it
/// built then is gone).
pub(super) async fn note_served(pg: &PgPool, me: &str, session: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO session_instances (session, instance) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(session)
    .bind(me)
    .execute(pg)
    .await?;
    Ok(done.rows_affected() == 0)
}

/// The session whose token hashes to `hash`, with its ancestors (root first), from the store;
/// nothing held yet. `None` when no session has that hash; an ancestor missing from the store
/// is left out (the caller then finds it inactive: fail closed).
pub(super) async fn load_by_hash(
    pg: &PgPool,
    hash: &TokenHash,
) -> Result<Option<(TokenHash, Session, Vec<(TokenHash, Session)>)>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sessions WHERE token_hash = $1"
    )))
    .bind(&hash[..])
    .fetch_optional(pg)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (stored, session) = session_of(&row)?;
    let ancestors = load_ids(
        pg,
        &session
            .chain
            .iter()
            .map(|l| l.session.as_str())
            .collect::<Vec<_>>(),
    )
    .await?;
    Ok(Some((stored, session, ancestors)))
}

/// The sessions with these ids, from the store.
async fn load_ids(pg: &PgPool, ids: &[&str]) -> Result<Vec<(TokenHash, Session)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sessions WHERE id = ANY($1::text[])"
    )))
    .bind(ids)
    .fetch_all(pg)
    .await?;
    rows.iter().map(session_of).collect()
}

/// One session by id, from the store (not held).
pub(super) async fn load_id(pg: &PgPool, id: &str) -> Result<Option<Session>, StoreError> {
    Ok(load_ids(pg, &[id])
        .await?
        .into_iter()
        .next()
        .map(|(_, s)| s))
}

/// Loads, at start-up, the active sessions `store`'s instance served before (with their
/// ancestors), at most [`MAX_HELD`], newest first: their untrusted index is rebuilt from this
/// instance's ledger chain.
pub(super) async fn load_served(store: &SessionStore, pg: &PgPool) -> Result<(), StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM sessions s JOIN session_instances i ON i.session = s.id \
         WHERE i.instance = $1 AND s.revoked_at IS NULL ORDER BY s.id DESC LIMIT $2",
        COLUMNS
            .split(", ")
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
    .bind(&*store.instance)
    .bind(i64::try_from(MAX_HELD).unwrap_or(i64::MAX))
    .fetch_all(pg)
    .await?;
    let mut loaded = Vec::with_capacity(rows.len());
    for row in &rows {
        let (hash, session) = session_of(row)?;
        session.served_here.store(true, Ordering::Release);
        let ancestors = load_ids(
            pg,
            &session
                .chain
                .iter()
                .map(|l| l.session.as_str())
                .collect::<Vec<_>>(),
        )
        .await?;
        let held = store.hold_loaded(hash, session, ancestors)?;
        loaded.extend(held);
    }
    refresh(pg, &store.instance, &loaded).await
}

/// Every session in the store, newest first (at most [`MAX_LISTED`]), as operators see them
/// at `now`. A session held here shows this instance's view; another one shows the store's,
/// with its provenance incomplete (no index of it is held here).
pub(super) async fn list(
    store: &SessionStore,
    pg: &PgPool,
    now: OffsetDateTime,
) -> Result<Vec<SessionInfo>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sessions ORDER BY id DESC LIMIT $1"
    )))
    .bind(MAX_LISTED)
    .fetch_all(pg)
    .await?;
    let mut sessions = Vec::with_capacity(rows.len());
    for row in &rows {
        let (_, session) = session_of(row)?;
        sessions.push(match store.get(&session.id) {
            Some(held) => held,
            None => {
                session.mark_provenance_incomplete();
                Arc::new(session)
            }
        });
    }
    refresh(pg, &store.instance, &sessions).await?;
    Ok(sessions.iter().map(|s| s.info(now)).collect())
}

/// The descendants of session `id` in the store (children, their children, ...), parents
/// before their children.
pub(super) async fn descendants(
    pg: &PgPool,
    id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, parent FROM sessions WHERE chain IS NOT NULL \
         AND chain::jsonb @> jsonb_build_array(jsonb_build_object('session', $1::text)) \
         ORDER BY jsonb_array_length(chain::jsonb), id",
    )
    .bind(id)
    .fetch_all(pg)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>("id")?,
                r.try_get::<Option<String>, _>("parent")?
                    .unwrap_or_default(),
            ))
        })
        .collect()
}
