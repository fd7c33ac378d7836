//! Shadow mode (issue 16, point 3): a shadow charter decides every action the live charter
//! decides; its decisions are recorded (`shadow_decided`, in the same commit as the live
//! decision) and counted, and nothing it decides is enforced.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;
use warden_gateway::governor::shadow::ShadowError;
use warden_gateway::{Config, Gateway, StartError};

use super::{Harness, Start as _, is_error, text_of};

/// The suite's charter as the shadow sees it: what the live charter allows with `hello deny`
/// it prohibits, what it allows with `hello ask` it asks for, and it no longer prohibits
/// secrets (so it allows what the live charter denies).
fn shadow_of(live: &str) -> String {
    let secret = r#"tier: prohibited, args: { text: { regex: ".*secret.*" } }"#;
    assert!(live.contains(secret));
    live.replace(
        secret,
        r#"tier: prohibited, args: { text: { regex: ".*classified.*" } }"#,
    )
    .replacen(
        "authority:",
        "    - { id: shadow-deny, tool: echo.echo, tier: prohibited, args: { text: { prefix: \"hello deny\" } } }\n    - { id: shadow-ask, tool: echo.echo, tier: approval, args: { text: { prefix: \"hello ask\" } } }\nauthority:",
        1,
    )
}

/// Writes `edit(live charter)` beside the live charter and names it the shadow charter.
fn with_shadow(edit: fn(&str) -> String) -> impl FnOnce(&mut Config) + Send + 'static {
    move |c: &mut Config| {
        let live = std::fs::read_to_string(c.charters.first()).unwrap();
        let path = c.charters.first().with_file_name("shadow.yaml");
        std::fs::write(&path, edit(&live)).unwrap();
        c.shadow_charter = Some(path);
    }
}

async fn start_shadowed() -> Harness {
    Harness::start_configured(Arc::new(SystemClock), "", with_shadow(shadow_of)).await
}

/// The shadow's hash, as the start-up `charter_loaded` records it.
async fn shadow_hash(h: &Harness) -> Value {
    h.records_of("charter_loaded").await[0]["shadow"].clone()
}

/// The shadow decisions, by the text of the call they decided.
async fn shadowed_by_text(h: &Harness) -> BTreeMap<String, Value> {
    let records = h.records().await;
    let mut out = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if r.kind.to_string() != "shadow_decided" {
            continue;
        }
        // Same commit, adjacent: attempt, live decision, shadow decision.
        let decided = &records[i - 1];
        let attempted = &records[i - 2];
        assert_eq!(decided.kind.to_string(), "action_decided");
        assert_eq!(attempted.kind.to_string(), "action_attempted");
        assert_eq!(decided.seq + 1, r.seq);
        assert_eq!(decided.payload["action"], r.payload["action"]);
        assert_eq!(attempted.payload["action"], r.payload["action"]);
        assert_eq!(r.session, decided.session);
        let text = attempted.payload["arguments"]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut p = r.payload.clone();
        p["live_recorded"] = decided.payload["decision"].clone();
        out.insert(text, p);
    }
    out
}

async fn metrics(h: &Harness) -> BTreeMap<String, f64> {
    let text = h
        .http
        .get(format!("http://{}/metrics", h.operator_addr))
        .bearer_auth(&h.operator_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("warden_shadow_decisions_total"))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn divergences_are_recorded_beside_the_live_decision_and_counted() {
    let h = start_shadowed().await;
    let hash = shadow_hash(&h).await;
    assert!(hash.as_str().unwrap().starts_with("blake3:"), "{hash}");
    assert_ne!(hash, h.records_of("charter_loaded").await[0]["charter"]);
    let (_, token) = h.open_session("1h").await;

    // The live charter decides, and its answers are what they are without a shadow.
    let same = h.call(&token, "hello world").await;
    assert_eq!(text_of(&same), "hello world");
    let denied_by_shadow = h.call(&token, "hello deny me").await;
    assert!(!is_error(&denied_by_shadow), "{denied_by_shadow}");
    let asked_by_shadow = h.call(&token, "hello ask me").await;
    assert!(!is_error(&asked_by_shadow), "{asked_by_shadow}");
    let allowed_by_shadow = h.call(&token, "hello secret").await;
    assert!(is_error(&allowed_by_shadow), "{allowed_by_shadow}");
    // The decide API goes through the same decision.
    let (status, body) = h.decide(&token, "hello deny via the api", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "allow");
    assert_eq!(warden_testkit::echo::count(&h.calls), 3);
    // The shadow raised no approval request.
    assert!(h.records_of("approval_requested").await.is_empty());

    let shadowed = shadowed_by_text(&h).await;
    assert_eq!(shadowed.len(), 5, "{shadowed:#?}");
    for p in shadowed.values() {
        assert_eq!(p["charter"], hash);
        assert_eq!(p["decision"]["charter"], hash);
        assert_eq!(p["live"]["verdict"], p["live_recorded"]["verdict"]);
        assert_eq!(p["live"]["tier"], p["live_recorded"]["tier"]);
    }
    let check = |text: &str, verdict: &str, tier: &str, rule: &str, diverged: bool| {
        let p = &shadowed[text];
        assert_eq!(p["decision"]["verdict"], verdict, "{text}: {p}");
        assert_eq!(p["decision"]["tier"], tier, "{text}: {p}");
        assert_eq!(p["decision"]["rules"][0]["id"], rule, "{text}: {p}");
        assert_eq!(p["diverged"], diverged, "{text}: {p}");
    };
    check("hello world", "allow", "autonomous", "echo-hello", false);
    check("hello deny me", "deny", "prohibited", "shadow-deny", true);
    check(
        "hello deny via the api",
        "deny",
        "prohibited",
        "shadow-deny",
        true,
    );
    check("hello ask me", "ask", "approval", "shadow-ask", true);
    check("hello secret", "allow", "autonomous", "echo-hello", true);
    assert_eq!(shadowed["hello secret"]["live"]["verdict"], "deny");
    assert_eq!(shadowed["hello ask me"]["live"]["verdict"], "allow");

    let m = metrics(&h).await;
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in {m:?}"))
    };
    assert_eq!(
        get(r#"warden_shadow_decisions_total{verdict="allow",diverged="false"}"#),
        1.0
    );
    assert_eq!(
        get(r#"warden_shadow_decisions_total{verdict="deny",diverged="true"}"#),
        2.0
    );
    assert_eq!(
        get(r#"warden_shadow_decisions_total{verdict="ask",diverged="true"}"#),
        1.0
    );
    assert_eq!(
        get(r#"warden_shadow_decisions_total{verdict="allow",diverged="true"}"#),
        1.0
    );
    h.stop().await;
}

/// What the agent and the upstream see through one script of calls.
async fn run_script(h: &Harness) -> (Vec<Value>, u64, Vec<Value>) {
    let (_, token) = h.open_session("1h").await;
    let mut answers = Vec::new();
    for text in [
        "hello world",
        "hello deny me",
        "hello ask me",
        "hello secret",
        "a secret",
    ] {
        let a = h.call(&token, text).await;
        answers.push(json!({ "error": is_error(&a), "text": text_of(&a) }));
    }
    // A preapproved scope of five: the shadow never counts a use, so the sixth asks, as it
    // does without a shadow.
    for i in 0..6 {
        let (status, body) = h.decide(&token, &format!("counted {i}"), None).await;
        answers.push(json!({ "status": status, "verdict": body["verdict"] }));
    }
    let decided = h
        .records_of("action_decided")
        .await
        .into_iter()
        .map(|p| {
            json!([
                p["decision"]["verdict"],
                p["decision"]["tier"],
                p["decision"]["rules"]
            ])
        })
        .collect();
    // The charter's path (a temporary directory) differs from run to run.
    let path = h.config.charters.first().display().to_string();
    let same = |v: Vec<Value>| -> Vec<Value> {
        v.into_iter()
            .map(|x| serde_json::from_str(&x.to_string().replace(&path, "CHARTER")).unwrap())
            .collect()
    };
    (
        same(answers),
        warden_testkit::echo::count(&h.calls),
        same(decided),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcement_is_the_same_with_and_without_a_shadow() {
    let plain = Harness::start(Arc::new(SystemClock)).await;
    let (answers, calls, decided) = run_script(&plain).await;
    plain.stop().await;
    let shadowed = start_shadowed().await;
    let (s_answers, s_calls, s_decided) = run_script(&shadowed).await;
    assert_eq!(s_answers, answers);
    assert_eq!(s_decided, decided);
    // The upstream saw exactly the live-allowed MCP calls: the three `hello` ones (the
    // decide API's callers forward their allowed actions themselves).
    assert_eq!(calls, 3);
    assert_eq!(s_calls, calls);
    assert_eq!(answers.last().unwrap()["status"], 202, "{answers:?}");
    // Every decided action has its shadow decision.
    assert_eq!(
        shadowed.records_of("shadow_decided").await.len(),
        decided.len()
    );
    shadowed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_shadow_no_shadow_records() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    h.call(&token, "hello world").await;
    h.call(&token, "a secret").await;
    assert!(h.records_of("shadow_decided").await.is_empty());
    assert!(
        h.records_of("charter_loaded").await[0]
            .get("shadow")
            .is_none()
    );
    assert!(metrics(&h).await.is_empty());
    assert!(h.app_state().governor.shadow().is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_refused_before_any_decision_get_no_shadow_record() {
    let h = start_shadowed().await;
    let (_, token) = h.open_session("1h").await;
    let (_, body) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "echo.not_in_the_inventory", "arguments": {} }),
        )
        .await;
    assert!(body["error"].is_object() || is_error(&body), "{body}");
    assert!(!h.records_of("action_attempted").await.is_empty());
    assert!(h.records_of("shadow_decided").await.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_survives_a_live_reload() {
    let h = start_shadowed().await;
    let hash = shadow_hash(&h).await;
    let live = h.app_state().governor.charter_for("agent-1").unwrap();
    let text = std::fs::read_to_string(h.config.charters.first())
        .unwrap()
        .replace("prefix: hello }", "prefix: hi }");
    let next = warden_charter::compile(&[warden_charter::Source::new("next.yaml", &text)])
        .unwrap()
        .charter;
    warden_gateway::reload::put_in_force(&h.app_state(), Arc::new(next)).await;
    let (_, token) = h.open_session("1h").await;
    // The live charter changed (`hello` no longer matches its autonomous rule); the shadow
    // did not.
    let (_, body) = h.decide(&token, "hello world", None).await;
    assert_ne!(body["verdict"], "allow", "{body}");
    let shadowed = shadowed_by_text(&h).await;
    let p = &shadowed["hello world"];
    assert_eq!(p["charter"], hash);
    assert_eq!(p["decision"]["verdict"], "allow");
    assert_eq!(p["diverged"], true);
    assert_ne!(p["live_recorded"]["charter"], json!(live.hash));
    h.stop().await;
}

/// A charter file for the start-up checks (the server is never reached: start-up stops in
/// its first phase).
fn files(shadow: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let live = super::charter("http://127.0.0.1:9/mcp", "", "");
    let charter = dir.path().join("charter.yaml");
    std::fs::write(&charter, &live).unwrap();
    let shadow_path = dir.path().join("shadow.yaml");
    std::fs::write(&shadow_path, shadow.replace("{live}", &live)).unwrap();
    let mut config = warden_testkit::harness::test_config(&dir.path().join("data"), &charter);
    config.shadow_charter = Some(shadow_path);
    (dir, config)
}

#[tokio::test]
async fn a_shadow_that_does_not_compile_stops_the_start() {
    let (dir, config) = files(
        "version: 1\nidentity: { id: agent-1 }\nactions:\n  rules:\n    - { id: r, tool: echo.echo, tier: sometimes }\n",
    );
    match Gateway::start(config, Arc::new(SystemClock)).await {
        Err(StartError::Shadow(ShadowError::Compile(d))) => {
            let rendered = d.to_string();
            assert!(rendered.contains("shadow.yaml"), "{rendered}");
        }
        other => panic!("started, or failed otherwise: {:?}", other.err()),
    }
    // Phase 1: nothing was opened.
    assert!(!dir.path().join("data").exists());
}

#[tokio::test]
async fn adversarial_a_shadow_of_another_agent_stops_the_start() {
    let other = "{live}".to_owned();
    let (dir, mut config) = files(&other);
    let path = config.shadow_charter.clone().unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("id: agent-1,", "id: agent-2,");
    std::fs::write(&path, text).unwrap();
    config.shadow_charter = Some(path);
    let err = Gateway::start(config, Arc::new(SystemClock))
        .await
        .err()
        .unwrap();
    assert!(matches!(
        err,
        StartError::Shadow(ShadowError::OtherAgent { .. })
    ));
    let message = err.to_string();
    assert!(
        message.contains("`agent-2`") && message.contains("`agent-1`"),
        "{message}"
    );
    assert!(!dir.path().join("data").exists());
}
