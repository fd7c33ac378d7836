//! The ledger's instances: `GET /v1/instances` lists every gateway instance whose hash chain
//! the store holds (`{"instances":[{"instance","ledger","head","this"}]}`, `this` true for
//! the instance answering; on SQLite the one ledger, named by its ledger id), and `GET /v1/ledger/stream?instance=ID` streams one of them.
//!
//! What it guarantees: admins and observers read it (an approver's credential and an agent's
//! token are refused by the plane's authentication); an `instance` that is not an instance
//! name (empty, over [`MAX_INSTANCE_BYTES`], characters outside `A-Za-z0-9._-`) is `400
//! invalid_request` and is never echoed; a well-formed name the store does not hold is `404
//! not_found`; a store that cannot be read is `503 store_unavailable`. The list is bounded by
//! the store (at most 10,000 instances).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::OperatorState;
use crate::error::ApiError;
use crate::feed::{FeedFuture, LedgerFeed};

/// The longest instance name the stream's `instance` parameter takes.
pub const MAX_INSTANCE_BYTES: usize = warden_core::store::MAX_INSTANCE_ID_CHARS;

/// One instance's chain, as `GET /v1/instances` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceEntry {
    /// The instance's name (on SQLite: the ledger id).
    pub instance: String,
    /// Its ledger's identity.
    pub ledger: String,
    /// The last record its writer committed.
    pub head: u64,
    /// Whether it is the instance answering (whose chain the stream serves without
    /// `instance`): the observer follows the others beside it.
    pub this: bool,
}

/// What the plane reads the instances through: the gateway implements it over the ledger's
/// store.
pub trait LedgerDirectory: Send + Sync + 'static {
    /// Every instance with its ledger id and head, by name; `Err` with a sentence when the
    /// store cannot be read.
    fn list(&self) -> FeedFuture<'_, Result<Vec<InstanceEntry>, String>>;
    /// A feed of `instance`'s chain (a well-formed name): this gateway's own, or another
    /// instance's in the shared store; `Ok(None)` when the store holds no such chain.
    fn feed(&self, instance: &str) -> FeedFuture<'_, Result<Option<Arc<dyn LedgerFeed>>, String>>;
}

/// Whether `text` is a well-formed instance name (what `--instance` takes).
fn well_formed(text: &str) -> bool {
    warden_core::InstanceId::parse(text).is_ok()
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the ledger's instances are not available on this gateway",
    )
}

/// `GET /v1/instances`.
pub(crate) async fn list(
    State(state): State<Arc<OperatorState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(directory) = state.observability.directory.clone() else {
        return Err(unavailable());
    };
    match directory.list().await {
        Ok(instances) => Ok(Json(serde_json::json!({ "instances": instances }))),
        Err(e) => {
            tracing::error!(error = %e, "The ledger's instances cannot be read.");
            Err(ApiError::store_unavailable(
                "the ledger's store cannot be read",
            ))
        }
    }
}

/// The feed of the stream's `instance` parameter.
pub(crate) async fn feed_of(
    state: &OperatorState,
    instance: &str,
) -> Result<Arc<dyn LedgerFeed>, ApiError> {
    if !well_formed(instance) {
        return Err(ApiError::invalid_request(format!(
            "`instance` must be an instance name: 1 to {MAX_INSTANCE_BYTES} of A-Z a-z 0-9 . _ -"
        )));
    }
    let Some(directory) = state.observability.directory.clone() else {
        return Err(unavailable());
    };
    match directory.feed(instance).await {
        Ok(Some(feed)) => Ok(feed),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the ledger has no instance `{instance}`"),
        )),
        Err(e) => {
            tracing::error!(error = %e, "The ledger's instances cannot be read.");
            Err(ApiError::store_unavailable(
                "the ledger's store cannot be read",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_instance_names_are_well_formed() {
        for good in ["gw-1", "a", "eu_west.2", &"x".repeat(MAX_INSTANCE_BYTES)] {
            assert!(well_formed(good), "{good}");
        }
        for bad in [
            "",
            "gw 1",
            "gw-1'; DROP TABLE ledger_records; --",
            "../etc",
            "gw/1",
            "é",
            "gw\n1",
            &"x".repeat(MAX_INSTANCE_BYTES + 1),
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }
}
