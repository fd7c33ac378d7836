//! `warden-stream-bench`: how fast the ledger stream (`GET /v1/ledger/stream`) delivers a
//! ledger over HTTP. Starts the in-process gateway (real ledger, real SQLite, in a temporary
//! directory), appends `--records` records (an `action_attempted`-sized payload, about 370
//! bytes stored), then has `--readers` clients each read the whole ledger from record 1 with an
//! observer credential; prints records/s per reader and in all as one JSON line.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark tool that prints its figures; a failed step ends the run"
)]

use std::time::Instant;

use clap::Parser;
use futures_util::StreamExt as _;
use serde_json::json;
use tokio_util::task::TaskTracker;
use warden_audit::{NewRecord, RecordKind};
use warden_testkit::harness::Harness;

/// Ledger stream throughput.
#[derive(Debug, Parser)]
struct Args {
    /// Records in the ledger.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Concurrent readers, each reading the whole ledger.
    #[arg(long, default_value_t = 1)]
    readers: usize,
}

fn charter(echo_url: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: benchmarks, serves: the benchmark }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
actions:
  rules:
    - {{ id: echo, tool: echo.echo, tier: autonomous }}
"#
    )
}

/// Reads the stream from 1 until `head`; the records read.
async fn read_all(http: reqwest::Client, url: String, token: String, head: u64) -> u64 {
    let resp = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut partial = String::new();
    let mut last = 0;
    let mut records = 0;
    while last < head {
        let chunk = body.next().await.expect("the stream ended early").unwrap();
        partial.push_str(std::str::from_utf8(&chunk).unwrap());
        let complete = partial.rfind('\n').map_or(0, |i| i + 1);
        for line in partial[..complete].lines() {
            if let Some(id) = line.strip_prefix("id: ") {
                last = id.parse().unwrap();
                records += 1;
            }
        }
        partial.drain(..complete);
    }
    records
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let h = Harness::builder(charter).start().await;
    let ledger = h.app_state().governor.ledger().clone();
    let filler = "x".repeat(150);
    let started = Instant::now();
    let mut left = args.records;
    while left > 0 {
        let n = left.min(1000);
        let batch = (0..n)
            .map(|i| NewRecord {
                session: Some("01966b1e-0000-7000-8000-000000000000".to_owned()),
                kind: RecordKind::ActionAttempted,
                payload: json!({ "action": i, "via": "mcp", "tool": "echo.echo", "arguments": { "text": filler } }),
            })
            .collect();
        ledger.append_batch(batch).await.unwrap();
        left -= n;
    }
    let filled = started.elapsed();
    let head = ledger.committed_head();
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            "/v1/operator-tokens",
            &h.operator_token,
            Some(json!({ "name": "bench-observer", "role": "observer" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let url = format!("http://{}/v1/ledger/stream?from=1", h.operator_addr);
    let tasks = TaskTracker::new();
    let mut readers = Vec::new();
    let started = Instant::now();
    for _ in 0..args.readers {
        readers.push(tasks.spawn(read_all(h.http.clone(), url.clone(), token.clone(), head)));
    }
    let mut total = 0;
    for r in readers {
        total += r.await.unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "records": head,
            "readers": args.readers,
            "fill_seconds": filled.as_secs_f64(),
            "read_seconds": took,
            "records_per_second_per_reader": (total as f64 / args.readers as f64) / took,
            "records_per_second": total as f64 / took,
        })
    );
    h.stop().await;
}
