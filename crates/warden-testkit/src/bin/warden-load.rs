//! `warden-load`: MCP `tools/call` load against a Streamable HTTP endpoint; prints calls/s and
//! latency percentiles as one JSON line.
//!
//! Each worker sends `initialize` once, then `tools/call` in a loop (closed loop), or — with
//! `--rate` — the workers share a fixed schedule of calls per second (open loop: a call whose
//! slot had passed when its worker took it is timed from the slot, so queueing shows; one
//! whose slot was ahead is timed from the moment the timer woke the worker, since tokio's
//! timer wakes up to a millisecond late, which is this tool's delay, not the server's). With `--url` given several times (a
//! fleet's instances), worker `w` sends to URL `w mod n`: the load is spread evenly, and the
//! figures are those of every call together.

#![allow(clippy::print_stdout, reason = "a tool that prints its figures")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use tokio_util::task::TaskTracker;

/// Load generator.
#[derive(Debug, Parser)]
struct Args {
    /// The MCP endpoint; repeat it to spread the workers over several (round robin).
    #[arg(long, required = true)]
    url: Vec<String>,
    /// Bearer token, if the endpoint needs one.
    #[arg(long)]
    token: Option<String>,
    /// Tool name.
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Measured duration, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up, in seconds (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Calls per second across all clients (open loop); default: as fast as possible.
    #[arg(long)]
    rate: Option<u64>,
    /// What each call's `text` argument starts with (then the worker and call numbers).
    #[arg(long, default_value = "hello")]
    prefix: String,
    /// A label printed with the figures.
    #[arg(long, default_value = "")]
    label: String,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

async fn post(
    client: &reqwest::Client,
    args: &Args,
    url: &str,
    body: serde_json::Value,
) -> anyhow::Result<()> {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&body);
    if let Some(t) = &args.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() || text.contains("\"error\"") || text.contains("\"isError\":true") {
        anyhow::bail!("call failed: {status} {text}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "warden-load", "version": "1"}}});
    for url in &args.url {
        post(&client, &args, url, init.clone()).await?;
    }
    let start = Instant::now();
    let warm_until = start + Duration::from_secs(args.warmup);
    let stop_at = warm_until + Duration::from_secs(args.seconds);
    let interval = args
        .rate
        .map(|r| Duration::from_nanos(1_000_000_000 / r.max(1)));
    let next_slot = Arc::new(std::sync::Mutex::new(start));
    let workers = TaskTracker::new();
    let mut handles = Vec::new();
    for w in 0..args.concurrency {
        let (client, args, next_slot) = (client.clone(), args.clone(), next_slot.clone());
        let url = args
            .url
            .get(w % args.url.len().max(1))
            .cloned()
            .unwrap_or_default();
        handles.push(workers.spawn(async move {
            let mut samples: Vec<u64> = Vec::new();
            let mut errors = 0u64;
            let mut i = 0u64;
            loop {
                let (scheduled, timed_from) = match interval {
                    Some(iv) => {
                        let slot = {
                            let Ok(mut n) = next_slot.lock() else { break };
                            let s = *n;
                            *n += iv;
                            s
                        };
                        if slot > Instant::now() {
                            // Ahead: the call is timed from the moment the timer woke the
                            // worker (tokio's timer has a 1 ms grain, which is this tool's,
                            // not the server's).
                            tokio::time::sleep_until(slot.into()).await;
                            (slot, Instant::now())
                        } else {
                            // Already past: the worker was held up by its last call, and the
                            // wait since the slot is queueing, so the call is timed from it.
                            (slot, slot)
                        }
                    }
                    None => {
                        let now = Instant::now();
                        (now, now)
                    }
                };
                if scheduled >= stop_at {
                    break;
                }
                i += 1;
                let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": args.tool, "arguments": {"text": format!("{} {w} {i}", args.prefix)}}});
                let ok = post(&client, &args, &url, body).await.is_ok();
                let elapsed = timed_from.elapsed();
                if scheduled >= warm_until {
                    if ok {
                        samples.push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
                    } else {
                        errors += 1;
                    }
                }
            }
            (samples, errors)
        }));
    }
    workers.close();
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (s, e) = h.await?;
        all.extend(s);
        errors += e;
    }
    all.sort_unstable();
    let calls = all.len() as f64;
    println!(
        "{}",
        json!({
            "label": args.label,
            "concurrency": args.concurrency,
            "endpoints": args.url.len(),
            "rate": args.rate,
            "calls": all.len(),
            "errors": errors,
            "calls_per_second": (calls / args.seconds as f64).round(),
            "p50_us": percentile(&all, 0.50),
            "p90_us": percentile(&all, 0.90),
            "p99_us": percentile(&all, 0.99),
            "max_us": all.last().copied().unwrap_or(0),
        })
    );
    Ok(())
}
