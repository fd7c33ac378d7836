//! `warden-ledger-history --data DIR --agent ID --hours N --charter-hash H`: writes recorded
//! history into a data directory's ledger before a gateway starts on it — for the observer's
//! end-to-end tests, whose baselines are learned from hours of behaviour a test cannot wait
//! for. It uses warden's own ledger (`warden_audit::Ledger`) with a clock set in the past, so
//! the records are hash-chained exactly as a gateway writes them: `warden audit verify`
//! passes, and the gateway started afterwards continues the chain.
//!
//! With `--store URL --instance ID` the history is written to that instance's chain in a
//! fleet's PostgreSQL store (migrated first), and `DIR/instance` names the instance, so the
//! gateway started on `DIR` with `--store URL` continues that chain.
//!
//! The history: a `charter_loaded` of `--charter-hash`, then for each of the `--hours` hours
//! before the last full one, a session of the agent reading `--per-minute` files a minute for
//! `--minutes` minutes under `--dir` (each read attempted and allowed).

#![allow(clippy::print_stdout, reason = "a tool that reports what it wrote")]

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use serde_json::json;
use warden_audit::{Ledger, LedgerConfig, NewRecord, RecordKind};
use warden_core::store::StoreLocation;
use warden_core::{InstanceId, ManualClock};
use warden_session::state_db::postgres::{self, PoolBounds};

/// Writes recorded history into a ledger.
#[derive(Debug, Parser)]
struct Args {
    /// The gateway's data directory (the ledger is `ledger.db` in it).
    #[arg(long)]
    data: std::path::PathBuf,
    /// The agent (the charter's identity id).
    #[arg(long)]
    agent: String,
    /// The principal its sessions act for.
    #[arg(long, default_value = "alice")]
    user: String,
    /// The charter hash the history was recorded under (`blake3:…`).
    #[arg(long)]
    charter_hash: String,
    /// Hours of history.
    #[arg(long, default_value_t = 3)]
    hours: u32,
    /// Active minutes an hour.
    #[arg(long, default_value_t = 10)]
    minutes: u32,
    /// Reads a minute.
    #[arg(long, default_value_t = 2)]
    per_minute: u32,
    /// The directory the reads are in.
    #[arg(long)]
    dir: String,
    /// Write to this fleet's PostgreSQL store instead of `DIR/ledger.db` (with `--instance`).
    #[arg(long, requires = "instance", value_name = "URL")]
    store: Option<String>,
    /// The instance whose chain gets the history; written to `DIR/instance`.
    #[arg(long, requires = "store", value_name = "ID")]
    instance: Option<String>,
}

/// The ledger the history goes to: `DIR/ledger.db`, or the instance's chain in the store.
async fn open(a: &Args, clock: Arc<ManualClock>) -> anyhow::Result<Ledger> {
    let (Some(store), Some(instance)) = (&a.store, &a.instance) else {
        return Ok(Ledger::open(&a.data, clock, LedgerConfig::default()).await?);
    };
    let StoreLocation::Postgres(url) = StoreLocation::parse(store)? else {
        anyhow::bail!("--store is not a PostgreSQL URL");
    };
    let id = InstanceId::parse(instance)?;
    let pool = postgres::connect(&url, PoolBounds::default()).await?;
    postgres::migrate(&pool).await?;
    let path = a.data.join("instance");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(id.as_str().as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Ledger::open_postgres(pool, &id, &a.data, clock, LedgerConfig::default(), None).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let now = time::OffsetDateTime::now_utc();
    let hour = |h: u32| {
        let start = now - time::Duration::hours(i64::from(h) + 1);
        start
            .replace_minute(0)
            .unwrap_or(start)
            .replace_second(0)
            .unwrap_or(start)
    };
    let clock = Arc::new(ManualClock::new(hour(a.hours)));
    warden_core::private::private_dir(&a.data)?;
    let ledger = open(&a, clock.clone()).await?;
    let append = |session: Option<String>, kind, payload| {
        let ledger = ledger.clone();
        async move {
            ledger
                .append(NewRecord {
                    session,
                    kind,
                    payload,
                })
                .await
        }
    };
    append(
        None,
        RecordKind::CharterLoaded,
        json!({ "charter": a.charter_hash, "agent": a.agent, "files": ["charter.yaml"], "rules": 1 }),
    )
    .await?;
    let mut written = 1u64;
    for h in (1..=a.hours).rev() {
        clock.set(hour(h) + time::Duration::minutes(5));
        let sid = format!("history-{h}");
        append(
            Some(sid.clone()),
            RecordKind::SessionOpened,
            json!({ "session": sid, "agent": a.agent, "principal": a.user, "roles": [],
                    "task": "recorded history", "by": "history" }),
        )
        .await?;
        written += 1;
        for m in 0..a.minutes {
            for r in 0..a.per_minute {
                clock.advance(time::Duration::seconds(60 / i64::from(a.per_minute.max(1))));
                let action = format!("h{h}-{m}-{r}");
                let path = format!("{}/file-{m}-{r}.txt", a.dir.trim_end_matches('/'));
                append(
                    Some(sid.clone()),
                    RecordKind::ActionAttempted,
                    json!({ "action": action, "via": "mcp", "tool": "fs.read_file", "arguments": { "path": path } }),
                )
                .await?;
                append(
                    Some(sid.clone()),
                    RecordKind::ActionDecided,
                    json!({ "action": action, "decision": { "tier": "autonomous", "verdict": "allow",
                            "reason": "rule", "rules": [], "posture": "normal", "charter": a.charter_hash } }),
                )
                .await?;
                written += 2;
            }
        }
    }
    ledger.shutdown().await?;
    println!("wrote {written} records of history");
    Ok(())
}
