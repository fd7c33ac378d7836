//! Deciding for one agent among many, and deciding for a delegated session (issue 17).
//!
//! (a) `set_lookup_decide/{1,100}`: a `CharterSet` lookup of the agent's charter and `decide`
//! with one charter loaded and with 100 — the lookup is a map lookup, so both cost the same.
//! (b) `delegated`: a child's action decided under its own charter and its parent's, and the
//! verdicts combined (`combine`) — two decisions and a comparison.
//!
//! Criterion reports means; after it, a sampled loop prints p50/p90/p99/p99.9 per case (the
//! goal for (b) is stated as a p99: under 10 µs).
//!
//! Run: `cargo bench -p warden-pdp --bench delegated_decision`. Set `WARDEN_BENCH_CALLS` to
//! change the number of timed calls per case of the sampled loop (default 200,000).

#![allow(clippy::panic, clippy::indexing_slicing, reason = "bench code")]
#![allow(missing_docs, reason = "a bench binary")]
#![allow(clippy::print_stdout, reason = "a bench prints its figures")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use time::OffsetDateTime;
use warden_charter::{CharterSet, CompiledCharter, Source, compile};
use warden_core::Decision;
use warden_pdp::{Controls, NoScopeUsage, Request, combine, decide};

#[path = "support/charters.rs"]
#[allow(
    dead_code,
    reason = "the support module serves every bench; this one compiles its own"
)]
mod charters;

/// Rules per charter of the set.
const RULES: usize = 100;

/// The generated charter of `RULES` rules for agent `id`.
fn charter_for(id: &str) -> Arc<CompiledCharter> {
    let text = charters::charter_text(RULES).replacen("id: bench,", &format!("id: {id},"), 1);
    match compile(&[Source::new(format!("{id}.yaml"), text)]) {
        Ok(c) => Arc::new(c.charter),
        Err(d) => panic!("generated charter does not compile:\n{d}"),
    }
}

/// A set of `n` charters (agents `agent0` … ); the agent decided for is the last.
fn set_of(n: usize) -> CharterSet {
    let charters = (0..n).map(|k| charter_for(&format!("agent{k}"))).collect();
    match CharterSet::new(charters) {
        Ok(s) => s,
        Err(e) => panic!("{e:?}"),
    }
}

fn request<'a>(tool: &'a str, args: &'a serde_json::Value) -> Request<'a> {
    Request {
        tool,
        args,
        principal: Some("alice"),
        labels: &[],
        provenance: warden_provenance::SessionProvenance::empty(),
        controls: Controls::default(),
        usage: &NoScopeUsage,
        now: OffsetDateTime::UNIX_EPOCH,
    }
}

/// (a): look the agent's charter up in the set, decide.
fn lookup_decide(set: &CharterSet, agent: &str, req: &Request<'_>) -> Option<Decision> {
    set.get(agent).map(|c| decide(c, req))
}

/// (b): decide under the child's and the parent's charters, combine.
fn delegated(child: &CompiledCharter, parent: &CompiledCharter, req: &Request<'_>) -> Decision {
    let mut decisions = vec![decide(child, req), decide(parent, req)];
    let i = combine(&decisions).unwrap_or(0);
    decisions.swap_remove(i)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

fn sampled(name: &str, calls: usize, mut f: impl FnMut()) {
    for _ in 0..10_000 {
        f();
    }
    let mut samples = Vec::with_capacity(calls);
    let start = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        f();
        samples.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    let total = start.elapsed();
    samples.sort_unstable();
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>10.0}",
        name,
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        percentile(&samples, 0.999),
        calls as f64 / total.as_secs_f64()
    );
}

fn main() {
    let one = set_of(1);
    let hundred = set_of(100);
    let child = charter_for("child");
    let parent = charter_for("parent");
    let cases = charters::cases();

    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("set_lookup_decide");
        group.throughput(Throughput::Elements(1));
        for (n, set, agent) in [(1usize, &one, "agent0"), (100, &hundred, "agent99")] {
            for (name, tool, args) in &cases {
                let req = request(tool, args);
                group.bench_with_input(BenchmarkId::new(*name, n), &n, |b, _| {
                    b.iter(|| black_box(lookup_decide(set, agent, &req)));
                });
            }
        }
        group.finish();
    }
    {
        let mut group = c.benchmark_group("delegated");
        group.throughput(Throughput::Elements(1));
        for (name, tool, args) in &cases {
            let req = request(tool, args);
            group.bench_function(*name, |b| {
                b.iter(|| black_box(delegated(&child, &parent, &req)));
            });
        }
        group.finish();
    }
    c.final_summary();

    let calls: usize = std::env::var("WARDEN_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    println!(
        "\n{:<26} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "case", "p50 ns", "p90 ns", "p99 ns", "p99.9 ns", "calls/s"
    );
    for (name, tool, args) in &cases {
        let req = request(tool, args);
        sampled(&format!("set1/{name}"), calls, || {
            black_box(lookup_decide(&one, "agent0", &req));
        });
        sampled(&format!("set100/{name}"), calls, || {
            black_box(lookup_decide(&hundred, "agent99", &req));
        });
        sampled(&format!("delegated/{name}"), calls, || {
            black_box(delegated(&child, &parent, &req));
        });
    }
}
