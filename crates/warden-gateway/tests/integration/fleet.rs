//! A fleet (issue 18): three in-process gateways on one PostgreSQL database
//! (`warden_testkit::fleet`), proving the parts together: a session opened on one instance
//! is used on the others, a per-day scope holds exactly across instances, an approval decided
//! on one instance releases a call waiting on another, a control set on one is in force on the
//! others within a second, and a PostgreSQL outage under load refuses calls (never allows
//! them) and is survived without a restart, every allowed call recorded in its instance's
//! chain; a decide-API result is reported on any instance, once; and every instance holds the
//! fleet's approval key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use warden_testkit::fleet::Fleet;
use warden_testkit::postgres::TestDb;

#[path = "fleet/approval_key.rs"]
mod approval_key;
#[path = "fleet/approvals.rs"]
mod approvals;
#[path = "fleet/controls.rs"]
mod controls;
#[path = "fleet/counters.rs"]
mod counters;
#[path = "fleet/outage.rs"]
mod outage;
#[path = "fleet/results.rs"]
mod results;
#[path = "fleet/sessions.rs"]
mod sessions;

/// The fleet's charter: `hello …` autonomous, `… secret …` prohibited, `daily …` preapproved
/// three times a day across every session (then it asks), `ask …` needs an approval.
fn charter(echo_url: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: tests, serves: the fleet tests }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
actions:
  approval: {{ timeout: 60s }}
  rules:
    - {{ id: echo-hello, tool: echo.echo, tier: autonomous, args: {{ text: {{ prefix: hello }} }} }}
    - {{ id: echo-secret, tool: echo.echo, tier: prohibited, args: {{ text: {{ regex: ".*secret.*" }} }} }}
    - {{ id: echo-daily, tool: echo.echo, tier: preapproved, args: {{ text: {{ prefix: daily }} }}, scope: {{ per_day: 3 }} }}
    - {{ id: echo-ask, tool: echo.echo, tier: approval, args: {{ text: {{ prefix: ask }} }}, approval: {{ timeout: 60s }} }}
authority:
  separation_of_duties: true
  roles:
    - {{ id: approver, approve: [default, "echo-*"] }}
  principals:
    - {{ id: alice, roles: [approver] }}
    - {{ id: bob, roles: [approver] }}
  enrolment:
    - {{ by: admin, principals: ["*"] }}
"#
    )
}

/// Three instances on a fresh database.
async fn three() -> (TestDb, Fleet) {
    let db = TestDb::new().await.unwrap();
    let fleet = Fleet::start(3, charter, db.url()).await;
    (db, fleet)
}

fn is_error(body: &Value) -> bool {
    body["result"]["isError"] == json!(true) || body.get("error").is_some()
}

fn text_of(body: &Value) -> String {
    body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The `action_decided` records of every instance's chain, by action id.
async fn decisions(fleet: &Fleet) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (_, records) in fleet.all_records().await {
        for r in records {
            if r.kind.as_str() == "action_decided" {
                out.insert(r.payload["action"].as_str().unwrap().to_owned(), r.payload);
            }
        }
    }
    out
}
