//! Deciding a preapproved rule on PostgreSQL under contention: three scope counters (three
//! "instances", each its own pool) on one database, 16 tasks each (each task its own
//! session), for a few seconds each phase:
//! 1. `per_day`: every decision reads, decides and counts the same rule's day counter (the
//!    hottest row there is: the decisions serialise on it);
//! 2. `per_session`: each session's own counter (no two tasks share a row).
//!
//! Prints calls per second (and how many escalated, which must be none: the limits are never
//! reached).
//!
//! `cargo bench -p warden-gateway --bench shared_counters` (PostgreSQL must be installed; with
//! `WARDEN_TEST_PG_URL` set it uses that cluster).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    clippy::cast_precision_loss,
    reason = "benchmark code"
)]
#![allow(missing_docs, reason = "bench binary")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use warden_charter::Source;
use warden_core::StoreLocation;
use warden_core::{Posture, Tier, Verdict};
use warden_pdp::{Controls, Request, decide};
use warden_session::{PoolBounds, ScopeCounters, StateDb};

const CHARTER: &str = r#"version: 1
identity: { id: agent-1, name: Agent, purpose: bench, serves: the bench }
inventory:
  servers:
    - { id: api, tools: [pay, note] }
actions:
  rules:
    - { id: pay, tool: api.pay, tier: preapproved, scope: { per_day: 100000000 } }
    - { id: note, tool: api.note, tier: preapproved, scope: { per_session: 100000000 } }
authority:
  roles:
    - { id: ops, approve: [default] }
  principals:
    - { id: alice, roles: [ops] }
"#;

const INSTANCES: usize = 3;
const TASKS: usize = 16;
const RUN: Duration = Duration::from_secs(5);

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        run("per_day", "api.pay").await?;
        run("per_session", "api.note").await
    })
}

async fn run(phase: &str, tool: &'static str) -> anyhow::Result<()> {
    let db = warden_testkit::postgres::TestDb::new().await?;
    let dir = tempfile::tempdir()?;
    let location = StoreLocation::parse(db.url()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let charter = Arc::new(
        warden_charter::compile(&[Source::new("charter.yaml", CHARTER)])
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .charter,
    );
    let mut counters = Vec::new();
    for _ in 0..INSTANCES {
        let state = StateDb::connect(&location, dir.path(), PoolBounds::default()).await?;
        counters.push(Arc::new(ScopeCounters::open(&state).await?));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (done, escalated) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for (i, c) in counters.iter().enumerate() {
        for t in 0..TASKS {
            let (c, charter, stop) = (c.clone(), charter.clone(), stop.clone());
            let (done, escalated) = (done.clone(), escalated.clone());
            tasks.push(tokio::spawn(async move {
                let args = json!({});
                let session = format!("s-{i}-{t}");
                while !stop.load(Ordering::Relaxed) {
                    let now = time::OffsetDateTime::now_utc();
                    let (d, _) = c
                        .decide_and_count_async(&charter, &session, now, &args, |usage| {
                            decide(
                                &charter,
                                &Request {
                                    tool,
                                    args: &args,
                                    principal: Some("alice"),
                                    labels: &[],
                                    provenance: warden_provenance::SessionProvenance::empty(),
                                    controls: Controls {
                                        posture: Posture::Normal,
                                        session_revoked: false,
                                        tool_frozen: false,
                                    },
                                    usage,
                                    now,
                                },
                            )
                        })
                        .await?;
                    if d.verdict != Verdict::Allow || d.tier != Tier::Preapproved {
                        escalated.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            }));
        }
    }
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "shared scope counters, {phase}: {INSTANCES} instances x {TASKS} tasks: {n} decisions in {secs:.1} s = {:.0} calls/s ({} escalated)",
        n as f64 / secs,
        escalated.load(Ordering::Relaxed)
    );
    Ok(())
}
