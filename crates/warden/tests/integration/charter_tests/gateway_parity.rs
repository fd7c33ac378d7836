//! `warden test` decides as the gateway does: every case of an example is sent to a real
//! gateway's decide API, in a session for the case's principal, and the gateway's answer
//! (verdict, tier, reason, rules; or the refusal `not_inventoried`) is what
//! `warden_pdp::cases::run` reached.

use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;
use warden_charter::{Source, load};
use warden_pdp::cases;
use warden_testkit::harness::Harness;

use crate::integration::common::repo;

#[test]
fn the_gateway_reaches_what_each_case_of_the_python_agent_reaches() {
    let charter_path = repo().join("examples/python-agent/charter.yaml");
    let charter_text = std::fs::read_to_string(&charter_path).unwrap();
    let charter = Arc::new(load(&charter_path).unwrap().charter);
    let case_file = repo().join("examples/python-agent/tests/basic.yaml");
    let source = Source::new(
        case_file.display().to_string(),
        std::fs::read_to_string(&case_file).unwrap(),
    );
    let all = cases::parse(&charter, &source).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let h = Harness::builder(move |_echo| charter_text)
            .sessions_for("python-agent", "alice")
            .start()
            .await;
        let (_, token) = h.open_session("1h").await;
        let mut compared = 0;
        for case in &all {
            // The harness's sessions act for alice; a case for another principal is not this
            // session's.
            if case.principal().is_some_and(|p| p != "alice") {
                continue;
            }
            let ours = cases::run(&charter, case, OffsetDateTime::now_utc());
            assert!(ours.passed(), "{}: {:?}", case.name, ours.failures);
            let resp = h
                .http
                .post(format!("http://{}/v1/decide", h.agent_addr))
                .bearer_auth(&token)
                .json(&json!({ "tool": case.tool, "arguments": case.args() }))
                .send()
                .await
                .unwrap();
            let body: Value = resp.json().await.unwrap();
            if ours.reason == cases::NOT_INVENTORIED {
                assert_eq!(body["verdict"], "deny", "{}: {body}", case.name);
                assert_eq!(body["refusal"], "not_inventoried", "{}: {body}", case.name);
            } else {
                let d = &body["decision"];
                assert_eq!(d["verdict"], ours.verdict.as_str(), "{}: {body}", case.name);
                assert_eq!(d["tier"], json!(ours.tier), "{}: {body}", case.name);
                assert_eq!(d["reason"], ours.reason, "{}: {body}", case.name);
                let ids: Vec<&str> = d["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap())
                    .collect();
                let want: Vec<&str> = ours.rules.iter().map(|r| &*r.id).collect();
                assert_eq!(ids, want, "{}: {body}", case.name);
            }
            compared += 1;
        }
        assert_eq!(compared, all.len());
        h.stop().await;
    });
}
