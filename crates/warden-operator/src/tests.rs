//! The operator plane through `router(state).oneshot(req)`, adversarially: every protected
//! route against the wrong credentials, every body-reading route against malformed and
//! oversized bodies, a ledger that fails, and link pages that carry markup. The happy paths and
//! the approval workflow end to end are the gateway's integration tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt as _;
use warden_approval::signing::Link;
use warden_approval::{ApprovalRequest, ApprovalStore, Approvals, LinkAction, NewApproval, Signer};
use warden_core::record::RecordFuture;
use warden_core::{ManualClock, NewRecord, RecordError, RecordKind, Recorder};
use warden_session::{OperatorCredentials, OperatorRole, SessionStore, StateDb};

use super::*;

const CHARTER: &str = r#"version: 1
identity: { id: agent-1, name: Agent, purpose: tests, serves: the test suite }
inventory:
  servers:
    - { id: echo, url: "http://127.0.0.1:9/mcp", tools: [echo] }
actions:
  rules:
    - { id: echo-ask, tool: echo.echo, tier: approval }
authority:
  roles:
    - { id: approver, approve: [default, "echo-*"] }
  principals:
    - { id: alice, roles: [approver] }
    - { id: bob, roles: [approver] }
  enrolment:
    - { by: admin, principals: [bob] }
"#;

/// The body limit of the protected routes in these tests.
const LIMIT: usize = 1024;

/// Every route behind operator authentication, with a path that matches it.
const PROTECTED: &[(&str, &str)] = &[
    ("GET", "/v1/sessions"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/sessions/s-1/revoke"),
    ("GET", "/v1/sessions/s-1"),
    ("POST", "/v1/sessions/s-1/instructions"),
    ("POST", "/v1/operator-tokens"),
    ("GET", "/v1/operator-tokens"),
    ("POST", "/v1/operator-tokens/t-1/revoke"),
    ("GET", "/v1/approvals"),
    ("GET", "/v1/approvals/a-1"),
    ("POST", "/v1/approvals/a-1/approve"),
    ("POST", "/v1/approvals/a-1/deny"),
    ("POST", "/v1/approvals/a-1/reverse"),
    ("POST", "/v1/controls/c-1/lift"),
];

/// A recorder that keeps what it is given, or fails when told to.
#[derive(Debug, Default)]
struct MemoryRecorder {
    records: Mutex<Vec<NewRecord>>,
    failing: AtomicBool,
}

impl MemoryRecorder {
    fn kinds(&self) -> Vec<RecordKind> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.kind)
            .collect()
    }
}

impl Recorder for MemoryRecorder {
    fn append_batch(&self, records: Vec<NewRecord>) -> RecordFuture<'_> {
        Box::pin(async move {
            if self.failing.load(Ordering::SeqCst) {
                return Err(RecordError {
                    message: "the disk is full".to_owned(),
                    source: None,
                });
            }
            self.records.lock().unwrap().extend(records);
            Ok(())
        })
    }
}

struct Fixture {
    state: Arc<OperatorState>,
    recorder: Arc<MemoryRecorder>,
    /// An admin's operator token.
    admin: String,
    /// Bob's approver token.
    approver: String,
    /// An agent session's token (alice's agent).
    agent: String,
    /// The clock the approvals read.
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let recorder = Arc::new(MemoryRecorder::default());
    let db = StateDb::open(dir.path()).await.unwrap();
    let sessions = SessionStore::open(&db).await.unwrap();
    let operators = OperatorCredentials::open(&db);
    let admin = operators
        .create("admin", OperatorRole::Admin, t0(), true)
        .await
        .unwrap()
        .token;
    let approver = operators
        .create("bob", OperatorRole::Approver("bob".into()), t0(), true)
        .await
        .unwrap()
        .token;
    let (opened, _) = sessions
        .open_session(
            "agent-1",
            "alice",
            "testing",
            Duration::from_secs(3600),
            t0(),
        )
        .await
        .unwrap();
    let charter = Arc::new(warden_charter::CharterCell::from(
        warden_charter::compile(&[warden_charter::Source::new("charter.yaml", CHARTER)])
            .unwrap()
            .charter,
    ));
    let approvals = Arc::new(Approvals::new(
        ApprovalStore::open(db.pool().unwrap(), t0()).await.unwrap(),
        Signer::new(b"an approval signing secret of 32+ bytes").unwrap(),
        charter.clone(),
        recorder.clone(),
        clock.clone(),
        None,
        Duration::from_secs(10),
    ));
    let controls = Arc::new(controls::ControlDesk::new(
        Arc::new(warden_session::Controls::open(&db).await.unwrap()),
        recorder.clone(),
        clock.clone(),
    ));
    let state = Arc::new(OperatorState {
        sessions,
        operators,
        approvals,
        charter,
        recorder: recorder.clone(),
        controls,
        clock: clock.clone(),
        observability: crate::Observability::default(),
        loaded_at: Default::default(),
        max_body_bytes: LIMIT,
    });
    Fixture {
        state,
        recorder,
        admin,
        approver,
        agent: opened.token,
        clock,
        _dir: dir,
    }
}

/// A pending request for `echo.echo` with `arguments`, raised by alice's agent.
async fn pending_request(f: &Fixture, arguments: Value, why: &str) -> String {
    let req = ApprovalRequest::new(NewApproval {
        id: "a-1".into(),
        action: "act-1".into(),
        session: "s-1".into(),
        agent: "agent-1".into(),
        principal: "alice".into(),
        task: "testing".into(),
        tool: "echo.echo".into(),
        arguments,
        reason: "rule".into(),
        why: why.into(),
        rules: Vec::new(),
        authority_for: vec!["echo-ask".into()],
        approvers: vec!["bob".into()],
        quorum: 1,
        charter: f.state.charter.load().first().hash.to_string(),
        requested_at: t0(),
        deadline: t0() + time::Duration::minutes(15),
        model_turns: Vec::new(),
    });
    f.state.approvals.create(req).await.unwrap();
    "a-1".to_owned()
}

/// A signed link to `action` request `id` as `approver`, valid for an hour.
fn link(f: &Fixture, action: LinkAction, id: &str, approver: &str) -> String {
    let expires = t0().unix_timestamp() + 3600;
    let sig = f.state.approvals.signer().sign_link(&Link {
        action,
        request: id,
        approver,
        via: "t1",
        expires_unix: expires,
    });
    let approver = approver
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect::<String>();
    format!(
        "/v1/approvals/{id}/link/{}?approver={approver}&via=t1&expires={expires}&sig={sig}",
        action.as_str()
    )
}

fn request(method: &str, uri: &str, token: Option<&str>, body: Body) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    req.body(body).unwrap()
}

fn json_request(method: &str, uri: &str, token: &str, body: impl Into<Body>) -> Request<Body> {
    let mut req = request(method, uri, Some(token), body.into());
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    req
}

/// Sends `req` through a fresh router; the status and the body (JSON, or a string).
async fn send(f: &Fixture, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router(f.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/json");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if json {
        serde_json::from_slice(&bytes).unwrap()
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    (status, body)
}

/// `body` is exactly `{"error": {"code": code, "message": <a sentence>}}` and came with
/// `status`.
#[track_caller]
fn assert_api_error(what: &str, got: &(StatusCode, Value), status: u16, code: &str) {
    let (got_status, body) = got;
    assert_eq!(got_status.as_u16(), status, "{what}: {body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{what}: {body}");
    let error = body["error"].as_object().unwrap();
    assert_eq!(error.len(), 2, "{what}: {body}");
    assert_eq!(error["code"], code, "{what}: {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn an_api_error_renders_the_one_json_shape() {
    let resp = ApiError::new(StatusCode::CONFLICT, "replay", "already \"used\"").into_response();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        bytes,
        r#"{"error":{"code":"replay","message":"already \"used\""}}"#
    );
    // A workflow refusal keeps its status and code; a status HTTP has no name for is a 500.
    let refusal = warden_approval::DecideError {
        status: 410,
        code: "expired",
        message: "too late".into(),
    };
    assert_eq!(
        ApiError::from(refusal),
        ApiError::new(StatusCode::GONE, "expired", "too late")
    );
    let odd = warden_approval::DecideError {
        status: 1000,
        code: "odd",
        message: String::new(),
    };
    assert_eq!(
        ApiError::from(odd).status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn an_agent_token_is_refused_on_every_operator_route_and_recorded_on_the_approval_channel() {
    let f = fixture().await;
    let session = f.state.sessions.authenticate(&f.agent).unwrap().id.clone();
    let body = json!({ "agent": "agent-1", "user": "alice", "name": "x", "role": "admin" });
    for (method, path) in PROTECTED {
        let got = send(&f, json_request(method, path, &f.agent, body.to_string())).await;
        assert_api_error(&format!("{method} {path}"), &got, 403, "wrong_plane");
    }
    // Only the attempts on the approval channel are recorded, each as the agent's session.
    let records = f.recorder.records.lock().unwrap().clone();
    let attempted: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            assert_eq!(r.kind, RecordKind::ApprovalRefused);
            assert_eq!(r.session.as_deref(), Some(session.as_str()));
            assert_eq!(r.payload["channel"], "operator_plane");
            assert_eq!(r.payload["refusal"], "agent_credential");
            (
                r.payload["method"].as_str().unwrap().to_owned(),
                r.payload["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = PROTECTED
        .iter()
        .filter(|(_, p)| p.starts_with("/v1/approvals"))
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(attempted, expected);
    // Nothing was opened or issued with the agent's token.
    assert_eq!(f.state.sessions.list(t0()).len(), 1);
    assert_eq!(f.state.operators.count().await.unwrap(), 2);
}

#[tokio::test]
async fn no_token_or_a_forged_one_is_unauthenticated_on_every_operator_route() {
    let f = fixture().await;
    for (method, path) in PROTECTED {
        let what = format!("{method} {path}");
        let got = send(&f, request(method, path, None, Body::empty())).await;
        assert_api_error(&what, &got, 401, "unauthenticated");
        for forged in ["wo_forged", "not-a-token", &format!("{}x", f.admin)] {
            let got = send(&f, request(method, path, Some(forged), Body::empty())).await;
            assert_api_error(
                &format!("{what} with `{forged}`"),
                &got,
                401,
                "unauthenticated",
            );
        }
        let mut basic = request(method, path, None, Body::empty());
        basic.headers_mut().insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_static("Basic YWRtaW46YWRtaW4="),
        );
        assert_api_error(&what, &send(&f, basic).await, 401, "unauthenticated");
    }
    assert!(f.recorder.kinds().is_empty());
}

#[tokio::test]
async fn an_approvers_credential_reaches_the_approvals_and_nothing_else() {
    let f = fixture().await;
    let body = json!({ "agent": "agent-1", "user": "alice", "name": "x", "role": "admin" });
    for (method, path) in PROTECTED {
        let got = send(
            &f,
            json_request(method, path, &f.approver, body.to_string()),
        )
        .await;
        if path.starts_with("/v1/approvals") {
            assert_ne!(got.0, StatusCode::FORBIDDEN, "{method} {path}: {}", got.1);
            assert_ne!(
                got.0,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {}",
                got.1
            );
        } else {
            assert_api_error(&format!("{method} {path}"), &got, 403, "admin_only");
        }
    }
    assert_eq!(f.state.sessions.list(t0()).len(), 1);
    assert_eq!(f.state.operators.count().await.unwrap(), 2);
}

#[tokio::test]
async fn malformed_bodies_answer_in_the_api_error_shape_and_change_nothing() {
    let f = fixture().await;
    let id = pending_request(&f, json!({ "text": "ask" }), "a rule asks").await;
    let json_routes = [
        (
            "/v1/sessions",
            json!({ "agent": "agent-1", "user": "alice", "ttl_days": 3 }),
        ),
        (
            "/v1/operator-tokens",
            json!({ "name": "x", "role": "admin", "admin": true }),
        ),
    ];
    for (path, unknown_field) in json_routes {
        let cases = [
            (
                "truncated JSON",
                Some("application/json"),
                "{\"na".to_owned(),
                400,
            ),
            (
                "not an object",
                Some("application/json"),
                "[1, 2]".to_owned(),
                422,
            ),
            (
                "an unknown field",
                Some("application/json"),
                unknown_field.to_string(),
                422,
            ),
            ("no content type", None, unknown_field.to_string(), 415),
            (
                "a form",
                Some("application/x-www-form-urlencoded"),
                "a=b".to_owned(),
                415,
            ),
        ];
        for (what, content_type, body, status) in cases {
            let mut req = request("POST", path, Some(&f.admin), Body::from(body));
            if let Some(ct) = content_type {
                req.headers_mut()
                    .insert(header::CONTENT_TYPE, ct.parse().unwrap());
            }
            let got = send(&f, req).await;
            assert_api_error(&format!("{path}: {what}"), &got, status, "invalid_request");
        }
    }
    for choice in ["approve", "deny"] {
        let path = format!("/v1/approvals/{id}/{choice}");
        for body in [
            "{\"reason\":",
            "\"ok\"",
            "{\"reason\": 7}",
            "{\"why\": \"x\"}",
        ] {
            let got = send(&f, json_request("POST", &path, &f.approver, body)).await;
            assert_api_error(&format!("{path}: `{body}`"), &got, 400, "invalid_request");
            let message = got.1["error"]["message"].as_str().unwrap();
            assert!(message.starts_with("the body must be"), "{message}");
        }
    }
    assert_eq!(f.state.sessions.list(t0()).len(), 1);
    assert_eq!(f.state.operators.count().await.unwrap(), 2);
    let req = f.state.approvals.store().get(&id).await.unwrap().unwrap();
    assert_eq!(req.status, warden_approval::Status::Pending);
    assert!(f.recorder.kinds().is_empty());
}

#[tokio::test]
async fn oversized_bodies_are_refused_in_the_api_error_shape_announced_or_not() {
    let f = fixture().await;
    let id = pending_request(&f, json!({ "text": "ask" }), "a rule asks").await;
    // Valid JSON, one byte over the limit.
    let padded = |limit: usize| {
        let pad = "x".repeat(limit + 1 - r#"{"reason":""}"#.len());
        format!(r#"{{"reason":"{pad}"}}"#)
    };
    let routes = [
        ("/v1/sessions".to_owned(), &f.admin),
        ("/v1/operator-tokens".to_owned(), &f.admin),
        (format!("/v1/approvals/{id}/approve"), &f.approver),
        (format!("/v1/approvals/{id}/deny"), &f.approver),
    ];
    for (path, token) in routes {
        let body = padded(LIMIT);
        assert_eq!(body.len(), LIMIT + 1);
        let mut announced = json_request("POST", &path, token, body.clone());
        announced
            .headers_mut()
            .insert(header::CONTENT_LENGTH, body.len().into());
        let got = send(&f, announced).await;
        assert_api_error(&format!("{path}: announced"), &got, 413, "invalid_request");
        let got = send(&f, json_request("POST", &path, token, body)).await;
        assert_api_error(
            &format!("{path}: unannounced"),
            &got,
            413,
            "invalid_request",
        );
    }
    // A signed link has its own, smaller limit, checked before the link is.
    let approve = link(&f, LinkAction::Approve, &id, "bob");
    let form = request(
        "POST",
        &approve,
        None,
        Body::from(padded(MAX_LINK_BODY_BYTES)),
    );
    let got = send(&f, form).await;
    assert_api_error("link", &got, 413, "invalid_request");
    // Nothing was opened, issued or decided.
    assert_eq!(f.state.sessions.list(t0()).len(), 1);
    assert_eq!(f.state.operators.count().await.unwrap(), 2);
    let req = f.state.approvals.store().get(&id).await.unwrap().unwrap();
    assert_eq!(req.status, warden_approval::Status::Pending);
    assert!(f.recorder.kinds().is_empty());
}

#[tokio::test]
async fn healthz_needs_no_token_and_unknown_endpoints_are_not_found() {
    let f = fixture().await;
    let (status, body) = send(&f, request("GET", "/healthz", None, Body::empty())).await;
    assert_eq!((status.as_u16(), body), (200, json!({ "status": "ok" })));
    for (method, path) in [
        ("GET", "/"),
        ("POST", "/v1/session"),
        ("GET", "/v1/approvals/a-1/link"),
    ] {
        let got = send(&f, request(method, path, Some(&f.admin), Body::empty())).await;
        assert_api_error(&format!("{method} {path}"), &got, 404, "not_found");
        assert_eq!(
            got.1["error"]["message"],
            "no such endpoint on the operator plane"
        );
    }
}

mod approvals_teach;
mod controls_api;
mod instructions;
mod issue10;
mod observer_role;
mod unrecordable;
