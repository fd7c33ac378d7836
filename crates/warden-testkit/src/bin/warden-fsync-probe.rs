//! `warden-fsync-probe --dir DIR --seconds 3`: the disk's durable-write floor, measured the way
//! the ledger pays it. Each write puts one 4 KiB page into a preallocated 4 MiB file (as a
//! SQLite WAL commit writes its frames into a WAL file it reuses) and waits for `fdatasync`
//! (SQLite's `synchronous=FULL` sync on Linux), one write at a time. Prints one JSON line:
//! `{"writes":…,"p50_us":…,"p90_us":…,"p99_us":…,"max_us":…}`, so a benchmark can print
//! warden's added latency as "this floor + warden's overhead". The file is removed at the end.

#![allow(clippy::print_stdout, reason = "a tool that prints its measurement")]

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

/// The page written per durable write.
const PAGE: usize = 4096;
/// The preallocated file's size: writes rotate through it, so no write grows the file.
const FILE_BYTES: u64 = 4 * 1024 * 1024;
/// At most this many writes, however long the run.
const MAX_WRITES: usize = 1_000_000;

/// Measures the durable-write floor of a directory's filesystem.
#[derive(Debug, Parser)]
struct Args {
    /// A directory on the filesystem to measure (the data directory's, for a benchmark).
    #[arg(long)]
    dir: PathBuf,
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600]");
    }
    let path = args
        .dir
        .join(format!(".warden-fsync-probe-{}", std::process::id()));
    let result = measure(&path, Duration::from_secs_f64(args.seconds));
    let removed = std::fs::remove_file(&path);
    let mut samples = result?;
    removed.with_context(|| format!("removing {}", path.display()))?;
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
        samples.get(rank - 1).copied().unwrap_or_default()
    };
    println!(
        "{}",
        serde_json::json!({
            "writes": samples.len(),
            "p50_us": at(0.50),
            "p90_us": at(0.90),
            "p99_us": at(0.99),
            "max_us": samples.last().copied().unwrap_or_default(),
        })
    );
    Ok(())
}

/// Writes and syncs pages for `run`, returning each write's latency in microseconds.
fn measure(path: &std::path::Path, run: Duration) -> anyhow::Result<Vec<u64>> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // Preallocate with real bytes and make the size durable, so the measured syncs carry data
    // only (as a reused WAL file's do).
    let page = [0x5au8; PAGE];
    for _ in 0..FILE_BYTES / PAGE as u64 {
        file.write_all(&page)?;
    }
    file.sync_all()?;
    let pages = FILE_BYTES / PAGE as u64;
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < run && samples.len() < MAX_WRITES {
        file.seek(SeekFrom::Start((n % pages) * PAGE as u64))?;
        let t = Instant::now();
        file.write_all(&page)?;
        file.sync_data()?;
        samples.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
        n += 1;
    }
    if samples.is_empty() {
        bail!("no write completed in {run:?}");
    }
    Ok(samples)
}
