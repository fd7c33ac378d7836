//! Criterion benchmark of the observer's engine replaying a synthetic, realistic ledger
//! (benign history, then many sessions with model turns, intents, attempts and decisions).
//! Throughput is in records per second on one core.
//!
//! Run: `cargo bench -p warden-observer --bench engine`. The memory figure (10,000 active
//! sessions) comes from `cargo run --release -p warden-observer --example observer_load`;
//! `bench/observer.sh` prints both.

#![allow(clippy::panic, reason = "bench code")]
#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use warden_observer::Engine;
use warden_observer::synth::{Rng, Synth};

fn ledger() -> Synth {
    let mut rng = Rng::new(11);
    let mut s = Synth::new(1_796_083_200_000);
    for _ in 0..12 {
        s.benign(
            &mut rng,
            "coding-agent",
            4,
            &["/workspace/src", "/workspace/docs"],
            &["fs.read_file", "fs.write_file"],
        );
        s.advance(1_800_000);
    }
    let ids: Vec<String> = (0..1_000).map(|i| format!("live-{i}")).collect();
    for id in &ids {
        s.open(id, "coding-agent", "alice");
    }
    for round in 0..10 {
        for (i, id) in ids.iter().enumerate() {
            s.advance(5);
            s.turn(id, 1_000 + rng.below(2_000), &["read_file"]);
            let dir = if i % 50 == 0 {
                format!("/srv/new-{round}")
            } else {
                "/workspace/src".to_owned()
            };
            s.action(
                id,
                "fs.read_file",
                json!({ "path": format!("{dir}/f{}.rs", rng.below(100)) }),
                "allow",
            );
        }
    }
    s
}

fn bench_replay(c: &mut Criterion) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let charter = match warden_charter::load(&root.join("coding-agent/charter.yaml")) {
        Ok(c) => Arc::new(c.charter),
        Err(e) => panic!("the example charter does not compile:\n{e}"),
    };
    let s = ledger();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(s.records.len() as u64));
    group.sample_size(10);
    group.bench_function("replay", |b| {
        b.iter(|| {
            let mut engine = Engine::new(charter.clone());
            for r in &s.records {
                black_box(engine.ingest(r));
            }
            black_box(engine.stats())
        });
    });
    group.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
