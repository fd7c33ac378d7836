//! Issue 17, point 3: delegation that only narrows, in the in-process gateway with real
//! sessions, a real ledger and the echo MCP server. A set of four charters:
//! - `boss` delegates to `helper`, `other` and `loner`; it prohibits `hello forbidden`, holds
//!   back a `send` once the session carries `pii`, and asks (its approver: bob) for `askboss`;
//! - `helper` accepts from `boss`, delegates to `other` and `deep`; it allows all of those, and asks (its
//!   approver: carol) for `askhelper`;
//! - `other` accepts from `boss` and `helper` with `max_depth: 1`;
//! - `third` accepts from `boss` and `helper`, but neither names it in `to`;
//! - `loner` has no delegation section (accepts nobody);
//! - `deep` accepts from `helper` with `max_depth: 2` (a grandchild of a `boss` session).
//!
//! The adversarial cases live in `delegation_adversarial`.

use super::*;
use warden_gateway::config::CharterSource;

/// The authority section: `approver` (bob or carol) approves anything; the other one and
/// alice only direct.
fn authority(approver: &str) -> String {
    let other = if approver == "bob" { "carol" } else { "bob" };
    format!(
        r#"authority:
  separation_of_duties: true
  roles:
    - {{ id: approver, approve: ["*"] }}
    - {{ id: worker, direct: approval }}
  principals:
    - {{ id: alice, roles: [worker] }}
    - {{ id: {approver}, roles: [approver] }}
    - {{ id: {other}, roles: [worker] }}
  enrolment:
    - {{ by: admin, principals: ["*"] }}
"#
    )
}

const DATA: &str = r#"data:
  labels:
    - { id: pii, description: personal data }
  sources:
    - { label: pii, tool: echo.echo, pattern: "^PII:" }
"#;

fn charter_of(id: &str, echo_url: &str, delegation: &str, rules: &str) -> String {
    // The boss's approver is bob; every other charter's is carol. Only the helper
    // inventories the `side` server (the same echo server under another id).
    let authority = authority(if id == "boss" { "bob" } else { "carol" });
    let side = if id == "helper" {
        format!("    - {{ id: side, url: \"{echo_url}\", tools: [echo] }}\n")
    } else {
        String::new()
    };
    format!(
        r#"version: 1
identity: {{ id: {id}, name: {id}, purpose: tests, serves: the test suite }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
{side}{delegation}{DATA}actions:
  approval: {{ timeout: 60s }}
  rules:
{rules}{authority}"#
    )
}

fn boss(echo_url: &str) -> String {
    charter_of(
        "boss",
        echo_url,
        "delegation: { to: [helper, other, loner], max_depth: 2, max_children: 3 }\n",
        r#"    - { id: boss-forbids, tool: echo.echo, tier: prohibited, args: { text: { prefix: "hello forbidden" } } }
    - { id: boss-hello, tool: echo.echo, tier: autonomous, args: { text: { prefix: hello } } }
    - { id: boss-read-pii, tool: echo.echo, tier: autonomous, args: { text: { prefix: "PII:" } } }
    - { id: boss-holds-sends, tool: echo.echo, tier: prohibited, args: { text: { prefix: send } }, labels: { any: [pii] } }
    - { id: boss-send, tool: echo.echo, tier: autonomous, args: { text: { prefix: send } } }
    - { id: boss-asks, tool: echo.echo, tier: approval, args: { text: { prefix: askboss } } }
    - { id: boss-lets-helper-ask, tool: echo.echo, tier: autonomous, args: { text: { prefix: askhelper } } }
    - { id: boss-counted, tool: echo.echo, tier: preapproved, args: { text: { prefix: counted } }, scope: { per_session: 2 } }
"#,
    )
}

fn others(dir: &std::path::Path, echo_url: &str) -> Vec<std::path::PathBuf> {
    let helper_rules = r#"    - { id: helper-hello, tool: echo.echo, tier: autonomous, args: { text: { prefix: hello } } }
    - { id: helper-read-pii, tool: echo.echo, tier: autonomous, args: { text: { prefix: "PII:" } } }
    - { id: helper-send, tool: echo.echo, tier: autonomous, args: { text: { prefix: send } } }
    - { id: helper-lets-boss-ask, tool: echo.echo, tier: autonomous, args: { text: { prefix: askboss } } }
    - { id: helper-asks, tool: echo.echo, tier: approval, args: { text: { prefix: askhelper } } }
    - { id: helper-counted, tool: echo.echo, tier: autonomous, args: { text: { prefix: counted } } }
    - { id: helper-side, tool: side.echo, tier: autonomous }
"#;
    let plain = r#"    - { id: hello, tool: echo.echo, tier: autonomous, args: { text: { prefix: hello } } }
"#;
    let charters = [
        (
            "helper",
            charter_of(
                "helper",
                echo_url,
                "delegation: { from: [boss], to: [other, deep], max_depth: 2 }\n",
                helper_rules,
            ),
        ),
        (
            "other",
            charter_of(
                "other",
                echo_url,
                "delegation: { from: [boss, helper], max_depth: 1 }\n",
                plain,
            ),
        ),
        (
            "third",
            charter_of(
                "third",
                echo_url,
                "delegation: { from: [boss, helper] }\n",
                plain,
            ),
        ),
        ("loner", charter_of("loner", echo_url, "", plain)),
        (
            "deep",
            charter_of(
                "deep",
                echo_url,
                "delegation: { from: [helper], max_depth: 2 }\n",
                plain,
            ),
        ),
    ];
    charters
        .into_iter()
        .map(|(id, text)| {
            let path = dir.join(format!("{id}.yaml"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// The gateway on the set, sessions opened for `boss` acting for alice.
pub(crate) async fn start_set() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    // The other charters are read at start-up; the directory may go.
    start_set_in(dir.path()).await
}

/// [`start_set`], the charters other than the boss's written in `dir` (kept by the caller
/// when the gateway restarts).
pub(crate) async fn start_set_in(dir: &std::path::Path) -> Harness {
    start_set_configured(dir, |_| {}).await
}

/// [`start_set_in`], the configuration changed by `adjust`.
pub(crate) async fn start_set_configured(
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut Config) + Send + 'static,
) -> Harness {
    let extra = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (extra_w, dir_path) = (extra.clone(), dir.to_path_buf());
    Harness::builder(move |echo_url| {
        *extra_w.lock().unwrap() = others(&dir_path, echo_url);
        boss(echo_url)
    })
    .sessions_for("boss", "alice")
    .configure(move |c| {
        if let CharterSource::Paths(p) = &mut c.charters {
            p.extend(extra.lock().unwrap().iter().cloned());
        }
        adjust(c);
    })
    .start()
    .await
}

/// `POST /v1/sessions/delegate` with `token` and `body`; the status and the answer.
pub(crate) async fn delegate(h: &Harness, token: &str, body: Value) -> (u16, Value) {
    let resp = h
        .http
        .post(format!("http://{}/v1/sessions/delegate", h.agent_addr))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// Opens a child for `agent` from the session of `token`; its id and token.
pub(crate) async fn child(h: &Harness, token: &str, agent: &str) -> (String, String) {
    let (status, body) = delegate(h, token, json!({ "agent": agent, "task": "help" })).await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

/// The refusal codes of the `delegation_refused` records, in order.
pub(crate) async fn refusals(h: &Harness) -> Vec<String> {
    h.records_of("delegation_refused")
        .await
        .iter()
        .map(|p| p["refusal"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_is_governed_by_the_intersection_and_the_chain_is_recorded() {
    let h = start_set().await;
    let (parent, token) = h.open_session("1h").await;
    let (status, body) = delegate(
        &h,
        &token,
        json!({ "agent": "helper", "task": "say hello", "ttl": "30d" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["agent"], "helper");
    assert_eq!(
        body["chain"],
        json!([{ "session": parent, "agent": "boss" }])
    );
    let child_token = body["token"].as_str().unwrap().to_owned();
    let child_id = body["id"].as_str().unwrap().to_owned();
    // The child cannot outlive its parent.
    let parent_info = h.app_state().sessions.get(&parent).unwrap();
    let child_info = h.app_state().sessions.get(&child_id).unwrap();
    assert_eq!(child_info.expires_at, parent_info.expires_at);
    assert_eq!(child_info.principal, "alice");

    let delegated = h.records_of("session_delegated").await;
    assert_eq!(delegated.len(), 1);
    let d = &delegated[0];
    assert_eq!(d["parent"], parent.as_str());
    assert_eq!(d["agent"], "helper");
    assert_eq!(d["by"], "boss");
    assert_eq!(d["principal"], "alice");
    assert_eq!(d["depth"], 1);
    assert_eq!(d["via"], "api");
    assert_eq!(d["chain"], json!([{ "session": parent, "agent": "boss" }]));
    assert!(
        !d.to_string().contains(&child_token),
        "the token is never recorded"
    );

    // Both charters allow it: it runs.
    let ok = h.call(&child_token, "hello there").await;
    assert!(!is_error(&ok), "{ok}");
    let decided = h.records_of("action_decided").await.pop().unwrap();
    assert_eq!(
        decided["chain"],
        json!([{ "session": parent, "agent": "boss" }])
    );
    let under = decided["under"].as_array().unwrap();
    assert_eq!(under.len(), 2);
    assert_eq!(under[0]["agent"], "helper", "the child's own first");
    assert_eq!(under[0]["verdict"], "allow");
    assert_eq!(under[1]["agent"], "boss");
    assert_eq!(under[1]["rules"], json!(["boss-hello"]));

    // Its own charter allows it, the parent's prohibits it: refused, never forwarded.
    let before = warden_testkit::echo::count(&h.calls);
    let refused = h.call(&child_token, "hello forbidden thing").await;
    assert!(is_error(&refused), "{refused}");
    assert_eq!(warden_testkit::echo::count(&h.calls), before);
    let decided = h.records_of("action_decided").await.pop().unwrap();
    assert_eq!(decided["decision"]["verdict"], "deny");
    assert_eq!(decided["decision"]["rules"][0]["id"], "boss-forbids");
    assert_eq!(decided["under"][0]["verdict"], "allow");
    assert_eq!(decided["under"][1]["verdict"], "deny");
    // The parent's own session is decided as before (no chain, no `under`).
    let ok = h.call(&token, "hello from the boss").await;
    assert!(!is_error(&ok), "{ok}");
    let decided = h.records_of("action_decided").await.pop().unwrap();
    assert!(decided.get("chain").is_none() && decided.get("under").is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parents_labels_hold_back_the_childs_send_even_when_gained_later() {
    let h = start_set().await;
    let (_, token) = h.open_session("1h").await;
    let (_, early) = child(&h, &token, "helper").await;
    let ok = h.call(&early, "send the report").await;
    assert!(!is_error(&ok), "nothing sensitive read yet: {ok}");
    // The parent reads personal data after the child opened: the label flows on.
    let read = h.call(&token, "PII: jane doe").await;
    assert!(!is_error(&read), "{read}");
    let held = h.call(&early, "send the report").await;
    assert!(is_error(&held), "{held}");
    let decided = h.records_of("action_decided").await.pop().unwrap();
    assert_eq!(decided["decision"]["rules"][0]["id"], "boss-holds-sends");
    // A child opened after the read starts with the label.
    let (late_id, late) = child(&h, &token, "helper").await;
    assert_eq!(
        h.app_state().sessions.get(&late_id).unwrap().labels(),
        [Arc::from("pii")]
    );
    let held = h.call(&late, "send the report").await;
    assert!(is_error(&held), "{held}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegations_the_charters_do_not_permit_are_refused_and_recorded() {
    let h = start_set().await;
    let (parent, token) = h.open_session("1h").await;
    let cases = [
        ("third", "not_permitted"),
        ("loner", "not_accepted"),
        ("nobody", "unknown_agent"),
        ("boss", "cycle"),
    ];
    for (agent, code) in cases {
        let (status, body) = delegate(&h, &token, json!({ "agent": agent })).await;
        assert_eq!(status, 403, "{agent}: {body}");
        assert_eq!(body["error"]["code"], code, "{agent}: {body}");
        assert!(body["error"]["message"].is_string());
    }
    let (child_id, child_token) = child(&h, &token, "helper").await;
    // A → B → A.
    let (status, body) = delegate(&h, &child_token, json!({ "agent": "boss" })).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("cycle"))
    );
    // A sibling the child's charter does not permit (its `to` lacks `third`).
    let (status, body) = delegate(&h, &child_token, json!({ "agent": "third" })).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("not_permitted")),
        "{body}"
    );
    // Depth: boss → helper → other is 2 long, `other` allows 1.
    let (status, body) = delegate(&h, &child_token, json!({ "agent": "other" })).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("depth")),
        "{body}"
    );
    // Directly from the root, `other` is 1 deep: allowed.
    child(&h, &token, "other").await;
    assert_eq!(
        refusals(&h).await,
        [
            "not_permitted",
            "not_accepted",
            "unknown_agent",
            "cycle",
            "cycle",
            "not_permitted",
            "depth"
        ]
    );
    let refused = h.records_of("delegation_refused").await;
    assert_eq!(refused[0]["agent"], "third");
    assert_eq!(refused[0]["by"], "boss");
    assert_eq!(refused[0]["via"], "api");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("delegation.to")
    );
    assert_eq!(refused[6]["by"], "helper");
    assert_eq!(
        refused[6]["chain"],
        json!([{ "session": parent, "agent": "boss" }, { "session": child_id, "agent": "helper" }])
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_parent_stops_the_child_and_is_recorded_for_each() {
    let h = start_set().await;
    let (parent, token) = h.open_session("1h").await;
    let (child_id, child_token) = child(&h, &token, "helper").await;
    let (grandchild_id, grandchild_token) = child(&h, &child_token, "deep").await;
    assert!(!is_error(&h.call(&grandchild_token, "hello").await));
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/sessions/{parent}/revoke"),
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut cascaded: Vec<String> = body["descendants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    cascaded.sort();
    let mut want = vec![child_id.clone(), grandchild_id.clone()];
    want.sort();
    assert_eq!(cascaded, want);
    let before = warden_testkit::echo::count(&h.calls);
    let (status, _) = h
        .mcp(
            &child_token,
            "tools/call",
            json!({ "name": "echo.echo", "arguments": { "text": "hello" } }),
        )
        .await;
    assert_eq!(status, 401, "the child's token stops working");
    assert_eq!(warden_testkit::echo::count(&h.calls), before);
    let revoked = h.records_of("session_revoked").await;
    let by_parent: Vec<&Value> = revoked
        .iter()
        .filter(|r| r["reason"] == "parent_revoked")
        .collect();
    assert_eq!(by_parent.len(), 2);
    let of_grandchild = by_parent
        .iter()
        .find(|r| r["session"] == grandchild_id.as_str())
        .unwrap();
    assert_eq!(of_grandchild["parent"], child_id.as_str());
    h.stop().await;
}

/// A revoked ancestor refuses the decision even before the cascade reaches the child (here
/// the parent is revoked in the store only, as if the cascade had not run yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_ancestor_refuses_before_the_cascade_lands() {
    let h = start_set().await;
    let (parent, token) = h.open_session("1h").await;
    let (_, child_token) = child(&h, &token, "helper").await;
    let state = h.app_state();
    state
        .sessions
        .revoke(&parent, state.governor.now())
        .await
        .unwrap();
    let refused = h.call(&child_token, "hello").await;
    assert!(is_error(&refused), "{refused}");
    let decided = h.records_of("action_decided").await.pop().unwrap();
    assert_eq!(decided["decision"]["reason"], "session_revoked");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    // And a revoked ancestor opens no child either.
    let (status, body) = delegate(&h, &child_token, json!({ "agent": "other" })).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("parent_inactive"))
    );
    h.stop().await;
}

/// A child's action the parent's charter asks for is raised under the parent's charter: its
/// approvers (bob) decide, the child's (carol) cannot; the request names the chain and the
/// deciding agent; the request's agent stays the child's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_approval_is_decided_by_the_approvers_of_the_charter_that_asked() {
    let h = Arc::new(start_set().await);
    let (parent, token) = h.open_session("1h").await;
    let (child_id, child_token) = child(&h, &token, "helper").await;
    let bob = h.approver_token("bob").await;
    let carol = h.approver_token("carol").await;
    let (h2, t2) = (h.clone(), child_token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "askboss please").await });
    let list = h.wait_for_approval(&bob, 1).await;
    let req = &list[0];
    assert_eq!(req["agent"], "helper");
    assert_eq!(req["under"], "boss");
    assert_eq!(req["session"], child_id.as_str());
    assert_eq!(req["approvers"], json!(["bob"]), "the boss's approvers");
    assert_eq!(
        req["chain"],
        json!([{ "session": parent, "agent": "boss" }])
    );
    let requested = h.records_of("approval_requested").await.pop().unwrap();
    assert_eq!(
        requested["chain"],
        json!([{ "session": parent, "agent": "boss" }])
    );
    assert_eq!(requested["under"], "boss");
    let id = req["id"].as_str().unwrap().to_owned();
    // The child's charter's approver has no say here.
    let (status, body) = h.decide_approval(&carol, &id, "approve", None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    let answer = call.await.unwrap();
    assert!(!is_error(&answer), "{answer}");
    h.stop().await;
}

/// The other way round: the child's own charter asks (`askhelper`), the parent's allows; the
/// request is raised under the child's charter (no `under`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_action_its_own_charter_asks_for_is_raised_under_its_own_charter() {
    let h = Arc::new(start_set().await);
    let (parent, token) = h.open_session("1h").await;
    let (_, child_token) = child(&h, &token, "helper").await;
    let carol = h.approver_token("carol").await;
    let (h2, t2) = (h.clone(), child_token.clone());
    let call = tokio::spawn(async move { h2.call(&t2, "askhelper please").await });
    let list = h.wait_for_approval(&carol, 1).await;
    let req = &list[0];
    assert!(req.get("under").is_none(), "{req}");
    assert_eq!(req["approvers"], json!(["carol"]), "the helper's approvers");
    assert_eq!(
        req["chain"],
        json!([{ "session": parent, "agent": "boss" }])
    );
    let decided = h.records_of("action_decided").await.pop().unwrap();
    assert_eq!(decided["decision"]["verdict"], "ask");
    assert_eq!(decided["under"][0]["verdict"], "ask");
    assert_eq!(decided["under"][1]["verdict"], "allow");
    let id = req["id"].as_str().unwrap().to_owned();
    let (status, body) = h.decide_approval(&carol, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(!is_error(&call.await.unwrap()));
    h.stop().await;
}

/// A tool the child's charter inventories and the parent's does not is refused for the child
/// (not inventoried there = not allowed there), before any rule; the child's own call of it
/// never reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_an_ancestors_inventory_does_not_name_is_refused_for_the_child() {
    let h = start_set().await;
    let (_, token) = h.open_session("1h").await;
    let (_, child_token) = child(&h, &token, "helper").await;
    let (status, body) = h
        .mcp(
            &child_token,
            "tools/call",
            json!({ "name": "side.echo", "arguments": { "text": "hello" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(is_error(&body), "{body}");
    assert!(text_of(&body).contains("`boss`"), "{body}");
    assert_eq!(warden_testkit::echo::count(&h.calls), 0);
    let attempted = h.records_of("action_attempted").await.pop().unwrap();
    assert_eq!(attempted["refusal"], "not_inventoried", "{attempted}");
    assert_eq!(attempted["tool"], "side.echo");
    h.stop().await;
}

/// The parent's preapproved scope is the parent session's: what the child spends under the
/// parent's rule is read and spent there, so parent and children together stay within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ancestors_preapproved_scope_is_spent_in_the_ancestors_session() {
    let h = start_set().await;
    let (_, token) = h.open_session("1h").await;
    let (_, first) = child(&h, &token, "helper").await;
    let (_, second) = child(&h, &token, "helper").await;
    assert!(!is_error(&h.call(&first, "counted one").await));
    assert!(!is_error(&h.call(&second, "counted two").await));
    // The boss's scope (2 per session) is spent: the third use escalates to approval under
    // the boss's charter, for the parent itself as for a child.
    h.decide(&token, "counted three", Some("0s")).await;
    let decided = h.records_of("action_decided").await.pop().unwrap();
    assert_eq!(decided["decision"]["reason"], "scope_exceeded", "{decided}");
    let (_, body) = h.decide(&first, "counted four", Some("0s")).await;
    let decided = h.records_of("action_decided").await.pop().unwrap();
    assert_eq!(
        decided["decision"]["reason"], "scope_exceeded",
        "{body} {decided}"
    );
    assert_eq!(decided["under"][1]["reason"], "scope_exceeded");
    h.stop().await;
}

/// A control on the parent's session (here: frozen) applies to its descendants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_on_the_parents_session_applies_to_its_children() {
    let h = start_set().await;
    let (parent, token) = h.open_session("1h").await;
    let (_, child_token) = child(&h, &token, "helper").await;
    let (_, unrelated) = h.open_session("1h").await;
    h.set_control(json!({ "action": "frozen", "scope": "session", "target": parent, "reason": "looking into it" }))
        .await;
    let refused = h.call(&child_token, "hello").await;
    assert!(is_error(&refused), "{refused}");
    let decided = h.records_of("action_decided").await.pop().unwrap();
    assert_eq!(decided["decision"]["reason"], "posture_frozen", "{decided}");
    assert!(!is_error(&h.call(&unrelated, "hello").await));
    // A session-scoped `revoke_session` control revokes the session and its descendants.
    let (other_parent, other_token) = h.open_session("1h").await;
    let (other_child, _) = child(&h, &other_token, "helper").await;
    h.set_control(json!({ "action": "revoke_session", "scope": "session", "target": other_parent, "reason": "compromised" }))
        .await;
    let state = h.app_state();
    assert!(state.sessions.get(&other_child).unwrap().is_revoked());
    let cascaded = h.records_of("session_revoked").await;
    assert!(
        cascaded
            .iter()
            .any(|r| r["session"] == other_child.as_str() && r["reason"] == "parent_revoked"),
        "{cascaded:?}"
    );
    h.stop().await;
}

/// A child and its chain are back after a restart: still governed by the intersection, still
/// stopped by its parent's revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_and_its_chain_are_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_set_in(dir.path()).await;
    let (parent, token) = h.open_session("1h").await;
    let (child_id, child_token) = child(&h, &token, "helper").await;
    h.restart().await;
    let back = h.app_state().sessions.get(&child_id).unwrap();
    assert_eq!(back.chain[0].session, parent);
    assert!(is_error(
        &h.call(&child_token, "hello forbidden again").await
    ));
    assert!(!is_error(&h.call(&child_token, "hello again").await));
    let (status, _) = h
        .operator(
            reqwest::Method::POST,
            &format!("/v1/sessions/{parent}/revoke"),
            &h.operator_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(h.app_state().sessions.get(&child_id).unwrap().is_revoked());
    h.stop().await;
}
