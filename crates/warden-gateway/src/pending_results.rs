//! Decide-API actions that were allowed and whose result the agent has not reported yet:
//! bounded (the oldest is dropped past the bound), and a result is taken only by the session
//! that was allowed the action.
//!
//! On SQLite (one instance) they wait in memory. In a fleet (PostgreSQL) they wait in the
//! shared store ([`shared`]), so the report may reach any instance; one that cannot be stored
//! (the store failed, or its bound is reached) waits in the allowing instance's memory, as on
//! SQLite.

pub mod shared;

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::StatusCode;
use warden_core::gate::Allowed;

use crate::governor::Governor;
pub use shared::SharedResults;

/// Allowed actions awaiting their result report, at most this many (the oldest is dropped).
pub const MAX_PENDING_RESULTS: usize = 10_000;
/// How often the fleet's store is swept for actions past their deadline.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// An allowed action waiting for its result report.
#[derive(Debug)]
struct AwaitingResult {
    /// The session that was allowed the action (only it may report the result).
    session: String,
    /// The tool.
    tool: String,
    /// The allowance, as the governor gave it.
    allowed: Allowed,
}

/// Allowed decide-API actions whose result has not been reported yet: in this instance's
/// memory (in arrival order), and in the fleet's store when there is one.
#[derive(Debug, Default)]
pub struct PendingResults {
    inner: Mutex<PendingIndex>,
    shared: Option<SharedResults>,
}

/// An allowed action taken for its result report.
#[derive(Debug)]
pub enum Awaiting {
    /// It waited in this instance's memory: the tool and the allowance.
    Here(String, Allowed),
    /// It waited in the fleet's store: its row stays locked until closed.
    Shared(shared::Claim),
}

/// Why a report found no action to take.
#[derive(Debug)]
pub enum TakeError {
    /// No allowed action of this id and session awaits its result.
    Unknown(StatusCode),
    /// The fleet's store could not be read: the action (if any) stays pending.
    Store(sqlx::Error),
}

/// The actions by id, and their ids in arrival order (to drop the oldest past the bound).
#[derive(Debug, Default)]
struct PendingIndex {
    by_id: HashMap<String, AwaitingResult>,
    arrival: std::collections::VecDeque<String>,
}

impl PendingResults {
    /// Pending results kept in `shared` too (a fleet), or in memory only (`None`).
    pub fn new(shared: Option<SharedResults>) -> PendingResults {
        PendingResults {
            inner: Mutex::default(),
            shared,
        }
    }

    /// Pending results for a gateway on `db`: in the fleet's store on PostgreSQL (as this
    /// instance, with `config`'s decide-API result deadline, swept every second on `tasks`
    /// until the governor stops), in memory on SQLite.
    pub fn start(
        db: &warden_session::StateDb,
        config: &crate::config::Config,
        governor: &std::sync::Arc<Governor>,
        tasks: &tokio_util::task::TaskTracker,
    ) -> anyhow::Result<PendingResults> {
        let Some(pool) = db.postgres() else {
            return Ok(PendingResults::default());
        };
        let instance = crate::store::instance(config)?;
        let shared = SharedResults::new(pool.clone(), instance, config.result_deadline);
        shared.clone().sweep_in_background(
            governor.clone(),
            tasks,
            governor.stopping(),
            SWEEP_INTERVAL,
        );
        Ok(PendingResults::new(Some(shared)))
    }

    /// The fleet's store of pending results, if any.
    pub fn shared(&self) -> Option<&SharedResults> {
        self.shared.as_ref()
    }

    /// Keeps an allowed action until its result is reported: in the fleet's store when there
    /// is one (the governor then leaves its deadline to the store's sweep), otherwise (or when
    /// the store cannot take it) in memory.
    pub(crate) async fn keep(
        &self,
        governor: &Governor,
        session: &str,
        tool: &str,
        allowed: Allowed,
    ) {
        if let Some(shared) = &self.shared {
            match shared
                .insert(&allowed.action_id, session, tool, &allowed.args)
                .await
            {
                Ok(true) => {
                    governor.leave_result_to_the_store(&allowed.action_id);
                    return;
                }
                Ok(false) => tracing::warn!(
                    "Too many decide-API actions await their result in the store; this one's report works on this instance only."
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "A decide-API action could not be kept in the store; its report works on this instance only."
                ),
            }
        }
        self.insert(session, tool, allowed);
    }

    /// Takes the action `id` for `session`'s report: from memory, else from the fleet's store.
    pub(crate) async fn take_for_report(
        &self,
        id: &str,
        session: &str,
    ) -> Result<Awaiting, TakeError> {
        let here = self.take(id, session);
        match (here, &self.shared) {
            (Ok((tool, allowed)), _) => Ok(Awaiting::Here(tool, allowed)),
            (Err(code), None) => Err(TakeError::Unknown(code)),
            (Err(code), Some(shared)) => match shared.claim(id, session).await {
                Ok(Some(claim)) => Ok(Awaiting::Shared(claim)),
                Ok(None) => Err(TakeError::Unknown(code)),
                Err(e) => Err(TakeError::Store(e)),
            },
        }
    }

    pub(crate) fn insert(&self, session: &str, tool: &str, allowed: Allowed) {
        if let Ok(mut g) = self.inner.lock() {
            let PendingIndex { by_id, arrival } = &mut *g;
            if by_id.len() >= MAX_PENDING_RESULTS
                && let Some(old) = arrival.pop_front()
            {
                by_id.remove(&old);
            }
            arrival.push_back(allowed.action_id.clone());
            by_id.insert(
                allowed.action_id.clone(),
                AwaitingResult {
                    session: session.to_owned(),
                    tool: tool.to_owned(),
                    allowed,
                },
            );
        }
    }

    pub(crate) fn take(&self, id: &str, session: &str) -> Result<(String, Allowed), StatusCode> {
        let mut g = self
            .inner
            .lock()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let PendingIndex { by_id, arrival } = &mut *g;
        match by_id.get(id) {
            None => Err(StatusCode::NOT_FOUND),
            Some(a) if a.session != session => Err(StatusCode::NOT_FOUND),
            Some(_) => {
                arrival.retain(|x| x != id);
                by_id
                    .remove(id)
                    .map(|a| (a.tool, a.allowed))
                    .ok_or(StatusCode::NOT_FOUND)
            }
        }
    }
}
