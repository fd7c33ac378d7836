//! The cost of the approval path without human time: an agent's `POST /v1/decide` (with
//! `"wait": "30s"`) for an action that needs approval, answered `allow` once an approver has
//! approved it, where the "approver" is a webhook receiver that approves the moment the
//! notification arrives. Against a baseline: the same call for an autonomous action.
//!
//! Everything runs in this process over loopback HTTP: the real gateway (both planes, ledger
//! and `state.db` in a temporary directory on the disk of `TMPDIR`, every commit durable), the
//! echo MCP server as the one upstream (never called: the decide API does not forward), the
//! webhook receiver (axum) and the agent (reqwest). One 2-worker tokio runtime for all of it.
//!
//! Phases, each sequential (one call at a time) after a warm-up:
//! 1. baseline: `POST /v1/decide` for `echo.echo {"text": "hello N"}` (autonomous).
//! 2. link: `echo.echo {"text": "ask link N"}` (needs approval); the receiver POSTs bob's
//!    signed approve link from the webhook body.
//! 3. api: `echo.echo {"text": "ask api N"}`; the receiver calls
//!    `POST /v1/approvals/{id}/approve` with bob's approver token.
//!
//! For 2 and 3 the breakdown: decide sent → webhook received (decided, recorded, request
//! stored, notification built and POSTed), webhook received → approve answered (the
//! approval recorded and stored), approve answered → decide answered (the waiting call woken,
//! the grant marked used and the release recorded). Last, the latency of a 4 KiB append plus
//! `fsync` in the data directory's file system, for scale.
//!
//! Run: `cargo bench -p warden-gateway --bench approval_path`. `WARDEN_BENCH_BASELINE_N` sets
//! the baseline calls (default 2,000), `WARDEN_BENCH_APPROVAL_N` the calls of each approval
//! variant (default 500); with `WARDEN_BENCH_KEEP` set, the data directory (ledger,
//! `state.db`) is kept and named at the end.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "benchmark code"
)]
#![allow(missing_docs, reason = "bench binary")]

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use warden_core::SystemClock;
use warden_gateway::Gateway;
use warden_gateway::config::Webhook;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn charter(echo_url: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: benchmarks, serves: the approval path bench }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
actions:
  approval: {{ timeout: 60s }}
  rules:
    - {{ id: echo-hello, tool: echo.echo, tier: autonomous, args: {{ text: {{ prefix: hello }} }} }}
    - {{ id: echo-ask, tool: echo.echo, tier: approval, args: {{ text: {{ prefix: ask }} }} }}
authority:
  separation_of_duties: true
  roles:
    - {{ id: approver, approve: ["echo-*", default] }}
  principals:
    - {{ id: alice }}
    - {{ id: bob, roles: [approver] }}
"#
    )
}

/// What the receiver saw for one notification.
struct Step {
    /// The `text` argument of the request (to pair it with its call).
    text: String,
    /// When the webhook body arrived.
    received: Instant,
    /// When the approve call was answered.
    approved: Instant,
}

/// The receiver's state: how to approve, and where to report.
struct Receiver {
    /// `true`: POST bob's signed link; `false`: the approval API with bob's token.
    via_link: AtomicBool,
    /// Bob's approver token (issued after the gateway starts).
    bob: OnceLock<String>,
    /// The operator plane (for the API variant).
    operator: String,
    http: reqwest::Client,
    steps: mpsc::UnboundedSender<Step>,
}

impl Receiver {
    async fn on_webhook(self: Arc<Self>, body: String) -> &'static str {
        let received = Instant::now();
        let payload: Value = serde_json::from_str(&body).unwrap();
        // Approve on another task: the receiver answers the webhook at once, as a chat
        // service does, and the approver clicks later (here: at once).
        tokio::spawn(async move {
            let text = payload["approval"]["arguments"]["text"]
                .as_str()
                .unwrap()
                .to_owned();
            let request = if self.via_link.load(Ordering::Relaxed) {
                let link = payload["links"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|l| l["approver"] == "bob")
                    .unwrap()["approve"]
                    .as_str()
                    .unwrap();
                self.http.post(link)
            } else {
                let id = payload["approval"]["id"].as_str().unwrap();
                self.http
                    .post(format!("{}/v1/approvals/{id}/approve", self.operator))
                    .bearer_auth(self.bob.get().unwrap())
            };
            let resp = request.send().await.unwrap();
            let status = resp.status().as_u16();
            let answer: Value = resp.json().await.unwrap();
            let approved = Instant::now();
            assert_eq!(
                (status, answer["outcome"].as_str()),
                (200, Some("granted")),
                "{answer}"
            );
            self.steps
                .send(Step {
                    text,
                    received,
                    approved,
                })
                .unwrap();
        });
        "ok"
    }
}

/// A port free a moment ago, for the operator plane: signed links carry `public_url`, which
/// must name the operator plane before the gateway starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// p50, p90, p99, max and mean of `samples`, in µs.
struct Summary {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn summarise(samples: &[Duration]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    Summary {
        n: sorted.len(),
        p50: us(percentile(&sorted, 0.50)),
        p90: us(percentile(&sorted, 0.90)),
        p99: us(percentile(&sorted, 0.99)),
        max: us(percentile(&sorted, 1.0)),
        mean: sorted.iter().map(|d| us(*d)).sum::<f64>() / sorted.len() as f64,
    }
}

fn print_line(label: &str, s: &Summary) {
    println!(
        "  {label:<38} p50 {:>8.0} µs  p90 {:>8.0} µs  p99 {:>8.0} µs  max {:>8.0} µs  mean {:>8.0} µs  (N={})",
        s.p50, s.p90, s.p99, s.max, s.mean, s.n
    );
}

/// An agent-plane decide call; returns the status and the body.
async fn decide(
    http: &reqwest::Client,
    agent: &str,
    token: &str,
    text: &str,
    wait: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({ "tool": "echo.echo", "arguments": { "text": text } });
    if let Some(w) = wait {
        body["wait"] = json!(w);
    }
    let resp = http
        .post(format!("{agent}/v1/decide"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Latencies of one approval variant: total, and the three steps.
struct Approvals {
    total: Vec<Duration>,
    to_webhook: Vec<Duration>,
    to_approved: Vec<Duration>,
    to_released: Vec<Duration>,
    /// Calls answered before the approver's answer arrived.
    released_first: usize,
}

async fn approval_phase(
    http: &reqwest::Client,
    agent: &str,
    token: &str,
    steps: &mut mpsc::UnboundedReceiver<Step>,
    tag: &str,
    warmup: usize,
    n: usize,
) -> Approvals {
    let mut out = Approvals {
        total: Vec::with_capacity(n),
        to_webhook: Vec::with_capacity(n),
        to_approved: Vec::with_capacity(n),
        to_released: Vec::with_capacity(n),
        released_first: 0,
    };
    for i in 0..warmup + n {
        let text = format!("ask {tag} {i}");
        let sent = Instant::now();
        let (status, body) = decide(http, agent, token, &text, Some("30s")).await;
        let answered = Instant::now();
        assert_eq!(
            (status, body["verdict"].as_str()),
            (200, Some("allow")),
            "{body}"
        );
        let step = tokio::time::timeout(Duration::from_secs(10), steps.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(step.text, text);
        if i < warmup {
            continue;
        }
        out.total.push(answered - sent);
        out.to_webhook.push(step.received - sent);
        out.to_approved.push(step.approved - step.received);
        if answered < step.approved {
            out.released_first += 1;
        }
        out.to_released
            .push(answered.saturating_duration_since(step.approved));
    }
    out
}

/// 4 KiB appended and `fsync`ed (as SQLite syncs a WAL at each commit), `n` times, in `dir`:
/// the file system's commit latency.
fn fsync_latency(dir: &std::path::Path, n: usize) -> Vec<Duration> {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let block = [0x5a_u8; 4096];
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&block).unwrap();
            f.sync_all().unwrap();
            t.elapsed()
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that is not ours skips the run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"approval_path".contains(a.as_str()))
    {
        return;
    }
    let baseline_n = env_usize("WARDEN_BENCH_BASELINE_N", 2_000).max(1);
    let approval_n = env_usize("WARDEN_BENCH_APPROVAL_N", 500).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let (echo_url, _calls) = warden_testkit::echo::spawn().await.unwrap();
        let charter_path = dir.path().join("charter.yaml");
        std::fs::write(&charter_path, charter(&echo_url)).unwrap();

        let operator_addr: std::net::SocketAddr =
            format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let operator = format!("http://{operator_addr}");
        let (steps_tx, mut steps) = mpsc::unbounded_channel();
        let receiver = Arc::new(Receiver {
            via_link: AtomicBool::new(true),
            bob: OnceLock::new(),
            operator: operator.clone(),
            http: reqwest::Client::new(),
            steps: steps_tx,
        });
        let r = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| r.clone().on_webhook(body)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let mut config =
            warden_testkit::harness::test_config(&dir.path().join("data"), &charter_path);
        config.operator_listen = operator_addr;
        config.approval_webhook = Some(Webhook {
            url: hook.parse().unwrap(),
            slack: false,
        });
        config.public_url = operator.clone();
        let gw = Gateway::start(config, Arc::new(SystemClock)).await.unwrap();
        let agent = format!("http://{}", gw.agent_addr);
        let admin = gw.bootstrap_operator_token.clone().unwrap();
        let http = reqwest::Client::new();

        let resp = http
            .post(format!("{operator}/v1/sessions"))
            .bearer_auth(&admin)
            .json(&json!({ "agent": "agent-1", "user": "alice", "task": "benchmark", "ttl": "1h" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let session: Value = resp.json().await.unwrap();
        let token = session["token"].as_str().unwrap().to_owned();
        let resp = http
            .post(format!("{operator}/v1/operator-tokens"))
            .bearer_auth(&admin)
            .json(&json!({ "name": "bob", "role": "approver", "principal": "bob" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let issued: Value = resp.json().await.unwrap();
        receiver
            .bob
            .set(issued["token"].as_str().unwrap().to_owned())
            .unwrap();

        // 1. Baseline: an autonomous action.
        let warmup = 200;
        let mut baseline = Vec::with_capacity(baseline_n);
        for i in 0..warmup + baseline_n {
            let sent = Instant::now();
            let (status, body) = decide(&http, &agent, &token, &format!("hello {i}"), None).await;
            let took = sent.elapsed();
            assert_eq!(
                (status, body["verdict"].as_str()),
                (200, Some("allow")),
                "{body}"
            );
            if i >= warmup {
                baseline.push(took);
            }
        }

        // 2. Approval by the signed link; 3. by the approval API.
        let link = approval_phase(&http, &agent, &token, &mut steps, "link", 50, approval_n).await;
        receiver.via_link.store(false, Ordering::Relaxed);
        let api = approval_phase(&http, &agent, &token, &mut steps, "api", 50, approval_n).await;

        gw.shutdown().await;
        let probe = fsync_latency(dir.path(), 500);

        let base = summarise(&baseline);
        println!("approval_path (sequential calls; latencies from the agent's side):");
        print_line("baseline decide, autonomous", &base);
        for (name, v) in [("signed link", &link), ("approval API", &api)] {
            let total = summarise(&v.total);
            println!("approval path, approver uses the {name}:");
            print_line("decide sent → allow received", &total);
            print_line(
                "  decide sent → webhook received",
                &summarise(&v.to_webhook),
            );
            print_line(
                "  webhook received → approve answered",
                &summarise(&v.to_approved),
            );
            print_line(
                "  approve answered → allow received",
                &summarise(&v.to_released),
            );
            println!(
                "  added over baseline: p50 {:.0} µs, p99 {:.0} µs (p99 − p99); \
                 allow received before the approve answer in {} of {} calls",
                total.p50 - base.p50,
                total.p99 - base.p99,
                v.released_first,
                v.total.len()
            );
        }
        print_line("4 KiB append + fsync in TMPDIR", &summarise(&probe));
    });
    println!(
        "approval_path: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("WARDEN_BENCH_KEEP").is_some() {
        println!("data directory kept: {}", dir.keep().join("data").display());
    }
}
