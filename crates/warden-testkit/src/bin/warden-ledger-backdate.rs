//! `warden-ledger-backdate --ledger DATA/ledger.db --by-secs 10800` (or `--store URL
//! --instance ID --by-secs 10800`, one instance's chain in a fleet's PostgreSQL store): moves
//! every record of a stopped gateway's ledger back in time by the same amount and rehashes
//! the chain, so a few sessions recorded a minute ago read as history from hours ago. For the
//! observer's end-to-end tests: its profiles only learn from whole hours before the present
//! one, and an end-to-end test cannot wait an hour. The chain stays intact (`warden audit
//! verify` passes), the records keep their order, content and spacing; only their times move.
//! On PostgreSQL the instance's stored Merkle subtrees are recomputed from the new hashes in
//! the same transaction.

#![allow(clippy::print_stdout, reason = "a tool that reports what it did")]

use anyhow::{Context, bail};
use clap::Parser;
use rusqlite::Connection;
use sqlx::Row as _;
use time::Duration;
use warden_audit::chain::{GENESIS_HASH, format_time, parse_time, record_hash};
use warden_audit::merkle::{self, Frontier, STORED_LEVEL};
use warden_core::store::StoreLocation;
use warden_session::state_db::postgres::{self, PoolBounds};

/// Backdates a ledger.
#[derive(Debug, Parser)]
struct Args {
    /// The ledger's database (`<data>/ledger.db`); its gateway must be stopped.
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    ledger: Option<std::path::PathBuf>,
    /// Or the fleet's PostgreSQL store (with `--instance`); the instance must be stopped.
    #[arg(long, requires = "instance", value_name = "URL")]
    store: Option<String>,
    /// The instance whose chain is backdated (`<data>/instance` of its gateway).
    #[arg(long, requires = "store", value_name = "ID")]
    instance: Option<String>,
    /// How far back to move every record, in seconds.
    #[arg(long)]
    by_secs: i64,
}

/// One record as stored: sequence number, time, session, kind, payload.
type Row = (i64, String, Option<String>, String, String);

/// A record rehashed: its moved time, its new `prev_hash` and `hash`.
type Moved = (String, [u8; 32], [u8; 32]);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.by_secs <= 0 {
        bail!("--by-secs must be positive");
    }
    let n = match (&args.ledger, &args.store, &args.instance) {
        (Some(ledger), _, _) => sqlite(ledger, args.by_secs)?,
        (None, Some(store), Some(instance)) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(store_chain(store, instance, args.by_secs))?,
        _ => bail!("give `--ledger FILE`, or `--store URL --instance ID`"),
    };
    println!("backdated {n} records by {}s", args.by_secs);
    Ok(())
}

/// Each record's moved time and its new `(prev_hash, hash)`, in order.
fn rehash(rows: &[Row], by_secs: i64) -> anyhow::Result<Vec<Moved>> {
    let mut prev = GENESIS_HASH;
    let mut out = Vec::with_capacity(rows.len());
    for (seq, time, session, kind, payload) in rows {
        let moved = format_time(parse_time(time)? - Duration::seconds(by_secs))?;
        let hash = record_hash(
            &prev,
            u64::try_from(*seq)?,
            &moved,
            session.as_deref(),
            kind,
            payload,
        );
        out.push((moved, prev, hash));
        prev = hash;
    }
    Ok(out)
}

fn sqlite(ledger: &std::path::Path, by_secs: i64) -> anyhow::Result<usize> {
    let mut conn =
        Connection::open(ledger).with_context(|| format!("opening {}", ledger.display()))?;
    let tx = conn.transaction()?;
    let rows: Vec<Row> = {
        let mut stmt =
            tx.prepare("SELECT seq, time, session, kind, payload FROM records ORDER BY seq")?;
        let mapped = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        mapped.collect::<Result<_, _>>()?
    };
    for ((seq, ..), (moved, prev, hash)) in rows.iter().zip(rehash(&rows, by_secs)?) {
        tx.execute(
            "UPDATE records SET time = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![moved, prev.as_slice(), hash.as_slice(), seq],
        )?;
    }
    tx.commit()?;
    Ok(rows.len())
}

async fn store_chain(store: &str, instance: &str, by_secs: i64) -> anyhow::Result<usize> {
    let StoreLocation::Postgres(url) = StoreLocation::parse(store)? else {
        bail!("--store is not a PostgreSQL URL");
    };
    let pool = postgres::connect(&url, PoolBounds::default()).await?;
    let mut tx = pool.begin().await?;
    let rows: Vec<Row> = sqlx::query(
        "SELECT seq, time, session, kind, payload FROM ledger_records WHERE instance = $1 \
         ORDER BY seq FOR UPDATE",
    )
    .bind(instance)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| -> Result<Row, sqlx::Error> {
        Ok((
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        ))
    })
    .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        bail!("the store holds no record of instance `{instance}`");
    }
    let mut frontier = Frontier::new();
    let mut nodes = Vec::new();
    for ((seq, ..), (moved, prev, hash)) in rows.iter().zip(rehash(&rows, by_secs)?) {
        sqlx::query(
            "UPDATE ledger_records SET time = $1, prev_hash = $2, hash = $3 \
             WHERE instance = $4 AND seq = $5",
        )
        .bind(moved)
        .bind(prev.to_vec())
        .bind(hash.to_vec())
        .bind(instance)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        frontier.push(merkle::leaf_hash(&hash), |level, index, node| {
            if level >= STORED_LEVEL {
                nodes.push((level, index, *node));
            }
        });
    }
    sqlx::query("DELETE FROM ledger_tree_nodes WHERE instance = $1")
        .bind(instance)
        .execute(&mut *tx)
        .await?;
    for (level, index, node) in nodes {
        sqlx::query(
            "INSERT INTO ledger_tree_nodes (instance, level, idx, hash) VALUES ($1, $2, $3, $4)",
        )
        .bind(instance)
        .bind(i64::from(level))
        .bind(i64::try_from(index)?)
        .bind(node.to_vec())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    pool.close().await;
    Ok(rows.len())
}
