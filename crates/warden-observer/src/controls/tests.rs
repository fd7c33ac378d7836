#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code"
)]

use std::sync::Mutex;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::json;
use time::macros::datetime;
use tokio_util::sync::CancellationToken;
use warden_core::ManualClock;

use super::*;
use crate::alerts::{AlertFormat, alert_body};
use crate::gateway::Token;
use crate::response::{Action, Signal};

fn response(action: Action, scope: Scope) -> Response {
    Response {
        action,
        scope,
        tool: None,
        reason: "fifteen reads in a directory never touched before".to_owned(),
        evidence: vec![3, 4, 5],
        detector: "burst-and-rate".to_owned(),
        signals: vec![Signal {
            detector: "unfamiliar-directory".to_owned(),
            kind: "new_resource_burst".to_owned(),
            session: Some("s-1".to_owned()),
            agent: Some("coder".to_owned()),
            principal: None,
            tool: None,
            evidence: vec![3, 4, 5],
            baseline: json!({"threshold": 15}),
            detail: "15 reads under /ws/archive".to_owned(),
            time: datetime!(2026-12-06 10:00 UTC),
        }],
        expires_in_secs: None,
    }
}

#[test]
fn the_body_keeps_within_the_control_apis_bounds() {
    let mut r = response(Action::FreezeTool, Scope::Session("s-1".to_owned()));
    r.tool = Some("web.fetch".to_owned());
    r.reason = "é".repeat(2000);
    r.detector = "d".repeat(300);
    r.evidence = (1..=1500).collect();
    r.expires_in_secs = Some(u64::MAX);
    let body = control_body(&r);
    assert_eq!(body["action"], "freeze_tool");
    assert_eq!(body["scope"], "session");
    assert_eq!(body["target"], "s-1");
    assert_eq!(body["tool"], "web.fetch");
    assert!(body["reason"].as_str().unwrap().len() <= 1024);
    assert!(body["detector"].as_str().unwrap().len() <= 128);
    let evidence = body["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 1000);
    assert_eq!(evidence[0], 501, "the newest are kept");
    assert_eq!(body["expires_in_secs"], 31_536_000);

    // A gateway-wide response has no target; nothing optional is sent empty.
    let mut g = response(Action::Frozen, Scope::Gateway);
    g.evidence.clear();
    let body = control_body(&g);
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["action", "detector", "reason", "scope"]);
    // The same response always has the same key; another has another.
    assert_eq!(
        response_key(&control_body(&g)),
        response_key(&control_body(&g.clone()))
    );
    assert_ne!(response_key(&body), response_key(&control_body(&r)));
}

#[test]
fn alert_bodies_in_json_and_slack_shape() {
    let r = response(Action::Conservative, Scope::Session("s-1".to_owned()));
    let json_body = alert_body(AlertFormat::Json, &r, &Sent::Taken("c-9".to_owned()));
    assert_eq!(json_body["type"], "observer.response");
    assert_eq!(json_body["response"], control_body(&r));
    assert_eq!(
        json_body["control"],
        json!({"id": "c-9", "outcome": "in_force"})
    );
    assert_eq!(json_body["signals"][0]["kind"], "new_resource_burst");
    let slack = alert_body(AlertFormat::Slack, &r, &Sent::Failed("down".to_owned()));
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains("`conservative` for session `s-1`, NOT SENT"),
        "{text}"
    );
    assert!(text.contains("ledger records 3, 4, 5"), "{text}");
    assert_eq!(slack["blocks"][0]["text"]["text"], text);
}

/// A control API that answers each POST with the next status of a script (then 201).
#[derive(Default)]
struct Script {
    statuses: Vec<u16>,
    bodies: Vec<Value>,
}

async fn controls_route(
    State(script): State<Arc<Mutex<Script>>>,
    body: axum::Json<Value>,
) -> axum::response::Response {
    let mut s = script.lock().unwrap();
    s.bodies.push(body.0);
    let status = if s.statuses.is_empty() {
        201
    } else {
        s.statuses.remove(0)
    };
    let n = s.bodies.len();
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"control": {"id": format!("c-{n}")}, "error": "scripted"})),
    )
        .into_response()
}

async fn sender(
    script: Arc<Mutex<Script>>,
) -> (
    ControlSender,
    Arc<Store>,
    Arc<Metrics>,
    CancellationToken,
    tempfile::TempDir,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/v1/controls", post(controls_route))
        .with_state(script);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
    });
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(tmp.path()).unwrap().0);
    let metrics = Arc::new(Metrics::new());
    let clock = Arc::new(ManualClock::new(datetime!(2026-12-06 10:00:00.250 UTC)));
    let gateway = GatewayClient::new(&format!("http://{addr}"), Token::new("t")).unwrap();
    (
        ControlSender::new(gateway, store.clone(), metrics.clone(), clock),
        store,
        metrics,
        cancel,
        tmp,
    )
}

fn outgoing(r: Response) -> Outgoing {
    Outgoing {
        response: r,
        seq: 5,
        record_time: datetime!(2026-12-06 10:00 UTC),
    }
}

#[tokio::test]
async fn a_response_is_sent_once_failures_are_retried_and_refusals_are_not() {
    let script = Arc::new(Mutex::new(Script {
        statuses: vec![503, 500],
        ..Script::default()
    }));
    let (sender, store, metrics, stop, _tmp) = sender(script.clone()).await;
    let conservative = outgoing(response(
        Action::Conservative,
        Scope::Session("s-1".to_owned()),
    ));

    // Two server errors, then taken.
    assert_eq!(
        sender.send(&conservative).await,
        Sent::Taken("c-3".to_owned())
    );
    assert_eq!(script.lock().unwrap().bodies.len(), 3);
    // Read again after a restart: already taken, not sent again.
    assert_eq!(sender.send(&conservative).await, Sent::Duplicate);
    assert_eq!(script.lock().unwrap().bodies.len(), 3);
    let kept = store.responses(10).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].control.as_deref(), Some("c-3"));
    assert_eq!(kept[0].outcome, "sent");
    assert_eq!(kept[0].body, control_body(&conservative.response));

    // A refusal is not retried, and is tried again the next time (nothing in force).
    script.lock().unwrap().statuses = vec![422];
    let frozen = outgoing(response(Action::Frozen, Scope::Gateway));
    assert!(matches!(sender.send(&frozen).await, Sent::Refused(422, _)));
    assert_eq!(script.lock().unwrap().bodies.len(), 4);
    assert!(
        store.responses(10).unwrap()[0]
            .outcome
            .starts_with("refused: 422")
    );
    assert_eq!(sender.send(&frozen).await, Sent::Taken("c-5".to_owned()));

    // Never more than the bounded number of attempts.
    script.lock().unwrap().statuses = vec![503; 10];
    let alert = outgoing(response(Action::Alert, Scope::Agent("coder".to_owned())));
    assert!(matches!(sender.send(&alert).await, Sent::Failed(e) if e.contains("503")));
    assert_eq!(script.lock().unwrap().bodies.len(), 5 + ATTEMPTS as usize);

    let text = metrics.encode();
    for line in [
        "warden_observer_responses_total{action=\"conservative\",outcome=\"sent\"} 1",
        "warden_observer_responses_total{action=\"conservative\",outcome=\"duplicate\"} 1",
        "warden_observer_responses_total{action=\"frozen\",outcome=\"refused\"} 1",
        "warden_observer_responses_total{action=\"alert\",outcome=\"failed\"} 1",
        // 250 ms from the record's commit to the control in force, twice.
        "warden_observer_detection_to_intervention_seconds_count 2",
        "warden_observer_detection_to_intervention_seconds_sum 0.5",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    stop.cancel();
}
