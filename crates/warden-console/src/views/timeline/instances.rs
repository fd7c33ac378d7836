//! A fleet's other instances in the session timeline (PostgreSQL store). Each instance keeps
//! its own hash chain, so a session served by several instances has records in several
//! chains, each numbered on its own. The timeline shows one chain at a time — this instance's
//! by default, another with `?instance=ID` — with paging, live rows and record links all
//! within that chain, and names the other instances that hold records of the session, each a
//! link to its part. On SQLite there is one chain and nothing changes.

use warden_audit::{LedgerReader, LedgerSource};
use warden_core::InstanceId;
use warden_core::text::percent_encode;

use super::rows::Row;
use crate::ConsoleState;

/// The most other instances named on a timeline.
pub(crate) const MAX_NAMED: usize = 32;

/// The chain a timeline page reads.
pub(crate) struct Chain {
    /// Its reader.
    pub(crate) reader: LedgerReader,
    /// Its last record (for the "Last" page link).
    pub(crate) head: u64,
    /// `&instance=ID` (percent-encoded) to keep on every link of the page; empty for this
    /// instance's own chain.
    pub(crate) query: String,
}

/// Why a chain cannot be read.
pub(crate) enum ChainError {
    /// The instance is malformed or unknown (or the store is not shared).
    Unknown(String),
    /// The store failed.
    Unavailable,
}

/// The chain of `instance` (`None`: this instance's own).
pub(crate) async fn chain_of(
    state: &ConsoleState,
    instance: Option<&str>,
) -> Result<Chain, ChainError> {
    let own = || Chain {
        reader: state.ledger.clone(),
        head: *state.head.borrow(),
        query: String::new(),
    };
    let Some(asked) = instance.filter(|i| !i.is_empty()) else {
        return Ok(own());
    };
    let Some(LedgerSource::Postgres { pool, instance: me }) = &state.fleet else {
        return Err(ChainError::Unknown(
            "this gateway's ledger has one chain: it keeps no other instance's records".to_owned(),
        ));
    };
    let id = InstanceId::parse(asked).map_err(|e| ChainError::Unknown(e.to_string()))?;
    if me.as_ref() == Some(&id) {
        return Ok(own());
    }
    let reader = LedgerReader::open_postgres(pool.clone(), Some(id.clone()))
        .await
        .map_err(|_| ChainError::Unavailable)?;
    let listed = reader
        .instances()
        .await
        .map_err(|_| ChainError::Unavailable)?;
    let Some(info) = listed.iter().find(|i| i.instance == id.as_str()) else {
        return Err(ChainError::Unknown(format!(
            "the fleet has no instance `{id}`"
        )));
    };
    Ok(Chain {
        head: info.head,
        query: format!("&instance={}", percent_encode(id.as_str())),
        reader,
    })
}

/// Another instance holding records of a session: its name, its count, its link.
pub struct Elsewhere {
    /// The instance.
    pub instance: String,
    /// How many records of the session its chain holds.
    pub count: u64,
    /// Its part of the timeline.
    pub href: String,
}

/// The instances other than `shown` whose chains hold records of `session` (at most
/// [`MAX_NAMED`]); empty on SQLite, and on a store error (the page says what it shows).
pub(crate) async fn elsewhere(
    state: &ConsoleState,
    session: &str,
    shown: Option<&str>,
) -> Vec<Elsewhere> {
    let Some(LedgerSource::Postgres { pool, instance: me }) = &state.fleet else {
        return Vec::new();
    };
    let Ok(any) = LedgerReader::open_postgres(pool.clone(), None).await else {
        return Vec::new();
    };
    let Ok(listed) = any.instances().await else {
        return Vec::new();
    };
    let shown = shown
        .map(str::to_owned)
        .or_else(|| me.as_ref().map(|m| m.as_str().to_owned()));
    let mut out = Vec::new();
    for info in listed.into_iter().take(MAX_NAMED) {
        if Some(&info.instance) == shown.as_ref() {
            continue;
        }
        let Ok(id) = InstanceId::parse(&info.instance) else {
            continue;
        };
        let Ok(reader) = LedgerReader::open_postgres(pool.clone(), Some(id)).await else {
            continue;
        };
        match reader.session_count(session).await {
            Ok(0) | Err(_) => {}
            Ok(count) => out.push(Elsewhere {
                href: format!(
                    "/ui/sessions/{}?instance={}",
                    percent_encode(session),
                    percent_encode(&info.instance)
                ),
                instance: info.instance,
                count,
            }),
        }
    }
    out
}

/// Keeps the rows' record links within the chain shown.
pub(crate) fn qualify(rows: &mut [Row], query: &str) {
    if query.is_empty() {
        return;
    }
    let as_first = format!("?{}", query.trim_start_matches('&'));
    for link in rows.iter_mut().flat_map(|r| r.links.iter_mut()) {
        if link.href.starts_with("/ui/records/") {
            link.href.push_str(&as_first);
        }
    }
}
