//! The engine's throughput and memory on a synthetic, realistic ledger: a day of benign
//! history, then 10,000 sessions active at once, each taking model turns that propose the
//! actions it then attempts (attempt and decision records), some reading files in new
//! directories, some carrying labels. The records are generated in rounds and dropped once
//! ingested, so the resident set measured at the end is the engine's state (plus the
//! process's baseline, printed too).
//!
//! Run: `cargo run --release -p warden-observer --example observer_load [sessions] [rounds]`.
//! Prints `records`, `seconds`, `records_per_second`, `sessions`, `rss_before_mib`,
//! `rss_after_mib`, `engine_mib` as `key=value` lines.

#![allow(clippy::panic, reason = "an example: a broken charter ends it")]

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use warden_observer::Engine;
use warden_observer::synth::{Rng, Synth};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let charter = match warden_charter::load(&root.join("coding-agent/charter.yaml")) {
        Ok(c) => Arc::new(c.charter),
        Err(e) => panic!("the example charter does not compile:\n{e}"),
    };
    let before = rss_kib();
    let mut engine = Engine::new(charter);
    let mut rng = Rng::new(7);
    let mut s = Synth::new(1_796_083_200_000);
    let mut records = 0u64;
    let mut busy = std::time::Duration::ZERO;
    let mut feed = |engine: &mut Engine, s: &mut Synth| {
        let batch = std::mem::take(&mut s.records);
        let t = Instant::now();
        for r in &batch {
            std::hint::black_box(engine.ingest(r));
        }
        busy += t.elapsed();
        records += batch.len() as u64;
    };
    // A day of history.
    for _ in 0..24 {
        s.benign(
            &mut rng,
            "coding-agent",
            4,
            &["/workspace/src", "/workspace/docs"],
            &["fs.read_file", "fs.write_file", "git.status"],
        );
        s.advance(1_800_000);
        feed(&mut engine, &mut s);
    }
    // Then `sessions` sessions at once.
    let ids: Vec<String> = (0..sessions).map(|i| format!("live-{i}")).collect();
    for id in &ids {
        s.open(id, "coding-agent", "alice");
    }
    feed(&mut engine, &mut s);
    for round in 0..rounds {
        for (i, id) in ids.iter().enumerate() {
            s.advance(3);
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
            if i % 97 == 0 {
                s.labels(id, &["credentials"]);
            }
        }
        feed(&mut engine, &mut s);
    }
    let after = rss_kib();
    let secs = busy.as_secs_f64();
    println!("records={records}");
    println!("seconds={secs:.3}");
    println!("records_per_second={:.0}", records as f64 / secs.max(1e-9));
    println!("sessions={}", engine.stats().sessions);
    println!("rss_before_mib={:.1}", before as f64 / 1024.0);
    println!("rss_after_mib={:.1}", after as f64 / 1024.0);
    println!(
        "engine_mib={:.1}",
        after.saturating_sub(before) as f64 / 1024.0
    );
    println!("responses={}", engine.stats().responses);
}
