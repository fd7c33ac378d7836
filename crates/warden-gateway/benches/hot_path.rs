//! CPU per request on the two hot paths: an MCP `tools/call` (decided, recorded, forwarded to
//! the echo server, its result redacted, measured and recorded, relayed) and a model-proxy
//! chat completion (decided, `model_requested` charged to the capture quota and recorded,
//! forwarded to the mock provider, the completion recorded, relayed).
//!
//! Everything runs in this process over loopback HTTP on one current-thread tokio runtime
//! (one core for the async work; the ledger's writer and SQLite's fsyncs run on their own
//! threads): the real gateway (ledger and `state.db` in a temporary directory on the disk of
//! `TMPDIR`, every commit durable), the echo MCP server, the mock LLM and the client
//! (reqwest). The gateway holds a provider key, so its secrets are redacted on every answer,
//! as in a deployment with a model route.
//!
//! For each phase, after a warm-up, `N` sequential calls: the process's CPU time (user +
//! system, every thread, from `/proc/self/stat`) divided by `N`, and the wall-clock p50. The
//! CPU includes the client and the two peers, which are the same before and after a change to
//! the gateway, so a difference between two builds is the gateway's.
//!
//! Run: `cargo bench -p warden-gateway --bench hot_path`; `WARDEN_BENCH_N` sets `N` (default
//! 3,000).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "benchmark code"
)]
#![allow(missing_docs, reason = "bench binary")]

use std::time::{Duration, Instant};

use serde_json::json;
use warden_testkit::harness::Harness;
use warden_testkit::mock_llm::{self, MockConfig};

const PROVIDER_KEY: &str = "sk-bench-provider-key-0123456789";

/// The process's CPU time so far (user + system, all threads, living and exited).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses): utime and stime are the 14th
    // and 15th of the whole line, the 12th and 13th after ") ".
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn charter(echo_url: &str, llm_url: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: benchmarks, serves: the hot path bench }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
  models:
    - alias: gpt
      routes: [{{ provider: openai, base_url: "{llm_url}", model: gpt-mock, api_key_env: WARDEN_BENCH_KEY }}]
actions:
  rules:
    - {{ id: echo-hello, tool: echo.echo, tier: autonomous, args: {{ text: {{ prefix: hello }} }} }}
authority:
  principals:
    - {{ id: alice }}
  enrolment:
    - {{ by: admin, principals: ["*"] }}
"#
    )
}

struct Phase {
    cpu_per_call: Duration,
    p50: Duration,
}

async fn phase<F, Fut>(n: usize, mut call: F) -> Phase
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..n / 10 {
        call(i).await;
    }
    let mut wall = Vec::with_capacity(n);
    let cpu = cpu_time();
    for i in 0..n {
        let start = Instant::now();
        call(i).await;
        wall.push(start.elapsed());
    }
    let cpu = cpu_time() - cpu;
    wall.sort_unstable();
    Phase {
        cpu_per_call: cpu / u32::try_from(n).unwrap(),
        p50: wall[n / 2],
    }
}

fn main() {
    let n: usize = std::env::var("WARDEN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let llm = mock_llm::spawn(MockConfig::default()).await.unwrap();
        let llm_url = llm.url.clone();
        let h = Harness::builder(move |echo_url| charter(echo_url, &llm_url))
            .configure(|c| {
                c.provider_keys = Some(
                    [("WARDEN_BENCH_KEY".to_owned(), PROVIDER_KEY.to_owned())]
                        .into_iter()
                        .collect(),
                );
            })
            .start()
            .await;
        let (_, token) = h.open_session("1h").await;
        let h = &h;
        let token = &token;
        let mcp = phase(n, |i| async move {
            let body = h.call(token, &format!("hello {i}")).await;
            assert!(body["result"]["content"][0]["text"].is_string(), "{body}");
        })
        .await;
        let url = format!("http://{}/v1/chat/completions", h.agent_addr);
        let url = &url;
        let model = phase(n, |i| async move {
            let resp = h
                .http
                .post(url)
                .bearer_auth(token)
                .json(&json!({
                    "model": "gpt",
                    "max_tokens": 64,
                    "messages": [{ "role": "user", "content": format!("hello {i}") }],
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
        })
        .await;
        println!("hot_path: {n} sequential calls per phase, one current-thread runtime");
        println!("| phase | CPU per call (µs) | wall p50 (µs) |");
        println!("|---|---:|---:|");
        for (name, p) in [("MCP tools/call", &mcp), ("model chat completion", &model)] {
            println!(
                "| {name} | {} | {} |",
                p.cpu_per_call.as_micros(),
                p.p50.as_micros()
            );
        }
        h.stop().await;
    });
}
