//! The control API adversarially: who may set and lift, malformed and oversized bodies,
//! targets the gateway does not know, a flood of controls, and concurrent lifts.

use warden_session::Controls;

use super::*;

async fn observer(f: &Fixture) -> String {
    f.state
        .operators
        .create("observer", OperatorRole::Observer, t0(), true)
        .await
        .unwrap()
        .token
}

async fn set(f: &Fixture, token: &str, body: Value) -> (StatusCode, Value) {
    send(
        f,
        json_request("POST", "/v1/controls", token, body.to_string()),
    )
    .await
}

async fn lift(f: &Fixture, token: &str, id: &str) -> (StatusCode, Value) {
    send(
        f,
        json_request(
            "POST",
            &format!("/v1/controls/{id}/lift"),
            token,
            json!({ "reason": "resolved" }).to_string(),
        ),
    )
    .await
}

/// `f` with its state rebuilt around `desk` (or its own) and a body limit of `limit`.
fn restate(f: &mut Fixture, desk: Option<Arc<controls::ControlDesk>>, limit: usize) {
    f.state = Arc::new(OperatorState {
        sessions: f.state.sessions.clone(),
        operators: f.state.operators.clone(),
        approvals: f.state.approvals.clone(),
        charter: f.state.charter.clone(),
        recorder: f.recorder.clone(),
        controls: desk.unwrap_or_else(|| f.state.controls.clone()),
        observability: f.state.observability.clone(),
        loaded_at: Default::default(),
        clock: f.state.clock.clone(),
        max_body_bytes: limit,
    });
}

fn gateway_conservative() -> Value {
    json!({ "action": "conservative", "scope": "gateway", "reason": "testing" })
}

#[tokio::test]
async fn an_observer_sets_and_lists_but_only_an_admin_lifts() {
    let f = fixture().await;
    let obs = observer(&f).await;
    let got = set(&f, &obs, gateway_conservative()).await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    let c = &got.1["control"];
    assert_eq!(c["set_by"]["role"], "observer", "{c}");
    assert_eq!(c["set_by"]["name"], "observer", "{c}");
    assert!(c["lifted_at"].is_null() && c["target"].is_null(), "{c}");
    let id = c["id"].as_str().unwrap();

    let listed = send(
        &f,
        request("GET", "/v1/controls", Some(&obs), Body::empty()),
    )
    .await;
    assert_eq!(listed.1["controls"][0]["id"], id, "{}", listed.1);

    assert_api_error(
        "observer lift",
        &lift(&f, &obs, id).await,
        403,
        "observer_only",
    );
    assert_api_error(
        "approver lift",
        &lift(&f, &f.approver, id).await,
        403,
        "admin_only",
    );
    assert_api_error(
        "agent lift",
        &lift(&f, &f.agent, id).await,
        403,
        "wrong_plane",
    );
    assert_api_error(
        "agent set",
        &set(&f, &f.agent, gateway_conservative()).await,
        403,
        "wrong_plane",
    );
    assert_api_error(
        "approver set",
        &set(&f, &f.approver, gateway_conservative()).await,
        403,
        "admin_only",
    );
    assert_eq!(f.state.controls.controls.in_force(t0()).len(), 1);

    let got = lift(&f, &f.admin, id).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["control"]["lifted_by"]["role"], "admin");
    assert_eq!(got.1["control"]["lift_reason"], "resolved");
    assert_api_error(
        "lift again",
        &lift(&f, &f.admin, id).await,
        409,
        "not_in_force",
    );
    assert_api_error(
        "unknown",
        &lift(&f, &f.admin, "nope").await,
        404,
        "unknown_control",
    );
    assert!(f.state.controls.controls.in_force(t0()).is_empty());
    let kinds = f.recorder.kinds();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RecordKind::ControlSet)
            .count(),
        1
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RecordKind::ControlLifted)
            .count(),
        1
    );
}

#[tokio::test]
async fn bad_bodies_and_unknown_targets_are_refused_and_change_nothing() {
    let mut f = fixture().await;
    // Room for a reason and an evidence list just over their bounds.
    restate(&mut f, None, 64 * 1024);
    let session = f.state.sessions.authenticate(&f.agent).unwrap().id.clone();
    let long = "x".repeat(1025);
    let evidence: Vec<u64> = (0..1001).collect();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({ "action": "frozen", "scope": "gateway", "reason": "r", "extra": 1 }),
            422,
            "invalid_request",
        ),
        (
            json!({ "action": "melt", "scope": "gateway", "reason": "r" }),
            422,
            "invalid_request",
        ),
        (
            json!({ "action": "frozen", "scope": "gateway" }),
            422,
            "invalid_request",
        ),
        (
            json!({ "action": "frozen", "scope": "gateway", "reason": "" }),
            400,
            "invalid_reason",
        ),
        (
            json!({ "action": "frozen", "scope": "gateway", "reason": long }),
            400,
            "invalid_reason",
        ),
        (
            json!({ "action": "frozen", "scope": "gateway", "target": "agent-1", "reason": "r" }),
            400,
            "invalid_target",
        ),
        (
            json!({ "action": "frozen", "scope": "session", "reason": "r" }),
            400,
            "invalid_target",
        ),
        (
            json!({ "action": "frozen", "scope": "agent", "target": "agent-2", "reason": "r" }),
            400,
            "unknown_agent",
        ),
        (
            json!({ "action": "frozen", "scope": "principal", "target": "mallory", "reason": "r" }),
            400,
            "unknown_principal",
        ),
        (
            json!({ "action": "frozen", "scope": "session", "target": "s-forged", "reason": "r" }),
            400,
            "unknown_session",
        ),
        (
            json!({ "action": "freeze_tool", "scope": "gateway", "reason": "r" }),
            400,
            "invalid_tool",
        ),
        (
            json!({ "action": "freeze_tool", "scope": "gateway", "tool": "shell.exec", "reason": "r" }),
            400,
            "unknown_tool",
        ),
        (
            json!({ "action": "frozen", "scope": "gateway", "tool": "echo.echo", "reason": "r" }),
            400,
            "invalid_tool",
        ),
        (
            json!({ "action": "frozen", "scope": "gateway", "reason": "r", "expires_in_secs": 0 }),
            400,
            "invalid_expiry",
        ),
        (
            json!({ "action": "frozen", "scope": "gateway", "reason": "r", "expires_in_secs": 31_536_001u64 }),
            400,
            "invalid_expiry",
        ),
        (
            json!({ "action": "frozen", "scope": "gateway", "reason": "r", "evidence": evidence }),
            400,
            "invalid_evidence",
        ),
        (
            json!({ "action": "frozen", "scope": "gateway", "reason": "r", "detector": "d".repeat(129) }),
            400,
            "invalid_detector",
        ),
        (
            json!({ "action": "frozen", "scope": "gateway", "reason": "r", "evidence": [-1] }),
            422,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let got = send(
            &f,
            json_request("POST", "/v1/controls", &f.admin, body.to_string()),
        )
        .await;
        let what = body.to_string();
        assert_api_error(&what[..what.len().min(120)], &got, status, code);
    }
    let got = send(
        &f,
        json_request("POST", "/v1/controls", &f.admin, "{not json"),
    )
    .await;
    assert_api_error("not json", &got, 400, "invalid_request");
    let got = send(
        &f,
        json_request("POST", "/v1/controls", &f.admin, "x".repeat(64 * 1024 + 1)),
    )
    .await;
    assert_api_error("oversized", &got, 413, "invalid_request");
    let got = send(
        &f,
        request(
            "GET",
            "/v1/controls?all=maybe",
            Some(&f.admin),
            Body::empty(),
        ),
    )
    .await;
    assert_api_error("bad query", &got, 400, "invalid_request");
    let got = send(
        &f,
        json_request(
            "POST",
            "/v1/controls/x/lift",
            &f.admin,
            json!({ "reason": "" }).to_string(),
        ),
    )
    .await;
    assert_api_error("empty lift reason", &got, 400, "invalid_reason");
    let got = send(
        &f,
        json_request(
            "POST",
            "/v1/observer/heartbeat",
            &f.admin,
            json!({ "head": 1, "x": 2 }).to_string(),
        ),
    )
    .await;
    assert_api_error("heartbeat unknown field", &got, 422, "invalid_request");
    assert!(f.recorder.kinds().is_empty());
    assert!(f.state.controls.controls.in_force(t0()).is_empty());

    // The known targets are accepted.
    for body in [
        json!({ "action": "frozen", "scope": "session", "target": session, "reason": "r" }),
        json!({ "action": "conservative", "scope": "principal", "target": "alice", "reason": "r" }),
        json!({ "action": "freeze_tool", "scope": "agent", "target": "agent-1", "tool": "echo__echo", "reason": "r" }),
    ] {
        let got = set(&f, &f.admin, body).await;
        assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    }
}

#[tokio::test]
async fn an_alert_is_recorded_and_puts_nothing_in_force() {
    let f = fixture().await;
    let obs = observer(&f).await;
    let got = set(
        &f,
        &obs,
        json!({ "action": "alert", "scope": "principal", "target": "alice", "reason": "odd hours", "evidence": [9], "detector": "hours" }),
    )
    .await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    let c = &got.1["control"];
    assert_eq!(c["lifted_at"], c["set_at"], "{c}");
    assert_eq!(f.recorder.kinds(), vec![RecordKind::ObserverAlert]);
    assert!(f.state.controls.controls.in_force(t0()).is_empty());
    let all = send(
        &f,
        request("GET", "/v1/controls?all=true", Some(&obs), Body::empty()),
    )
    .await;
    assert_eq!(all.1["controls"][0]["action"], "alert", "{}", all.1);
}

#[tokio::test]
async fn a_control_the_ledger_cannot_record_is_not_set() {
    let f = fixture().await;
    f.recorder.failing.store(true, Ordering::SeqCst);
    let got = set(&f, &f.admin, gateway_conservative()).await;
    assert_api_error("ledger down", &got, 503, "ledger_unavailable");
    assert!(f.state.controls.controls.in_force(t0()).is_empty());
    assert!(
        f.state
            .controls
            .controls
            .list_all()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_flood_of_controls_is_bounded() {
    let mut f = fixture().await;
    // The bound, on a store without a database (ten thousand writes would only be slow).
    let desk = Arc::new(controls::ControlDesk::new(
        Arc::new(Controls::in_memory()),
        f.recorder.clone(),
        f.state.clock.clone(),
    ));
    restate(&mut f, Some(desk.clone()), LIMIT);
    let template: warden_session::Control = serde_json::from_value(json!({
        "id": "", "action": "conservative", "scope": "gateway", "target": null, "tool": null,
        "reason": "flood", "evidence": [], "detector": null,
        "set_by": { "id": "o", "name": "o", "role": "observer" },
        "set_at": "2027-01-15T08:00:00Z", "expires_at": null, "lifted_at": null,
        "lifted_by": null, "lift_reason": null,
    }))
    .unwrap();
    for i in 0..warden_session::controls::MAX_CONTROLS_IN_FORCE {
        let mut c = template.clone();
        c.id = format!("c-{i}");
        desk.set(c, Vec::new()).await.unwrap();
    }
    let got = set(&f, &f.admin, gateway_conservative()).await;
    assert_api_error("one too many", &got, 409, "too_many_controls");
    // An alert still goes through: it puts nothing in force.
    let got = set(
        &f,
        &f.admin,
        json!({ "action": "alert", "scope": "gateway", "reason": "still heard" }),
    )
    .await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    let got = lift(&f, &f.admin, "c-1").await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    let got = set(&f, &f.admin, gateway_conservative()).await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::disallowed_methods,
    reason = "the racing requests end with the test's runtime"
)]
async fn concurrent_lifts_and_sets_never_interleave() {
    let f = Arc::new(fixture().await);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let got = set(&f, &f.admin, gateway_conservative()).await;
        ids.push(got.1["control"]["id"].as_str().unwrap().to_owned());
    }
    let mut tasks = Vec::new();
    for id in &ids {
        for _ in 0..4 {
            let (f, id) = (f.clone(), id.clone());
            tasks.push(tokio::spawn(async move { lift(&f, &f.admin, &id).await.0 }));
        }
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            set(&f, &f.admin, gateway_conservative()).await.0
        }));
    }
    let mut ok = 0;
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 5, "each control lifted exactly once");
    assert_eq!(created, 5);
    let kinds = f.recorder.kinds();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RecordKind::ControlLifted)
            .count(),
        5
    );
    assert_eq!(f.state.controls.controls.in_force(t0()).len(), 5);
}
