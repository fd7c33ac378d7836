//! Criterion benchmarks of `decide` at 10 to 10,000 rules, and of charter compilation.
//!
//! Run: `cargo bench -p warden-pdp --bench decide`. Per-call percentiles (p50/p99) come from
//! the `decide_latency` bench.

#![allow(clippy::panic, clippy::indexing_slicing, reason = "bench code")]
#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use time::OffsetDateTime;
use warden_charter::{Source, compile};
use warden_pdp::{Controls, NoScopeUsage, Request, decide};

#[path = "support/charters.rs"]
mod charters;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn bench_decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    let cases = charters::cases();
    for n in SIZES {
        let charter = charters::charter(n);
        for (name, tool, args) in &cases {
            group.bench_with_input(BenchmarkId::new(*name, n), &n, |b, _| {
                b.iter(|| {
                    black_box(decide(
                        &charter,
                        &Request {
                            tool,
                            args,
                            principal: Some("alice"),
                            labels: &[],
                            provenance: warden_provenance::SessionProvenance::empty(),
                            controls: Controls::default(),
                            usage: &NoScopeUsage,
                            now: OffsetDateTime::UNIX_EPOCH,
                        },
                    ))
                });
            });
        }
    }
    group.finish();
}

fn bench_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for n in SIZES {
        let text = charters::charter_text(n);
        let sources = [Source::new("bench.yaml", text)];
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(compile(&sources).map(|c| c.charter.rules.len())));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decide, bench_compile);
criterion_main!(benches);
