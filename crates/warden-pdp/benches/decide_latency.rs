//! Per-call latency of `decide`: p50, p90, p99 and p99.9 over many single calls, for charters
//! of 10 to 10,000 rules. Criterion reports means; the goal is stated as a p99.
//!
//! Run: `cargo bench -p warden-pdp --bench decide_latency`. Set `WARDEN_BENCH_CALLS` to change
//! the number of timed calls per case (default 200,000).

#![allow(clippy::panic, clippy::indexing_slicing, reason = "bench code")]
#![allow(missing_docs, reason = "a bench binary")]
#![allow(clippy::print_stdout, reason = "a bench prints its figures")]

use std::hint::black_box;
use std::time::Instant;

use time::OffsetDateTime;
use warden_pdp::{Controls, NoScopeUsage, Request, decide};

#[path = "support/charters.rs"]
mod charters;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

fn main() {
    let calls: usize = std::env::var("WARDEN_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let cases = charters::cases();
    println!(
        "{:<14} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "case", "rules", "p50 ns", "p90 ns", "p99 ns", "p99.9 ns", "calls/s"
    );
    for n in [10usize, 100, 1_000, 10_000] {
        let charter = charters::charter(n);
        for (name, tool, args) in &cases {
            let req = Request {
                tool,
                args,
                principal: Some("alice"),
                labels: &[],
                provenance: warden_provenance::SessionProvenance::empty(),
                controls: Controls::default(),
                usage: &NoScopeUsage,
                now: OffsetDateTime::UNIX_EPOCH,
            };
            for _ in 0..10_000 {
                black_box(decide(&charter, &req));
            }
            let mut samples = Vec::with_capacity(calls);
            let start = Instant::now();
            for _ in 0..calls {
                let t = Instant::now();
                black_box(decide(&charter, &req));
                samples.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
            }
            let total = start.elapsed();
            samples.sort_unstable();
            println!(
                "{:<14} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10.0}",
                name,
                n,
                percentile(&samples, 0.50),
                percentile(&samples, 0.90),
                percentile(&samples, 0.99),
                percentile(&samples, 0.999),
                calls as f64 / total.as_secs_f64()
            );
        }
    }
}
