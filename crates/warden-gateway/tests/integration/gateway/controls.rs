//! Controls (issue 12): each scope changes exactly the decisions it should, on the next
//! decision; controls survive a restart and expire; the dead man's switch.

use super::*;

/// Opens a session for `user`; its id and token.
async fn session_for(h: &Harness, user: &str) -> (String, String) {
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            "/v1/sessions",
            &h.operator_token,
            Some(json!({ "agent": "agent-1", "user": user, "ttl": "1h" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

/// The verdict of `hello <n>` (autonomous by rule) for `token`, and the body.
async fn verdict(h: &Harness, token: &str, n: &str) -> (String, Value) {
    let (status, body) = h.decide(token, &format!("hello {n}"), None).await;
    assert!(matches!(status, 200 | 202 | 403), "{status} {body}");
    (body["verdict"].as_str().unwrap_or("none").to_owned(), body)
}

/// The `action_decided` record of action `id`.
async fn decided(h: &Harness, id: &Value) -> Value {
    h.records_of("action_decided")
        .await
        .into_iter()
        .find(|r| r["action"] == *id)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_at_each_scope_changes_exactly_its_decisions_on_the_next_one() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (a1, alice1) = session_for(&h, "alice").await;
    let (_, alice2) = session_for(&h, "alice").await;
    let (_, bob) = session_for(&h, "bob").await;
    for t in [&alice1, &alice2, &bob] {
        assert_eq!(verdict(&h, t, "before").await.0, "allow");
    }

    // Session scope: conservative for alice's first session only.
    let c = h
        .set_control(json!({
            "action": "conservative", "scope": "session", "target": a1,
            "reason": "reads outside its task", "evidence": [3, 4], "detector": "burst",
        }))
        .await;
    assert_eq!(c["set_by"]["role"], "admin", "{c}");
    assert_eq!(c["evidence"], json!([3, 4]));
    let (v, body) = verdict(&h, &alice1, "s1").await;
    assert_eq!(v, "ask", "{body}");
    let record = decided(&h, &body["action"]).await;
    assert_eq!(record["control"], c["id"], "{record}");
    assert_eq!(record["decision"]["reason"], "conservative_posture");
    // The approvers read the control's reason too.
    let requested = h.records_of("approval_requested").await;
    assert!(
        requested[0]["why"]
            .as_str()
            .unwrap()
            .contains("reads outside its task"),
        "{requested:?}"
    );
    assert_eq!(verdict(&h, &alice2, "s1").await.0, "allow");
    assert_eq!(verdict(&h, &bob, "s1").await.0, "allow");
    h.lift_control(c["id"].as_str().unwrap()).await;
    assert_eq!(verdict(&h, &alice1, "s1 lifted").await.0, "allow");

    // Principal scope: bob frozen; the refusal names the control's reason.
    let c = h
        .set_control(json!({ "action": "frozen", "scope": "principal", "target": "bob", "reason": "incident 7" }))
        .await;
    let (v, body) = verdict(&h, &bob, "p1").await;
    assert_eq!(v, "deny", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("incident 7"),
        "{body}"
    );
    assert_eq!(decided(&h, &body["action"]).await["control"], c["id"]);
    assert_eq!(verdict(&h, &alice1, "p1").await.0, "allow");
    h.lift_control(c["id"].as_str().unwrap()).await;

    // Agent scope: the tool frozen for every session of the agent.
    let c = h
        .set_control(json!({ "action": "freeze_tool", "scope": "agent", "target": "agent-1", "tool": "echo__echo", "reason": "exfiltration" }))
        .await;
    assert_eq!(c["tool"], "echo.echo", "the charter's name is kept");
    for t in [&alice1, &bob] {
        let (v, body) = verdict(&h, t, "a1").await;
        assert_eq!(v, "deny", "{body}");
        assert_eq!(body["decision"]["reason"], "tool_frozen");
    }
    h.lift_control(c["id"].as_str().unwrap()).await;

    // Gateway scope: every session refused while in force.
    let c = h
        .set_control(
            json!({ "action": "revoke_session", "scope": "gateway", "reason": "stop everything" }),
        )
        .await;
    for t in [&alice1, &alice2, &bob] {
        let (v, body) = verdict(&h, t, "g1").await;
        assert_eq!(v, "deny", "{body}");
        assert_eq!(body["decision"]["reason"], "session_revoked");
    }
    h.lift_control(c["id"].as_str().unwrap()).await;
    assert_eq!(verdict(&h, &bob, "g1 lifted").await.0, "allow");

    // A session-scoped revocation revokes the session itself: its token stops working.
    h.set_control(json!({ "action": "revoke_session", "scope": "session", "target": a1, "reason": "compromised" }))
        .await;
    let (status, _) = h.decide(&alice1, "hello r1", None).await;
    assert_eq!(status, 401);
    assert_eq!(verdict(&h, &alice2, "r1").await.0, "allow");

    assert_eq!(h.records_of("control_set").await.len(), 5);
    assert_eq!(h.records_of("control_lifted").await.len(), 4);
    let revoked = h.records_of("session_revoked").await;
    assert_eq!(revoked.last().unwrap()["session"], json!(a1));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_survives_a_restart_and_its_expiry_is_recorded() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let h = Harness::start(clock.clone()).await;
    let (_, token) = h.open_session("1h").await;
    let c = h
        .set_control(json!({ "action": "frozen", "scope": "gateway", "reason": "maintenance", "expires_in_secs": 60 }))
        .await;
    assert!(c["expires_at"].is_string(), "{c}");
    h.restart().await;
    assert_eq!(verdict(&h, &token, "after restart").await.0, "deny");
    let (_, list) = h
        .operator(
            reqwest::Method::GET,
            "/v1/controls",
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(list["controls"][0]["id"], c["id"], "{list}");

    clock.advance(time::Duration::seconds(61));
    // It no longer applies at once, and the sweeper records its expiry.
    assert_eq!(verdict(&h, &token, "expired").await.0, "allow");
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.records_of("control_expired").await.is_empty() {
        assert!(Instant::now() < deadline, "no control_expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.records_of("control_expired").await[0]["id"], c["id"]);
    let (_, list) = h
        .operator(
            reqwest::Method::GET,
            "/v1/controls",
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(list["controls"], json!([]), "{list}");
    let (_, all) = h
        .operator(
            reqwest::Method::GET,
            "/v1/controls?all=true",
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(all["controls"][0]["id"], c["id"], "{all}");
    h.restart().await;
    assert_eq!(verdict(&h, &token, "restarted again").await.0, "allow");
    assert_eq!(h.records_of("control_expired").await.len(), 1);
    h.stop().await;
}

async fn start_observed(required: bool) -> Harness {
    Harness::builder(move |echo_url| {
        format!(
            "{}observer:\n  required: {required}\n  heartbeat_deadline: 1s\n",
            charter(echo_url, "", "")
        )
    })
    .start()
    .await
}

/// Waits until `GET /v1/controls` shows `n` controls in force.
async fn controls_in_force(h: &Harness, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, list) = h
            .operator(
                reqwest::Method::GET,
                "/v1/controls",
                &h.operator_token,
                None,
            )
            .await;
        if list["controls"].as_array().unwrap().len() == n {
            return list["controls"].clone();
        }
        assert!(Instant::now() < deadline, "never {n} controls: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn heartbeat(h: &Harness, token: &str) {
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            "/v1/observer/heartbeat",
            token,
            Some(json!({ "head": 1 })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_mans_switch_goes_conservative_without_the_observer_and_back_with_it() {
    let h = start_observed(true).await;
    let (_, token) = h.open_session("1h").await;
    let (status, issued) = h
        .operator(
            reqwest::Method::POST,
            "/v1/operator-tokens",
            &h.operator_token,
            Some(json!({ "name": "observer", "role": "observer" })),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let observer = issued["token"].as_str().unwrap().to_owned();

    let switched = controls_in_force(&h, 1).await;
    assert_eq!(switched[0]["set_by"]["role"], "gateway", "{switched}");
    assert_eq!(switched[0]["action"], "conservative");
    assert_eq!(
        switched[0]["reason"],
        "the observer has not been heard from within 1s"
    );
    assert_eq!(h.records_of("observer_heartbeat_missed").await.len(), 1);
    let (v, body) = verdict(&h, &token, "unobserved").await;
    assert_eq!(v, "ask", "{body}");
    assert_eq!(
        decided(&h, &body["action"]).await["control"],
        switched[0]["id"]
    );

    // An admin's heartbeat does not count.
    heartbeat(&h, &h.operator_token).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    controls_in_force(&h, 1).await;

    heartbeat(&h, &observer).await;
    controls_in_force(&h, 0).await;
    assert_eq!(h.records_of("observer_heartbeat_restored").await.len(), 1);
    let lifted = h.records_of("control_lifted").await;
    assert_eq!(lifted[0]["by"]["role"], "gateway", "{lifted:?}");
    assert_eq!(verdict(&h, &token, "observed").await.0, "allow");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_mans_switch_never_lifts_an_operators_control_and_stays_off_unless_required() {
    let h = start_observed(false).await;
    let c = h
        .set_control(json!({ "action": "conservative", "scope": "gateway", "reason": "by hand" }))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let list = controls_in_force(&h, 1).await;
    assert_eq!(list[0]["id"], c["id"]);
    assert!(h.records_of("observer_heartbeat_missed").await.is_empty());
    h.stop().await;
}

/// The observer heard once, then silent: the switch engages and stays engaged. (It used to
/// take the last heartbeat, already accounted for, as the observer heard again at the next
/// tick: the switch lifted itself and engaged again every half second, two records each
/// time, while the observer was dead.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_the_dead_mans_switch_stays_engaged_while_the_observer_is_silent() {
    let h = start_observed(true).await;
    let (status, issued) = h
        .operator(
            reqwest::Method::POST,
            "/v1/operator-tokens",
            &h.operator_token,
            Some(json!({ "name": "observer", "role": "observer" })),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let observer = issued["token"].as_str().unwrap().to_owned();
    heartbeat(&h, &observer).await;
    // The observer falls silent: after the deadline (1s) the switch engages, once.
    let switched = controls_in_force(&h, 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let still = controls_in_force(&h, 1).await;
    assert_eq!(still[0]["id"], switched[0]["id"], "{still}");
    let missed = h.records_of("observer_heartbeat_missed").await.len();
    let restored = h.records_of("observer_heartbeat_restored").await.len();
    assert_eq!(
        (missed, restored),
        (missed, missed - 1),
        "the switch toggled"
    );
    assert!(missed <= 2, "{missed} switches");
    h.stop().await;
}
