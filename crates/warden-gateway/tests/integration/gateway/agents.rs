//! The agent inventory (`GET /v1/agents`, `GET /v1/agents/{id}`) on a real gateway governing
//! three charters (two of them including a shared document): what it lists is checked against
//! the charters' text, sessions and controls show up, and a live reload of one agent changes
//! that agent's hash and load time only.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};
use warden_gateway::config::CharterSource;
use warden_testkit::harness::Harness;

/// The organisation's document both `coord` and `worker` include.
pub(crate) const ORG: &str = r#"authority:
  roles:
    - { id: lead, direct: approval, approve: ["mail-*"] }
    - { id: dev, direct: preapproved }
  principals:
    - { id: alice, roles: [dev] }
    - { id: dana, roles: [lead] }
  enrolment:
    - { by: admin, principals: ["*"] }
data:
  labels: [{ id: secret }]
"#;

pub(crate) fn coord(echo_url: &str) -> String {
    format!(
        r#"version: 1
include: [org.yaml]
identity: {{ id: coord, name: Coordinator, purpose: plans the work, serves: the release team, values: [accuracy], boundaries: [writes no code] }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
    - {{ id: mail, tools: [send] }}
  models:
    - alias: fast
      routes: [{{ provider: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-test, timeout: 2s }}]
      deny_labels: [secret]
delegation: {{ to: [worker], max_depth: 2, max_children: 3 }}
actions:
  default_posture: deny
  rules:
    - {{ id: echo-ok, tool: echo.echo, tier: autonomous }}
    - {{ id: mail-review, tool: mail.send, tier: approval, approval: {{ quorum: 1 }} }}
    - {{ id: mail-secret, tool: mail.send, tier: prohibited, labels: {{ any: [secret] }} }}
    - {{ id: web, tool: model.web_search, tier: autonomous }}
"#
    )
}

pub(crate) fn worker(echo_url: &str) -> String {
    format!(
        r#"version: 1
include: [org.yaml]
identity: {{ id: worker, name: Worker, purpose: implements tasks, serves: the release team }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
delegation: {{ from: [coord] }}
actions:
  default_posture: ask
  rules:
    - {{ id: echo-counted, tool: echo.echo, tier: preapproved, scope: {{ per_session: 5 }} }}
"#
    )
}

pub(crate) fn solo(echo_url: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: solo, name: Solo, purpose: answers questions, serves: customers }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
actions:
  default_posture: deny
  rules:
    - {{ id: no-echo, tool: echo.echo, tier: prohibited }}
authority:
  principals: [{{ id: alice }}]
"#
    )
}

/// A gateway on the three charters (`coord` first, in the harness's own file; `worker` and
/// `solo` in `dir`).
pub(crate) async fn start(dir: &Path) -> Harness {
    let d = dir.to_path_buf();
    let extra: Vec<PathBuf> = vec![d.join("worker/charter.yaml"), d.join("solo/charter.yaml")];
    let paths = extra.clone();
    Harness::builder(move |echo| {
        for (name, text) in [("worker", worker(echo)), ("solo", solo(echo))] {
            std::fs::create_dir_all(d.join(name)).unwrap();
            std::fs::write(d.join(name).join("charter.yaml"), text).unwrap();
        }
        std::fs::write(d.join("worker/org.yaml"), ORG).unwrap();
        coord(echo)
    })
    .configure(move |c| {
        // The harness's charter file sits in its own temporary folder: the shared document
        // goes beside it.
        let first = c.charters.first().to_path_buf();
        std::fs::write(first.with_file_name("org.yaml"), ORG).unwrap();
        let mut all = vec![first];
        all.extend(paths);
        c.charters = CharterSource::Paths(all);
    })
    .start()
    .await
}

pub(crate) async fn get(h: &Harness, path: &str, token: &str) -> (u16, Value) {
    h.operator(Method::GET, path, token, None).await
}

pub(crate) async fn open(h: &Harness, agent: &str, user: &str) -> String {
    let (status, body) = h
        .operator(
            Method::POST,
            "/v1/sessions",
            &h.operator_token,
            Some(json!({ "agent": agent, "user": user, "task": "secret task text" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn tiers_of(detail: &Value, tool: &str) -> Vec<(String, Vec<String>, bool)> {
    let entry = detail["tools"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool"] == tool)
        .unwrap_or_else(|| panic!("{tool} listed: {detail:#}"));
    entry["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tier"].as_str().unwrap().to_owned(),
                t["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect(),
                t["default"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_lists_what_each_charter_enforces() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let t = h.operator_token.clone();

    let (status, list) = get(&h, "/v1/agents", &t).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["coord", "solo", "worker"]);
    assert_eq!(list["capped"], false);

    // coord: its identity, its tools by the tiers its rules give them, its model, its
    // approvers (from the included document), its delegation.
    let (status, c) = get(&h, "/v1/agents/coord", &t).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["name"], "Coordinator");
    assert_eq!(c["purpose"], "plans the work");
    assert_eq!(c["serves"], "the release team");
    assert_eq!(strs(&c["values"]), ["accuracy"]);
    assert_eq!(strs(&c["boundaries"]), ["writes no code"]);
    let files = strs(&c["charter"]["files"]);
    assert!(
        files.iter().any(|f| f.ends_with("org.yaml")),
        "the included document is one of the charter's files: {files:?}"
    );
    assert_eq!(c["charter"]["rules"], 4);
    assert_eq!(c["charter"]["default_posture"], "deny");
    assert!(c["charter"]["loaded_at"].is_string(), "{c}");
    assert_eq!(
        tiers_of(&c, "echo.echo"),
        [("autonomous".to_owned(), vec!["echo-ok".to_owned()], false)]
    );
    assert_eq!(
        tiers_of(&c, "mail.send"),
        [
            ("approval".to_owned(), vec!["mail-review".to_owned()], false),
            (
                "prohibited".to_owned(),
                vec!["mail-secret".to_owned()],
                false
            ),
        ]
    );
    assert_eq!(
        tiers_of(&c, "echo.resources/read"),
        [("prohibited".to_owned(), vec!["default".to_owned()], true)],
        "no rule covers it: the default posture, marked as such"
    );
    let servers = c["servers"].as_array().unwrap();
    assert_eq!(servers[0]["id"], "echo");
    assert_eq!(servers[0]["transport"], "http");
    assert_eq!(servers[1]["transport"], "decide_api");
    assert!(servers[1]["agent"].is_null());
    let fast = &c["models"]["aliases"][0];
    assert_eq!(fast["alias"], "fast");
    assert_eq!(strs(&fast["routes"]), ["openai:gpt-test"]);
    assert_eq!(strs(&fast["deny_labels"]), ["secret"]);
    let web = c["models"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["tool"] == "model.web_search")
        .unwrap();
    assert_eq!(web["tiers"][0]["rules"][0], "web");
    assert_eq!(web["tiers"][0]["tier"], "autonomous");
    let approvers = c["approvers"]["items"].as_array().unwrap();
    assert_eq!(approvers.len(), 1, "{approvers:?}");
    assert_eq!(approvers[0]["rule"], "mail-review");
    assert_eq!(strs(&approvers[0]["principals"]), ["dana"]);
    let directors = c["directors"]["items"].as_array().unwrap();
    assert_eq!(directors[0]["role"], "dev");
    assert_eq!(directors[0]["direct"], "preapproved");
    assert_eq!(strs(&directors[0]["principals"]), ["alice"]);
    assert_eq!(directors[1]["role"], "lead");
    assert_eq!(
        c["delegation"],
        json!({ "to": ["worker"], "from": [], "max_depth": 2, "max_children": 3 })
    );

    // worker: default posture ask, nobody may approve `default`; accepts from coord, default
    // bounds.
    let (_, w) = get(&h, "/v1/agents/worker", &t).await;
    assert_eq!(
        tiers_of(&w, "echo.echo"),
        [(
            "preapproved".to_owned(),
            vec!["echo-counted".to_owned()],
            false
        )]
    );
    assert_eq!(w["approvers"]["items"][0]["rule"], "default");
    assert!(
        strs(&w["approvers"]["items"][0]["principals"]).is_empty(),
        "`mail-*` does not cover `default`: {w}"
    );
    assert_eq!(strs(&w["delegation"]["from"]), ["coord"]);
    assert_eq!(w["delegation"]["to"], json!([]));
    // solo: no delegation section: delegates to nobody, accepts nobody.
    let (_, s) = get(&h, "/v1/agents/solo", &t).await;
    assert_eq!(
        tiers_of(&s, "echo.echo"),
        [("prohibited".to_owned(), vec!["no-echo".to_owned()], false)]
    );
    assert_eq!(s["delegation"]["to"], json!([]));
    assert_eq!(s["delegation"]["from"], json!([]));
    assert!(s["models"]["aliases"].as_array().unwrap().is_empty());

    // The summaries count tools per tier as the details list them.
    let summary = |id: &str| {
        list["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(summary("coord")["tiers"], c["tiers"]);
    assert_eq!(summary("coord")["charter"], c["charter"]["hash"]);
    assert_ne!(summary("coord")["charter"], summary("worker")["charter"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_controls_show_up_and_a_reload_changes_one_agent_only() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let t = h.operator_token.clone();
    let s1 = open(&h, "coord", "alice").await;
    let s2 = open(&h, "coord", "dana").await;
    let w1 = open(&h, "worker", "alice").await;
    let (status, _) = h
        .operator(Method::POST, &format!("/v1/sessions/{s1}/revoke"), &t, None)
        .await;
    assert_eq!(status, 200);
    let freeze = h
        .set_control(
            json!({ "action": "frozen", "scope": "agent", "target": "worker", "reason": "look" }),
        )
        .await;
    let on_s2 = h
        .set_control(
            json!({ "action": "conservative", "scope": "session", "target": s2, "reason": "care" }),
        )
        .await;

    let (_, c) = get(&h, "/v1/agents/coord", &t).await;
    assert_eq!(c["sessions"]["live"], 1);
    assert_eq!(c["sessions"]["known"], 2);
    assert_eq!(
        strs(&c["sessions"]["live_ids"]["items"]),
        std::slice::from_ref(&s2)
    );
    assert!(c["sessions"]["last_activity"].is_string());
    let controls: Vec<&Value> = c["controls"]["items"].as_array().unwrap().iter().collect();
    assert_eq!(controls.len(), 1, "{controls:?}");
    assert_eq!(controls[0]["id"], on_s2["id"]);
    let text = c.to_string();
    assert!(!text.contains("secret task text"), "no task text");
    assert!(!text.contains("wa_"), "no session token");

    let (_, w) = get(&h, "/v1/agents/worker", &t).await;
    assert_eq!(strs(&w["sessions"]["live_ids"]["items"]), [w1]);
    assert_eq!(w["controls"]["items"][0]["id"], freeze["id"]);
    let (_, s) = get(&h, "/v1/agents/solo", &t).await;
    assert_eq!(s["sessions"]["known"], 0);
    assert!(s["sessions"]["last_activity"].is_null());
    assert_eq!(s["controls"]["total"], 0);

    // A gateway-wide control applies to every agent.
    h.set_control(json!({ "action": "conservative", "scope": "gateway", "reason": "all" }))
        .await;
    let (_, list) = get(&h, "/v1/agents", &t).await;
    let counts: Vec<(String, u64)> = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_owned(),
                a["controls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("coord".to_owned(), 2),
            ("solo".to_owned(), 1),
            ("worker".to_owned(), 2)
        ]
    );

    // A live reload of the worker's charter: its hash and load time change, coord's do not.
    let before_c = c["charter"].clone();
    let before_w = w["charter"].clone();
    let path = dir.path().join("worker/charter.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "tier: preapproved, scope: { per_session: 5 }",
            "tier: prohibited",
        ),
    )
    .unwrap();
    let (status, body) = h
        .operator(
            Method::POST,
            "/v1/charter/reload",
            &t,
            Some(json!({ "agent": "worker" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, c2) = get(&h, "/v1/agents/coord", &t).await;
    let (_, w2) = get(&h, "/v1/agents/worker", &t).await;
    assert_eq!(c2["charter"], before_c, "coord's charter did not change");
    assert_ne!(w2["charter"]["hash"], before_w["hash"]);
    assert_ne!(w2["charter"]["loaded_at"], before_w["loaded_at"]);
    assert_eq!(
        tiers_of(&w2, "echo.echo"),
        [(
            "prohibited".to_owned(),
            vec!["echo-counted".to_owned()],
            false
        )],
        "the inventory follows the charter in force"
    );
    h.stop().await;
}
