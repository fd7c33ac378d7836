//! `/readyz` on both planes: whether the gateway can do its work now — the ledger takes
//! appends, every upstream server is connected and, on PostgreSQL, the shared store answers
//! (`"store": "ok"` or `"unreachable"`, a `SELECT 1` bounded by one second).
//!
//! `200` with `{ "status": "ready", "ledger": "ok", "upstreams": { "fs": "up", … } }` when
//! all is well; `503` with the same shape otherwise (`"ledger": "failing"`, an upstream
//! `"down"`). Like `/healthz` it needs no credential, and it says nothing about sessions,
//! tokens or settings: server ids are the charter's own names. (`/healthz` says only that
//! the process answers.)

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use warden_audit::Ledger;
use warden_mcp::Upstreams;

/// What `/readyz` looks at.
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    /// The ledger.
    pub(crate) ledger: Ledger,
    /// The upstream servers.
    pub(crate) upstreams: Upstreams,
    /// The charters in force: their servers, by agent and in charter order, are those
    /// reported (a live reload changes them).
    pub(crate) charter: Arc<warden_charter::CharterCell>,
    /// The shared store, on PostgreSQL.
    pub(crate) store: Option<sqlx::PgPool>,
}

/// How long the store's answer to `/readyz` is waited for.
const STORE_PING: std::time::Duration = std::time::Duration::from_secs(1);

impl Readiness {
    /// The answer: status and body.
    pub(crate) fn report(&self) -> (StatusCode, Value) {
        let ledger_ok = self.ledger.is_accepting();
        let mut upstreams = Map::new();
        let mut all_up = true;
        let set = self.charter.load();
        // Every agent's servers, each once (a server id names one upstream for the gateway).
        for id in set
            .iter()
            .flat_map(|c| c.inventory.servers.iter().map(|s| &s.id))
        {
            if upstreams.contains_key(id) {
                continue;
            }
            let up = self.upstreams.get(id).is_some_and(|u| u.is_up());
            all_up &= up;
            upstreams.insert(id.clone(), json!(if up { "up" } else { "down" }));
        }
        let ready = ledger_ok && all_up;
        let body = json!({
            "status": if ready { "ready" } else { "not_ready" },
            "ledger": if ledger_ok { "ok" } else { "failing" },
            "upstreams": upstreams,
        });
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, body)
    }
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    let (mut status, mut body) = readiness.report();
    if let Some(pool) = &readiness.store {
        let ping = tokio::time::timeout(STORE_PING, sqlx::query("SELECT 1").execute(pool)).await;
        let ok = matches!(ping, Ok(Ok(_)));
        if let Some(obj) = body.as_object_mut() {
            obj.insert(
                "store".to_owned(),
                json!(if ok { "ok" } else { "unreachable" }),
            );
            if !ok {
                obj.insert("status".to_owned(), json!("not_ready"));
            }
        }
        if !ok {
            status = StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    (status, axum::Json(body)).into_response()
}

/// A router serving `GET /readyz` (merge it into a plane, outside authentication).
pub(crate) fn router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .with_state(readiness)
}
