//! Operator credentials, issued by an admin: the token is shown once and stored as a hash;
//! the issue is recorded before the credential exists (if the ledger cannot take the record,
//! no credential is issued).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use warden_core::{NewRecord, RecordKind};
use warden_session::{OperatorIdentity, OperatorRole};

use crate::OperatorState;
use crate::error::{ApiError, JsonBody};

/// The body of `POST /v1/operator-tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueToken {
    /// A name, for the record.
    name: String,
    /// `admin` or `approver`.
    role: String,
    /// The charter principal of an approver's credential.
    #[serde(default)]
    principal: Option<String>,
}

/// `POST /v1/operator-tokens` (admins only): issues an operator credential; the token is
/// shown once and stored as a hash.
pub(crate) async fn issue_token(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    body: Result<JsonBody<IssueToken>, ApiError>,
) -> Result<Response, ApiError> {
    if operator.role != OperatorRole::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_only",
            "only an admin credential may issue operator credentials",
        ));
    }
    // The role is checked before the body is looked at: a non-admin learns nothing more.
    let JsonBody(req) = body?;
    if req.name.trim().is_empty() || req.name.len() > 128 {
        return Err(ApiError::invalid_request("`name` must be 1 to 128 bytes"));
    }
    let role = match (req.role.as_str(), req.principal) {
        ("admin", None) => OperatorRole::Admin,
        ("approver", Some(p)) => {
            if state.charter.authority.principal(&p).is_none() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_principal",
                    format!("`{p}` is not a principal of the charter"),
                ));
            }
            OperatorRole::Approver(p)
        }
        _ => {
            return Err(ApiError::invalid_request(
                "`role` is `admin` (no `principal`) or `approver` (with the charter `principal` it acts as)",
            ));
        }
    };
    // Fail closed: the issue is recorded before the credential exists, so no credential ever
    // works without its record. (A store failure after the record leaves a record of an issue
    // that did not happen; never the reverse.)
    let record = NewRecord {
        session: None,
        kind: RecordKind::OperatorTokenIssued,
        payload: json!({
            "name": req.name,
            "role": role.as_str(),
            "principal": role.principal(),
            "by": operator.name,
        }),
    };
    if let Err(e) = state.recorder.append(record).await {
        tracing::error!(error = %e, "The ledger cannot record an operator credential; none is issued.");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
            format!("the credential could not be recorded, so none was issued: {e}"),
        ));
    }
    let token = state
        .operators
        .create(&req.name, role.clone(), state.clock.now())
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?;
    let issued = json!({
        "name": req.name,
        "role": role.as_str(),
        "principal": role.principal(),
        "token": token,
    });
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}
