//! The notifier against a real HTTP receiver and a real ledger: bodies, signatures, links,
//! retries and the `approval_notified` records.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::{LinkAction, NewApproval};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use time::OffsetDateTime;
use warden_audit::{Ledger, LedgerConfig, LedgerReader, Record};
use warden_core::ManualClock;

use super::*;
use crate::signing::Link;

/// Serves `app` on a task that ends with the test's runtime.
#[expect(
    clippy::disallowed_methods,
    reason = "the receiver lives as long as the test's runtime"
)]
fn serve_until_the_test_ends(listener: tokio::net::TcpListener, app: Router) {
    tokio::spawn(async move { axum::serve(listener, app).await });
}

const SECRET: &[u8] = b"an approval signing secret of 32+ bytes";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn signer() -> Signer {
    Signer::new(SECRET).unwrap()
}

fn request(id: &str, approvers: &[&str]) -> ApprovalRequest {
    ApprovalRequest::new(NewApproval {
        id: id.into(),
        action: format!("act-{id}"),
        session: "s1".into(),
        agent: "agent-1".into(),
        principal: "alice".into(),
        task: "pay invoices".into(),
        tool: "bank.pay".into(),
        arguments: json!({ "amount": 1200, "beneficiary": "<acme & co>", "memo": "x".repeat(2000) }),
        reason: "rule".into(),
        why: "payments over 1000 need a second pair of eyes".into(),
        rules: Vec::new(),
        authority_for: vec!["pay".into()],
        approvers: approvers.iter().map(|a| (*a).to_owned()).collect(),
        quorum: 1,
        charter: "blake3:test".to_owned(),
        requested_at: t0(),
        deadline: t0() + time::Duration::minutes(15),
        model_turns: Vec::new(),
    })
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Captured {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Captured>>,
    /// Statuses to answer, in order; 200 once they run out.
    script: Mutex<VecDeque<u16>>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.got.lock().unwrap().push(Captured { headers, body });
    let code = r.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

/// Starts a receiver answering `script` and returns it with its URL.
async fn receiver(script: &[u16]) -> (Arc<Receiver>, url::Url) {
    let state = Arc::new(Receiver {
        got: Mutex::default(),
        script: Mutex::new(script.iter().copied().collect()),
    });
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_until_the_test_ends(listener, app);
    (
        state,
        url::Url::parse(&format!("http://{addr}/hook")).unwrap(),
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    ledger: Ledger,
    tasks: TaskTracker,
    cancel: CancellationToken,
    clock: Arc<ManualClock>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let ledger = Ledger::open(dir.path(), clock.clone(), LedgerConfig::default())
        .await
        .unwrap();
    Fixture {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        ledger,
        tasks: TaskTracker::new(),
        cancel: CancellationToken::new(),
        clock,
    }
}

impl Fixture {
    fn notifier(&self, url: url::Url, format: WebhookFormat) -> Notifier {
        let config =
            WebhookConfig::new(Some(url), format, "https://warden.example/ops/".to_owned());
        Notifier::start(
            config,
            signer(),
            Arc::new(self.ledger.clone()),
            self.clock.clone(),
            &self.tasks,
            self.cancel.clone(),
        )
        .unwrap()
    }

    /// Drops the notifier, waits until the worker has delivered and recorded everything, and
    /// returns the `approval_notified` records.
    async fn finish(&self, notifier: Notifier) -> Vec<Record> {
        drop(notifier);
        self.tasks.close();
        self.tasks.wait().await;
        let reader = LedgerReader::open(&self.dir).await.unwrap();
        let all = reader.range(1, 1000).await.unwrap();
        reader.close().await;
        all.into_iter()
            .filter(|r| r.kind == RecordKind::ApprovalNotified)
            .collect()
    }
}

fn header<'a>(c: &'a Captured, name: &str) -> &'a str {
    c.headers.get(name).unwrap().to_str().unwrap()
}

/// A notification record without its `target` (the id of the receiver, checked to be there).
fn without_target(payload: &Value) -> Value {
    let mut p = payload.clone();
    let target = p.as_object_mut().unwrap().remove("target").unwrap();
    assert_eq!(target.as_str().unwrap().len(), 16);
    p
}

/// Checks a link against the signer and returns its action and approver.
fn check_link(link: &str, request: &ApprovalRequest) -> (LinkAction, String) {
    let url = url::Url::parse(link).unwrap();
    assert_eq!(url.host_str(), Some("warden.example"));
    let path = url.path().to_owned();
    let prefix = format!("/ops/v1/approvals/{}/link/", request.id);
    let action = LinkAction::parse(path.strip_prefix(&prefix).unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    let expires: i64 = q["expires"].parse().unwrap();
    assert_eq!(expires, request.deadline.unix_timestamp());
    let l = Link {
        action,
        request: &request.id,
        approver: &q["approver"],
        via: &q["via"],
        expires_unix: expires,
    };
    assert!(signer().verify_link(&l, &q["sig"]));
    // Another approver, another target or another secret does not verify.
    assert!(!signer().verify_link(
        &Link {
            approver: "mallory",
            ..l
        },
        &q["sig"]
    ));
    assert!(!signer().verify_link(
        &Link {
            via: "elsewhere",
            ..l
        },
        &q["sig"]
    ));
    let other = Signer::new(&[9u8; 32]).unwrap();
    assert!(!other.verify_link(&l, &q["sig"]));
    (action, q["approver"].clone())
}

#[tokio::test]
async fn json_notifications_are_signed_and_their_links_verify() {
    let f = fixture().await;
    let (rx, url) = receiver(&[]).await;
    let notifier = f.notifier(url, WebhookFormat::Json);
    let req = request("r1", &["bob", "ops team/é"]);
    notifier.notify(&req);
    let records = f.finish(notifier).await;

    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let c = &got[0];
    assert_eq!(header(c, "content-type"), "application/json");
    assert_eq!(header(c, "x-warden-event"), "approval.requested");
    let sig = header(c, "x-warden-signature");
    assert_eq!(
        signer().verify_body(sig, &c.body),
        Some(t0().unix_timestamp())
    );

    let body: Value = serde_json::from_slice(&c.body).unwrap();
    assert_eq!(body["type"], "approval.requested");
    assert_eq!(body["expires_at"], "2027-01-15T08:15:00Z");
    let approval: ApprovalRequest = serde_json::from_value(body["approval"].clone()).unwrap();
    assert_eq!(approval, req);
    let links = body["links"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    for (l, who) in links.iter().zip(["bob", "ops team/é"]) {
        assert_eq!(l["approver"], who);
        let approve = check_link(l["approve"].as_str().unwrap(), &req);
        assert_eq!(approve, (LinkAction::Approve, who.to_owned()));
        let deny = check_link(l["deny"].as_str().unwrap(), &req);
        assert_eq!(deny, (LinkAction::Deny, who.to_owned()));
    }

    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.session.as_deref(), Some("s1"));
    assert_eq!(
        without_target(&r.payload),
        json!({ "approval": "r1", "status": "delivered", "attempts": 1, "http_status": 200, "error": null })
    );
    // Neither the secret nor a signature is in the record.
    let text = r.payload.to_string();
    assert!(!text.contains("v1="));
    assert!(!text.contains(std::str::from_utf8(SECRET).unwrap()));
}

#[tokio::test]
async fn slack_notifications_carry_text_and_links() {
    let f = fixture().await;
    let (rx, url) = receiver(&[]).await;
    let via = signer().target_id(url.as_str());
    let notifier = f.notifier(url, WebhookFormat::Slack);
    let req = request("r2", &["bob", "carol"]);
    notifier.notify(&req);
    let records = f.finish(notifier).await;

    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let c = &got[0];
    assert!(
        signer()
            .verify_body(header(c, "x-warden-signature"), &c.body)
            .is_some()
    );
    let body: Value = serde_json::from_slice(&c.body).unwrap();
    let text = body["text"].as_str().unwrap();
    for part in [
        "agent-1",
        "alice",
        "bank.pay",
        "second pair of eyes",
        "2027-01-15T08:15:00Z",
    ] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    // Arguments are cut, and mrkdwn control characters escaped.
    assert!(text.contains('…'));
    assert!(text.len() < 1500);
    assert!(text.contains("&lt;acme &amp; co&gt;"));
    assert!(!text.contains("<acme"));

    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert_eq!(blocks[0]["text"]["text"], text);
    let links = links(
        &signer(),
        "https://warden.example/ops",
        &req,
        &req.approvers,
        &via,
    );
    for (block, l) in blocks[1..].iter().zip(&links) {
        let line = block["text"]["text"].as_str().unwrap();
        assert!(line.contains(&format!("<{}|Approve as {}>", l.approve, l.approver)));
        assert!(line.contains(&format!("<{}|Deny as {}>", l.deny, l.approver)));
        assert_eq!(check_link(&l.approve, &req).0, LinkAction::Approve);
        assert_eq!(check_link(&l.deny, &req).0, LinkAction::Deny);
    }
    assert_eq!(blocks.len(), 3);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].payload["status"], "delivered");
}

#[tokio::test]
async fn failed_attempts_are_retried() {
    let f = fixture().await;
    let (rx, url) = receiver(&[500, 500]).await;
    let notifier = f.notifier(url, WebhookFormat::Json);
    notifier.notify(&request("r3", &["bob"]));
    let records = f.finish(notifier).await;

    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    // Every attempt carries the same body, signed.
    for c in &got {
        assert_eq!(c.body, got[0].body);
        assert!(
            signer()
                .verify_body(header(c, "x-warden-signature"), &c.body)
                .is_some()
        );
    }
    assert_eq!(records.len(), 1);
    assert_eq!(
        without_target(&records[0].payload),
        json!({ "approval": "r3", "status": "delivered", "attempts": 3, "http_status": 200, "error": null })
    );
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_recorded_as_failed() {
    let f = fixture().await;
    let (rx, url) = receiver(&[500, 500, 500, 500]).await;
    let notifier = f.notifier(url, WebhookFormat::Json);
    notifier.notify(&request("r4", &["bob"]));
    let records = f.finish(notifier).await;

    assert_eq!(rx.got.lock().unwrap().len(), 3);
    assert_eq!(records.len(), 1);
    assert_eq!(
        without_target(&records[0].payload),
        json!({
            "approval": "r4", "status": "failed", "attempts": 3, "http_status": 500,
            "error": "the receiver answered 500 Internal Server Error",
        })
    );
}

#[tokio::test]
async fn an_unreachable_receiver_is_recorded_without_its_url() {
    let f = fixture().await;
    // A port nothing listens on: bind one, then free it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = url::Url::parse(&format!("http://{addr}/services/T000/SECRETPATH")).unwrap();
    let mut config = WebhookConfig::new(Some(url), WebhookFormat::Json, "https://w".to_owned());
    config.attempts = 2;
    let notifier = Notifier::start(
        config,
        signer(),
        Arc::new(f.ledger.clone()),
        f.clock.clone(),
        &f.tasks,
        f.cancel.clone(),
    )
    .unwrap();
    notifier.notify(&request("r5", &["bob"]));
    let records = f.finish(notifier).await;

    assert_eq!(records.len(), 1);
    let p = &records[0].payload;
    assert_eq!(p["status"], "failed");
    assert_eq!(p["attempts"], 2);
    assert_eq!(p["http_status"], Value::Null);
    let error = p["error"].as_str().unwrap();
    assert!(!error.is_empty());
    assert!(!error.contains("SECRETPATH"), "{error}");
}

#[tokio::test]
async fn a_tampered_body_does_not_verify() {
    let f = fixture().await;
    let (rx, url) = receiver(&[]).await;
    let notifier = f.notifier(url, WebhookFormat::Json);
    notifier.notify(&request("r6", &["bob"]));
    f.finish(notifier).await;

    let got = rx.got.lock().unwrap().clone();
    let c = &got[0];
    let sig = header(c, "x-warden-signature");
    assert!(signer().verify_body(sig, &c.body).is_some());
    let tampered = String::from_utf8(c.body.to_vec())
        .unwrap()
        .replace("\"quorum\":1", "\"quorum\":0");
    assert_ne!(tampered.as_bytes(), &c.body[..]);
    assert_eq!(signer().verify_body(sig, tampered.as_bytes()), None);
    // Nor does the right body under another secret.
    let other = Signer::new(&[9u8; 32]).unwrap();
    assert_eq!(other.verify_body(sig, &c.body), None);
}

#[tokio::test]
async fn after_shutdown_notifications_are_recorded_as_dropped() {
    let f = fixture().await;
    let (rx, url) = receiver(&[]).await;
    let notifier = f.notifier(url, WebhookFormat::Json);
    f.cancel.cancel();
    // The worker may or may not have closed its queue yet: either way nothing is sent, and
    // the notification is recorded as dropped.
    notifier.notify(&request("r7", &["bob"]));
    let records = f.finish(notifier).await;

    assert!(rx.got.lock().unwrap().is_empty());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].payload["status"], "dropped");
    assert_eq!(records[0].payload["attempts"], 0);
}

#[test]
fn links_encode_the_approver_and_ignore_a_trailing_slash() {
    let req = request("r8", &["a b&c=d"]);
    let with = links(
        &signer(),
        "https://warden.example/ops/",
        &req,
        &req.approvers,
        "t1",
    );
    let without = links(
        &signer(),
        "https://warden.example/ops",
        &req,
        &req.approvers,
        "t1",
    );
    assert_eq!(with, without);
    assert_eq!(
        with[0].approve,
        format!(
            "https://warden.example/ops/v1/approvals/r8/link/approve?approver=a%20b%26c%3Dd&via=t1&expires={}&sig={}",
            req.deadline.unix_timestamp(),
            signer().sign_link(&Link {
                action: LinkAction::Approve,
                request: "r8",
                approver: "a b&c=d",
                via: "t1",
                expires_unix: req.deadline.unix_timestamp()
            }),
        )
    );
    assert_eq!(
        check_link(&with[0].deny, &req),
        (LinkAction::Deny, "a b&c=d".to_owned())
    );
}

#[test]
fn formats_parse() {
    assert_eq!(WebhookFormat::parse("json"), Some(WebhookFormat::Json));
    assert_eq!(WebhookFormat::parse("slack"), Some(WebhookFormat::Slack));
    assert_eq!(WebhookFormat::parse("xml"), None);
    assert_eq!(WebhookFormat::Slack.as_str(), "slack");
}

/// Issue 10, point 10: every approver's links went into the one webhook message. With their
/// own targets, each approver's target gets only their links; the shared webhook gets the
/// links of approvers without a target; the links say where they went.
#[tokio::test]
async fn issue_10_each_target_gets_only_its_approvers_links() {
    let f = fixture().await;
    let (shared, shared_url) = receiver(&[200]).await;
    let (bobs, bobs_url) = receiver(&[200]).await;
    let mut config = WebhookConfig::new(
        Some(shared_url.clone()),
        WebhookFormat::Json,
        "https://warden.example/ops/".to_owned(),
    );
    config
        .principals
        .insert("bob".to_owned(), (bobs_url.clone(), WebhookFormat::Json));
    let notifier = Notifier::start(
        config,
        signer(),
        Arc::new(f.ledger.clone()),
        f.clock.clone(),
        &f.tasks,
        f.cancel.clone(),
    )
    .unwrap();
    let req = request("r10", &["bob", "carol"]);
    notifier.notify(&req);
    let records = f.finish(notifier).await;
    assert_eq!(records.len(), 2, "one record per target");
    let approvers_at = |r: &Receiver| -> Vec<(String, String)> {
        let got = r.got.lock().unwrap();
        assert_eq!(got.len(), 1);
        let body: Value = serde_json::from_slice(&got[0].body).unwrap();
        body["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let approve = l["approve"].as_str().unwrap();
                let url = url::Url::parse(approve).unwrap();
                let via = url
                    .query_pairs()
                    .find(|(k, _)| k == "via")
                    .unwrap()
                    .1
                    .into_owned();
                (l["approver"].as_str().unwrap().to_owned(), via)
            })
            .collect()
    };
    assert_eq!(
        approvers_at(&bobs),
        [("bob".to_owned(), signer().target_id(bobs_url.as_str()))]
    );
    assert_eq!(
        approvers_at(&shared),
        [("carol".to_owned(), signer().target_id(shared_url.as_str()))]
    );
}

/// Issue 13, point 3: the notification carries the earlier refusals of the action and the
/// decision's provenance (the JSON as fields of `approval`, Slack as lines of the message).
#[tokio::test]
async fn notifications_carry_earlier_refusals_and_provenance() {
    use warden_core::provenance::{ArgProvenance, FoundIn};
    let f = fixture().await;
    let (rx, url) = receiver(&[]).await;
    let notifier = f.notifier(url, WebhookFormat::Slack);
    let req = request("r3", &["bob"]).with_context(
        Vec::new(),
        vec![crate::Earlier {
            id: "r0".into(),
            status: crate::Status::TimedOut,
            at: t0(),
        }],
        vec![ArgProvenance {
            rule: "pay".into(),
            argument: "iban".into(),
            value: "NL91ABNA0417164300".into(),
            trusted: None,
            found: vec![FoundIn {
                part: "nl91abna0417164300".into(),
                kind: "iban".into(),
                seq: 7,
                labels: vec!["untrusted_mail".into()],
            }],
            incomplete: false,
        }],
    );
    let json = serde_json::to_value(&req).unwrap();
    assert_eq!(json["earlier"][0]["id"], "r0");
    assert_eq!(json["provenance"][0]["found"][0]["seq"], 7);
    notifier.notify(&req);
    f.finish(notifier).await;
    let got = rx.got.lock().unwrap().clone();
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("*Earlier refusals of this action:* r0 timed_out"),
        "{text}"
    );
    assert!(
        text.contains("found in untrusted content (untrusted_mail)"),
        "{text}"
    );
}
