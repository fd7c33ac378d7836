//! The operator plane's audit routes: the latest signed checkpoint and the Merkle proofs a
//! monitor or verifier checks against it (see docs/checkpoints.md and docs/api.md).
//!
//! - `GET /v1/audit/checkpoint`: the latest `checkpoint_signed` record's note, as
//!   `text/plain; charset=utf-8` (`404 no_checkpoint` when none was signed).
//! - `GET /v1/audit/consistency?old=N&new=M`: the consistency proof from the tree of `N`
//!   records to the tree of `M`.
//! - `GET /v1/audit/inclusion?seq=S&size=N`: the inclusion proof of record `S` in the tree of
//!   `N` records.
//!
//! Read-only, for an operator token of an admin or an observer (an approver's is refused, an
//! agent's session token too). Nothing served here is trusted by its reader: the note carries
//! its signature, the proofs are checked against signed roots. The query is bounded (256
//! bytes, only the two named parameters, each once, decimal numbers of at most 20 digits).

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use warden_audit::{LedgerError, LedgerReader, merkle};
use warden_core::RecordKind;
use warden_operator::{ApiError, OperatorState};

/// The longest query string accepted, in bytes.
const MAX_QUERY_BYTES: usize = 256;

/// What the audit routes read.
#[derive(Clone)]
struct AuditState {
    ledger: LedgerReader,
}

/// The audit routes, behind the operator plane's own token layer
/// ([`warden_operator::authenticate`]: an admin's token, or an observer's, which may reach
/// exactly these three routes besides its own).
pub(crate) fn router(operator: Arc<OperatorState>, ledger: LedgerReader) -> Router {
    Router::new()
        .route("/v1/audit/checkpoint", get(checkpoint))
        .route("/v1/audit/consistency", get(consistency))
        .route("/v1/audit/inclusion", get(inclusion))
        // Outermost: nothing reaches a handler without an admin's or an observer's token.
        .layer(middleware::from_fn_with_state(
            operator,
            warden_operator::authenticate,
        ))
        .with_state(AuditState { ledger })
}

/// `GET /v1/audit/checkpoint`: the latest signed note, as it was recorded.
async fn checkpoint(State(state): State<AuditState>) -> Result<Response, ApiError> {
    let last = state
        .ledger
        .newest_of_kinds(&[RecordKind::CheckpointSigned.as_str()], None, 1)
        .await
        .map_err(|e| ledger_error(&e))?;
    let note = last
        .first()
        .and_then(|r| r.payload.get("note"))
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_checkpoint",
                "no checkpoint has been signed yet (is `[checkpoints]` configured?)",
            )
        })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        note.to_owned(),
    )
        .into_response())
}

/// `GET /v1/audit/consistency?old=N&new=M`.
async fn consistency(
    State(state): State<AuditState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let [old, new] = numbers(query.as_deref(), ["old", "new"])?;
    if old == 0 {
        return Err(ApiError::invalid_request(
            "`old` must be 1 or more: the tree of 0 records has no consistency proof",
        ));
    }
    if old > new {
        return Err(ApiError::invalid_request(format!(
            "`old` ({old}) is larger than `new` ({new}): a tree never shrinks"
        )));
    }
    let proof = state
        .ledger
        .consistency_proof(old, new)
        .await
        .map_err(|e| ledger_error(&e))?;
    Ok(answer(
        json!({ "old": old, "new": new, "proof": encode(&proof) }),
    ))
}

/// `GET /v1/audit/inclusion?seq=S&size=N`.
async fn inclusion(
    State(state): State<AuditState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let [seq, size] = numbers(query.as_deref(), ["seq", "size"])?;
    if seq == 0 || seq > size {
        return Err(ApiError::invalid_request(format!(
            "`seq` ({seq}) must be from 1 to `size` ({size})"
        )));
    }
    let proof = state
        .ledger
        .inclusion_proof(seq, size)
        .await
        .map_err(|e| ledger_error(&e))?;
    Ok(answer(json!({
        "seq": seq,
        "size": size,
        "leaf_index": seq - 1,
        "proof": encode(&proof),
    })))
}

fn answer(body: serde_json::Value) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(body),
    )
        .into_response()
}

fn encode(proof: &[merkle::Hash]) -> Vec<String> {
    proof.iter().map(|h| STANDARD.encode(h)).collect()
}

/// The query's two numbers, by name: each given exactly once, nothing else given, each 1 to
/// 20 decimal digits that fit in 64 bits.
fn numbers(query: Option<&str>, names: [&'static str; 2]) -> Result<[u64; 2], ApiError> {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::invalid_request(format!(
            "the query is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    let mut values: [Option<u64>; 2] = [None, None];
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = names
            .iter()
            .position(|n| *n == key)
            .and_then(|i| values.get_mut(i))
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "unknown query parameter `{}`: give `{}` and `{}`",
                    key.chars().take(32).collect::<String>(),
                    names[0],
                    names[1]
                ))
            })?;
        if slot.is_some() {
            return Err(ApiError::invalid_request(format!(
                "`{key}` is given more than once"
            )));
        }
        let number = (!value.is_empty()
            && value.len() <= 20
            && value.bytes().all(|b| b.is_ascii_digit()))
        .then(|| value.parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::invalid_request(format!(
                "`{key}` must be a whole number (decimal digits, at most 18446744073709551615)"
            ))
        })?;
        *slot = Some(number);
    }
    match values {
        [Some(a), Some(b)] => Ok([a, b]),
        _ => Err(ApiError::invalid_request(format!(
            "give both `{}` and `{}`",
            names[0], names[1]
        ))),
    }
}

/// A ledger error in the API's shape: what the caller asked wrongly is `400`, a pruned record
/// `410`, anything else `503`.
fn ledger_error(e: &LedgerError) -> ApiError {
    match e {
        LedgerError::EmptyTree
        | LedgerError::BeyondHead { .. }
        | LedgerError::NotInTree { .. }
        | LedgerError::Shrinks { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "out_of_range", e.to_string())
        }
        LedgerError::Pruned { .. } => ApiError::new(StatusCode::GONE, "pruned", e.to_string()),
        _ => {
            tracing::warn!(error = %e, "An audit route could not read the ledger.");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                "the ledger cannot be read right now",
            )
        }
    }
}
