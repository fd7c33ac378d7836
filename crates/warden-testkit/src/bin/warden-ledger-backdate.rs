//! `warden-ledger-backdate --ledger DATA/ledger.db --by-secs 10800`: moves every record of a
//! stopped gateway's ledger back in time by the same amount and rehashes the chain, so a few
//! sessions recorded a minute ago read as history from hours ago. For the observer's
//! end-to-end tests: its profiles only learn from whole hours before the present one, and an
//! end-to-end test cannot wait an hour. The chain stays intact (`warden audit verify` passes),
//! the records keep their order, content and spacing; only their times move.

#![allow(clippy::print_stdout, reason = "a tool that reports what it did")]

use anyhow::{Context, bail};
use clap::Parser;
use rusqlite::Connection;
use time::Duration;
use warden_audit::chain::{GENESIS_HASH, format_time, parse_time, record_hash};

/// Backdates a ledger.
#[derive(Debug, Parser)]
struct Args {
    /// The ledger's database (`<data>/ledger.db`); its gateway must be stopped.
    #[arg(long)]
    ledger: std::path::PathBuf,
    /// How far back to move every record, in seconds.
    #[arg(long)]
    by_secs: i64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.by_secs <= 0 {
        bail!("--by-secs must be positive");
    }
    let mut conn = Connection::open(&args.ledger)
        .with_context(|| format!("opening {}", args.ledger.display()))?;
    let tx = conn.transaction()?;
    let rows: Vec<(i64, String, Option<String>, String, String)> = {
        let mut stmt =
            tx.prepare("SELECT seq, time, session, kind, payload FROM records ORDER BY seq")?;
        let mapped = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        mapped.collect::<Result<_, _>>()?
    };
    let mut prev = GENESIS_HASH;
    for (seq, time, session, kind, payload) in &rows {
        let moved = format_time(parse_time(time)? - Duration::seconds(args.by_secs))?;
        let seq_u = u64::try_from(*seq)?;
        let hash = record_hash(&prev, seq_u, &moved, session.as_deref(), kind, payload);
        tx.execute(
            "UPDATE records SET time = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![moved, prev.as_slice(), hash.as_slice(), seq],
        )?;
        prev = hash;
    }
    tx.commit()?;
    println!("backdated {} records by {}s", rows.len(), args.by_secs);
    Ok(())
}
