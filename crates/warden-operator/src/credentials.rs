//! Operator credentials: issued (by an admin, or by whom the charter's `authority.enrolment`
//! lets issue approver credentials), listed and revoked. The token is shown once and stored as
//! a hash; an issue or a revocation is recorded before it takes effect (if the ledger cannot
//! take the record, nothing changes).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use warden_core::text::rfc3339;
use warden_core::{NewRecord, RecordKind};
use warden_session::{OperatorIdentity, OperatorRole, OperatorToken};

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

/// `POST /v1/operator-tokens`: issues an operator credential; the token is shown once and
/// stored as a hash. An admin may issue admin credentials, and approver credentials for the
/// principals the charter's `authority.enrolment` lets admins enrol; an approver may issue
/// approver credentials for the principals it lets their roles enrol. Nothing else.
pub(crate) async fn issue_token(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    body: Result<JsonBody<IssueToken>, ApiError>,
) -> Result<Response, ApiError> {
    let charter = state.charter.load();
    let issuer = operator.role.principal();
    if issuer.is_some() && !charter.any(|c| c.authority.enrolment.iter().any(|e| e.by.is_some())) {
        // The role is checked before the body is looked at: a non-admin learns nothing more.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_only",
            "only an admin credential may issue operator credentials",
        ));
    }
    let JsonBody(req) = body?;
    if req.name.trim().is_empty() || req.name.len() > 128 {
        return Err(ApiError::invalid_request("`name` must be 1 to 128 bytes"));
    }
    let role = match (req.role.as_str(), req.principal) {
        ("admin", None) if issuer.is_none() => OperatorRole::Admin,
        ("admin", None) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_only",
                "only an admin credential may issue admin credentials",
            ));
        }
        ("observer", None) if issuer.is_none() => OperatorRole::Observer,
        ("observer", None) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_only",
                "only an admin credential may issue observer credentials",
            ));
        }
        ("approver", Some(p)) => {
            if !charter.any(|c| c.authority.principal(&p).is_some()) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_principal",
                    format!("`{p}` is not a principal of the charter"),
                ));
            }
            if !charter.any(|c| c.authority.may_enrol(issuer, &p)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "not_enrolled",
                    format!(
                        "the charter's `authority.enrolment` does not let {} issue approver credentials for `{p}`",
                        issuer.map_or_else(|| "an admin".to_owned(), |i| format!("`{i}`"))
                    ),
                ));
            }
            OperatorRole::Approver(p)
        }
        _ => {
            return Err(ApiError::invalid_request(
                "`role` is `admin` or `observer` (no `principal`), or `approver` (with the charter `principal` it acts as)",
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
            "by_id": operator.id,
            "offline": false,
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
    let issued = state
        .operators
        .create(&req.name, role.clone(), state.clock.now(), true)
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?;
    let body = json!({
        "id": issued.id,
        "name": req.name,
        "role": role.as_str(),
        "principal": role.principal(),
        "token": issued.token,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// An operator credential as the API shows it: never its token or hash.
pub(crate) fn token_json(t: &OperatorToken) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "role": t.role.as_str(),
        "principal": t.role.principal(),
        "created_at": rfc3339(t.created_at),
        "revoked_at": t.revoked_at.map(rfc3339),
        "recorded_at": t.recorded_at.map(rfc3339),
    })
}

/// `GET /v1/operator-tokens` (admins only): every operator credential, oldest first.
pub(crate) async fn list_tokens(
    State(state): State<Arc<OperatorState>>,
) -> Result<Response, ApiError> {
    let tokens = state
        .operators
        .list()
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?;
    let tokens: Vec<Value> = tokens.iter().map(token_json).collect();
    Ok(Json(json!({ "operator_tokens": tokens })).into_response())
}

/// `POST /v1/operator-tokens/{id}/revoke` (admins only): the credential never authenticates
/// again, and votes it cast no longer count toward a grant not yet used. Recorded first: if
/// the ledger cannot take the record, nothing is revoked.
pub(crate) async fn revoke_token(
    State(state): State<Arc<OperatorState>>,
    Extension(operator): Extension<OperatorIdentity>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = state
        .operators
        .get(&id)
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?;
    let Some(token) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_operator_token",
            format!("no operator credential `{id}`"),
        ));
    };
    if token.revoked_at.is_some() {
        return Ok(
            Json(json!({ "revoked": false, "operator_token": token_json(&token) })).into_response(),
        );
    }
    let record = NewRecord {
        session: None,
        kind: RecordKind::OperatorTokenRevoked,
        payload: json!({
            "id": token.id,
            "name": token.name,
            "role": token.role.as_str(),
            "principal": token.role.principal(),
            "by": operator.name,
            "by_id": operator.id,
        }),
    };
    if let Err(e) = state.recorder.append(record).await {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
            format!("the revocation could not be recorded, so nothing was revoked: {e}"),
        ));
    }
    let changed = state
        .operators
        .revoke(&id, state.clock.now())
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?;
    let now = state
        .operators
        .get(&id)
        .await
        .map_err(|e| ApiError::store_unavailable(e.to_string()))?
        .map_or(Value::Null, |t| token_json(&t));
    Ok(Json(json!({ "revoked": changed, "operator_token": now })).into_response())
}
