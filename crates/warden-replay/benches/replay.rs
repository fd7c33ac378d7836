#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "a benchmark: a failure is a failed run, and it prints its figures"
)]
//! `cargo bench -p warden-replay --bench replay`: the replay of a ledger of
//! `WARDEN_BENCH_REPLAY_ATTEMPTS` recorded attempts (default 1,000,000) under the charter that
//! decided them and under a tightened one, through `LedgerReader` as `warden replay` reads it.
//!
//! The ledger is written once by the real writer (`warden_audit::Ledger`, hash chain and
//! Merkle tree, batches of 4,096 records) and cached under the target directory
//! (`tmp/warden-replay/<attempts>/`; delete it to rebuild). Sessions of 1,000 attempts, 20
//! open at a time, each living 2 minutes of ledger time (one attempt a millisecond), so that
//! expired sessions are dropped as the replay goes. Per session and ten attempts: five reads,
//! one read of a secret (a `confidential` label), one mail (denied after the label), one
//! write, one prohibited delete, one preapproved refund (counted in its scope); allowed ones
//! are forwarded, one in five with a result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use time::OffsetDateTime;
use warden_audit::{Ledger, LedgerConfig, LedgerReader, NewRecord, RecordKind};
use warden_charter::{CompiledCharter, Source, compile};
use warden_core::{ManualClock, Tier, TrustedSource, Verdict};
use warden_pdp::{Controls, Request, RuleUsage, decide};
use warden_provenance::{Limits, SessionProvenance};
use warden_replay::Options;

const CHARTER: &str = r#"
version: 1
identity: { id: bench, name: B, purpose: p, serves: s }
inventory:
  servers:
    - { id: fs, command: [x], tools: [read, write, delete] }
    - { id: mail, command: [x], tools: [send] }
    - { id: pay, command: [x], tools: [refund] }
actions:
  approval: { timeout: 30m }
  rules:
    - { id: read, tool: fs.read, tier: autonomous, args: { path: { glob: "/ws/**" } } }
    - { id: write-notes, tool: fs.write, tier: autonomous, args: { path: { glob: "/ws/notes/**" } } }
    - { id: no-delete, tool: fs.delete, tier: prohibited }
    - { id: send, tool: mail.send, tier: autonomous, args: { to: { regex: '^[a-z]+@example\.com$' } } }
    - id: send-confidential
      tool: mail.send
      tier: prohibited
      labels: { any: [confidential] }
    - id: refund
      tool: pay.refund
      tier: preapproved
      args: { amount: { max: 50 } }
      scope: { per_session: 100000, per_day: 10000000, spend: { argument: amount, per_day: 100000000 } }
authority:
  roles: [{ id: user, approve: ["*", default] }]
  principals: [{ id: alice, roles: [user] }]
data:
  labels: [{ id: confidential }]
  sources:
    - { label: confidential, tool: fs.read, path: "/ws/secret/**" }
"#;

const PER_SESSION: u64 = 1000;
const OPEN_AT_ONCE: u64 = 20;
const BATCH: usize = 4096;

fn charter(text: &str) -> CompiledCharter {
    compile(&[Source::new("bench.yaml", text)])
        .unwrap_or_else(|d| panic!("{d}"))
        .charter
}

struct Gen {
    labels: Vec<Arc<str>>,
    usage: HashMap<String, RuleUsage>,
    provenance: SessionProvenance,
}

async fn build(dir: &Path, attempts: u64) {
    let live = charter(CHARTER);
    let start = OffsetDateTime::from_unix_timestamp(1_764_547_200).unwrap(); // 2025-12-01
    let clock = Arc::new(ManualClock::new(start));
    std::fs::create_dir_all(dir).unwrap();
    let ledger = Ledger::open(dir, clock.clone(), LedgerConfig::default())
        .await
        .unwrap();
    let mut batch: Vec<NewRecord> = Vec::with_capacity(BATCH + 8);
    let mut day: HashMap<String, u32> = HashMap::new();
    let blocks = attempts.div_ceil(PER_SESSION * OPEN_AT_ONCE);
    let mut n = 0u64;
    for block in 0..blocks {
        let mut sessions: Vec<(String, Gen)> = (0..OPEN_AT_ONCE)
            .map(|i| {
                let id = format!("s{block}-{i}");
                let expires = clock_now(&clock) + time::Duration::minutes(2);
                batch.push(NewRecord::new(
                    Some(&id),
                    RecordKind::SessionOpened,
                    json!({ "session": id, "agent": "bench", "principal": "alice", "task": "bench",
                            "expires_at": warden_core::text::rfc3339(expires) }),
                ));
                let mut provenance = SessionProvenance::new(Limits::default());
                provenance
                    .add_trusted("bench", TrustedSource::Task)
                    .unwrap();
                (
                    id,
                    Gen {
                        labels: Vec::new(),
                        usage: HashMap::new(),
                        provenance,
                    },
                )
            })
            .collect();
        for k in 0..PER_SESSION {
            for (id, g) in &mut sessions {
                if n >= attempts {
                    break;
                }
                n += 1;
                clock.advance(time::Duration::microseconds(1000 / OPEN_AT_ONCE as i64));
                let (tool, args) = match k % 10 {
                    0..=4 => ("fs.read", json!({ "path": format!("/ws/src/f{k}.rs") })),
                    5 => ("fs.read", json!({ "path": "/ws/secret/key" })),
                    6 => (
                        "mail.send",
                        json!({ "to": "carol@example.com", "body": "status" }),
                    ),
                    7 => (
                        "fs.write",
                        json!({ "path": "/ws/notes/n.md", "content": "note" }),
                    ),
                    8 => ("fs.delete", json!({ "path": "/ws/src/main.rs" })),
                    _ => ("pay.refund", json!({ "amount": 1 })),
                };
                let mut usage = g.usage.clone();
                for (rule, c) in &day {
                    usage.entry(rule.clone()).or_default().day_count = *c;
                }
                let now = clock_now(&clock);
                let decision = decide(
                    &live,
                    &Request {
                        tool,
                        args: &args,
                        principal: Some("alice"),
                        labels: &g.labels,
                        provenance: &g.provenance,
                        controls: Controls::default(),
                        usage: &usage,
                        now,
                    },
                );
                if decision.verdict == Verdict::Allow && decision.tier == Tier::Preapproved {
                    for r in &decision.rules {
                        g.usage.entry(r.id.to_string()).or_default().session_count += 1;
                        *day.entry(r.id.to_string()).or_default() += 1;
                    }
                }
                let action = format!("a{n}");
                let sid = Some(id.as_str());
                batch.push(NewRecord::new(
                    sid,
                    RecordKind::ActionAttempted,
                    json!({ "action": action, "via": "mcp", "tool": tool, "arguments": args }),
                ));
                let allowed = decision.verdict == Verdict::Allow;
                batch.push(NewRecord::new(
                    sid,
                    RecordKind::ActionDecided,
                    json!({ "action": action, "decision": decision }),
                ));
                if allowed {
                    let labels = warden_pdp::action_labels(&live, tool, &args);
                    let added: Vec<Arc<str>> = labels
                        .into_iter()
                        .filter(|l| !g.labels.contains(l))
                        .collect();
                    if !added.is_empty() {
                        g.labels.extend(added.iter().cloned());
                        g.labels.sort();
                        batch.push(NewRecord::new(
                            sid,
                            RecordKind::LabelsAdded,
                            json!({ "action": action, "labels": added }),
                        ));
                    }
                    batch.push(NewRecord::new(
                        sid,
                        RecordKind::ActionForwarded,
                        json!({ "action": action, "tool": tool }),
                    ));
                    if n.is_multiple_of(5) {
                        batch.push(NewRecord::new(
                            sid,
                            RecordKind::ActionResult,
                            json!({ "action": action, "status": "ok", "size_bytes": 24, "duration_ms": 1,
                                    "content": [{ "type": "text", "text": "fn main() { /* … */ }" }] }),
                        ));
                    }
                }
                if batch.len() >= BATCH {
                    ledger
                        .append_batch(std::mem::take(&mut batch))
                        .await
                        .unwrap();
                }
            }
        }
    }
    if !batch.is_empty() {
        ledger.append_batch(batch).await.unwrap();
    }
    ledger.shutdown().await.unwrap();
}

fn clock_now(clock: &ManualClock) -> OffsetDateTime {
    use warden_core::Clock;
    clock.now()
}

/// The process's CPU time so far (user + system), in seconds (`/proc/self/stat`, 100 ticks a
/// second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let attempts: u64 = std::env::var("WARDEN_BENCH_REPLAY_ATTEMPTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    // `cargo bench` passes `--bench`; a filter argument that is not ours skips the run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && a != "replay")
    {
        return;
    }
    let dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("warden-replay")
        .join(attempts.to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if !dir.join("ledger.db").exists() {
            let t = Instant::now();
            build(&dir, attempts).await;
            println!("built a ledger of {attempts} attempts in {:.1} s ({})", t.elapsed().as_secs_f64(), dir.display());
        }
        let same = charter(CHARTER);
        let tight = charter(&CHARTER.replace(
            "{ id: write-notes, tool: fs.write, tier: autonomous,",
            "{ id: write-notes, tool: fs.write, tier: approval,",
        ));
        for (name, candidate) in [("same charter", &same), ("tightened", &tight), ("same charter", &same)] {
            let reader = LedgerReader::open(&dir).await.unwrap();
            let t = Instant::now();
            let cpu = cpu_seconds();
            let report = warden_replay::replay(&reader, candidate, &Options::default())
                .await
                .unwrap();
            let secs = t.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu;
            reader.close().await;
            let tt = &report.totals;
            println!(
                "replay/{name}: {} records, {} attempts in {secs:.2} s ({:.0} attempts/s, {cpu:.2} s of CPU); {} changed, {} not reproducible, {} malformed; peak RSS {} MiB",
                report.ledger.records,
                tt.attempts,
                tt.attempts as f64 / secs,
                tt.changed,
                tt.not_reproducible,
                tt.malformed,
                peak_rss_kib().unwrap_or(0) / 1024,
            );
        }
    });
}
