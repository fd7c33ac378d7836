//! One sink's task: it follows the ledger's committed head, reads the next batch after the
//! sink's cursor, sends it (retrying until the sink takes it, or the gateway stops), and only
//! then moves the cursor; it keeps the lag metric, and appends `export_lagging` /
//! `export_recovered` when the sink crosses its limits ([`crate::lag`]).

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warden_audit::{Ledger, LedgerReader};
use warden_telemetry::{ExportMetrics, Telemetry};

use crate::batch::{self, Batch};
use crate::cursor::Cursor;
use crate::file::FileSink;
use crate::http::HttpSink;
use crate::lag::LagWatch;
use crate::retry::{Failure, RetryPolicy};
use crate::{ExportError, SinkConfig, Target};

/// How long the records left at stop may take to send, in all (one try each).
pub const FINAL_FLUSH: Duration = Duration::from_secs(3);

/// How often an idle sink looks at its lag (a recovery waiting for its minute is announced).
const TICK: Duration = Duration::from_secs(5);

/// What an exporter did, for tests and benchmarks: the bound on its buffer is checked here.
#[derive(Debug, Default)]
pub struct Stats {
    /// The most records one batch held.
    pub max_batch_records: AtomicUsize,
    /// The most JSON-line bytes one batch held.
    pub max_batch_bytes: AtomicUsize,
    /// Batches the sink acknowledged.
    pub batches: AtomicU64,
    /// The last record the sink acknowledged.
    pub acked: AtomicU64,
    /// Deliveries that failed.
    pub failures: AtomicU64,
}

/// Where a batch goes.
#[derive(Debug)]
enum Sink {
    File(Arc<Mutex<FileSink>>),
    Http(HttpSink),
}

impl Sink {
    async fn send(&self, batch: &Arc<Batch>) -> Result<(), Failure> {
        match self {
            Sink::Http(h) => h.send(batch).await,
            Sink::File(f) => {
                let (f, batch) = (f.clone(), batch.clone());
                tokio::task::spawn_blocking(move || {
                    f.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .write(&batch)
                        .map_err(|e| Failure::transient(e.to_string()))
                })
                .await
                .unwrap_or_else(|_| Err(Failure::transient("the file write did not finish")))
            }
        }
    }
}

/// One export sink, opened and ready to run.
#[derive(Debug)]
pub struct Exporter {
    config: SinkConfig,
    sink: Sink,
    cursor: Cursor,
    acked: u64,
    retry: RetryPolicy,
    announce_every: Duration,
    stats: Arc<Stats>,
}

impl Exporter {
    /// Opens sink `config` of the ledger in `data_dir` (whose id is `ledger_id`): loads its
    /// cursor and checks it against the ledger's head, and, for a file sink, reads what its
    /// directory holds (cutting a torn last line) and checks that it continues this ledger.
    /// Any doubt is an error: a sink never starts by skipping records.
    pub async fn open(
        config: SinkConfig,
        data_dir: &Path,
        reader: &LedgerReader,
        ledger_id: &str,
    ) -> Result<Exporter, ExportError> {
        let cursor = Cursor::load(data_dir, &config.name)?;
        let head = reader.tail(1).await?.last().map_or(0, |r| r.seq);
        if cursor.get() > head {
            return Err(ExportError::CursorAhead {
                path: cursor.path().to_path_buf(),
                cursor: cursor.get(),
                head,
            });
        }
        let (sink, acked) = match &config.target {
            Target::File { dir } => {
                let (dir, max) = (dir.clone(), config.max_file_bytes);
                let opened = tokio::task::spawn_blocking(move || FileSink::open(&dir, max))
                    .await
                    .map_err(|_| ExportError::Setup {
                        sink: config.name.clone(),
                        reason: "its directory could not be read".to_owned(),
                    })??;
                let (sink, written) = opened;
                let start = match written {
                    None => cursor.get(),
                    Some(w) => {
                        check_continues(&config, reader, head, &w).await?;
                        if w.seq < cursor.get() {
                            tracing::warn!(sink = %config.name, written = w.seq, cursor = cursor.get(), "The file export holds fewer records than its cursor says; the missing ones are written again.");
                        }
                        w.seq
                    }
                };
                (Sink::File(Arc::new(Mutex::new(sink))), start)
            }
            Target::Http { url, headers } => (
                Sink::Http(HttpSink::json(&config.name, url, headers, ledger_id)?),
                cursor.get(),
            ),
            Target::OtlpLogs { endpoint, headers } => (
                Sink::Http(HttpSink::otlp_logs(
                    &config.name,
                    endpoint,
                    headers,
                    ledger_id,
                )?),
                cursor.get(),
            ),
        };
        let stats = Arc::new(Stats::default());
        stats.acked.store(acked, Ordering::Release);
        Ok(Exporter {
            config,
            sink,
            cursor,
            acked,
            retry: RetryPolicy::default(),
            announce_every: crate::lag::ANNOUNCE_EVERY,
            stats,
        })
    }

    /// The same exporter with other retry delays (tests use short ones).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Exporter {
        self.retry = retry;
        self
    }

    /// The same exporter with another least time between two lag records (tests use a short
    /// one; the default is [`crate::lag::ANNOUNCE_EVERY`]).
    pub fn with_announce_every(mut self, every: Duration) -> Exporter {
        self.announce_every = every;
        self
    }

    /// What it did (shared: it keeps counting while it runs).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The last record the sink acknowledged before this run: it resumes after it.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Exports every record after the cursor, following `head`, until `stop` or until the
    /// ledger closes; then sends what is left, one try per batch within [`FINAL_FLUSH`], and
    /// returns. `ledger` takes the `export_lagging` / `export_recovered` records. Spawn it on
    /// a task tracker; it never returns an error (problems are logged and counted).
    pub async fn run(
        mut self,
        reader: LedgerReader,
        mut head: watch::Receiver<u64>,
        ledger: Ledger,
        telemetry: Arc<Telemetry>,
        stop: CancellationToken,
    ) {
        let metrics = telemetry.export_sink(&self.config.name);
        let mut lag = LagWatch::new(
            &self.config.name,
            self.config.max_lag_records,
            self.config.max_lag,
        )
        .every(self.announce_every);
        tracing::info!(sink = %self.config.name, kind = self.config.kind(), from = self.acked.saturating_add(1), "Export sink started.");
        let mut gap_reported = false;
        'follow: loop {
            let committed = *head.borrow_and_update();
            metrics.set_lag(committed.saturating_sub(self.acked));
            announce(&mut lag, self.acked, committed, &ledger).await;
            if self.acked < committed {
                let batch = match batch::read(&reader, self.acked.saturating_add(1)).await {
                    Ok(b) => Arc::new(b),
                    Err(e) => {
                        tracing::warn!(sink = %self.config.name, error = %e, "The export could not read the ledger; it tries again.");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue 'follow,
                            () = stop.cancelled() => break 'follow,
                        }
                    }
                };
                if let Some(first) = batch.first() {
                    if first > self.acked.saturating_add(1) && !gap_reported {
                        gap_reported = true;
                        tracing::warn!(sink = %self.config.name, from = self.acked.saturating_add(1), to = first.saturating_sub(1), "Records are not in the ledger (pruned); the export continues after them.");
                    }
                    if !self
                        .deliver(&batch, &mut lag, &metrics, &head, &ledger, &stop)
                        .await
                    {
                        break 'follow;
                    }
                    continue 'follow;
                }
            }
            tokio::select! {
                changed = head.changed() => if changed.is_err() { break },
                () = stop.cancelled() => break,
                () = tokio::time::sleep(TICK.min(self.announce_every)) => {}
            }
        }
        self.final_flush(&reader, &metrics).await;
        tracing::info!(sink = %self.config.name, acked = self.acked, "Export sink stopped.");
    }

    /// Sends `batch` until the sink takes it (then moves the cursor: `true`) or `stop`.
    async fn deliver(
        &mut self,
        batch: &Arc<Batch>,
        lag: &mut LagWatch,
        metrics: &ExportMetrics,
        head: &watch::Receiver<u64>,
        ledger: &Ledger,
        stop: &CancellationToken,
    ) -> bool {
        self.stats
            .max_batch_records
            .fetch_max(batch.len(), Ordering::AcqRel);
        self.stats
            .max_batch_bytes
            .fetch_max(batch.bytes, Ordering::AcqRel);
        let mut attempt = 0u32;
        loop {
            let sent = tokio::select! {
                r = self.sink.send(batch) => r,
                () = stop.cancelled() => return false,
            };
            match sent {
                Ok(()) => {
                    lag.succeeded();
                    self.acknowledged(batch, metrics).await;
                    return true;
                }
                Err(failure) => {
                    attempt = attempt.saturating_add(1);
                    metrics.failure();
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    lag.failed(Instant::now(), &failure.reason);
                    if attempt == 1 || attempt.is_multiple_of(20) {
                        tracing::warn!(sink = %self.config.name, reason = %failure.reason, attempt, "An export batch was not delivered; it is retried (the ledger keeps the records).");
                    }
                    let committed = *head.borrow();
                    metrics.set_lag(committed.saturating_sub(self.acked));
                    announce(lag, self.acked, committed, ledger).await;
                    tokio::select! {
                        () = tokio::time::sleep(self.retry.delay(attempt, &failure)) => {}
                        () = stop.cancelled() => return false,
                    }
                }
            }
        }
    }

    /// The sink took `batch`: the cursor moves (atomically, on disk) and it is counted.
    async fn acknowledged(&mut self, batch: &Batch, metrics: &ExportMetrics) {
        let Some(last) = batch.last() else { return };
        self.acked = last;
        self.stats.acked.store(last, Ordering::Release);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        metrics.exported(u64::try_from(batch.len()).unwrap_or(u64::MAX));
        let mut cursor = self.cursor.clone();
        let stored = tokio::task::spawn_blocking(move || cursor.store(last).map(|()| cursor)).await;
        match stored {
            Ok(Ok(cursor)) => self.cursor = cursor,
            Ok(Err(e)) => {
                tracing::error!(sink = %self.config.name, error = %e, "The export cursor could not be written; after a restart the sink may get records again.");
            }
            Err(_) => {
                tracing::error!(sink = %self.config.name, "The export cursor write did not finish.");
            }
        }
    }

    /// At stop: what the ledger holds after the cursor, one try per batch, within
    /// [`FINAL_FLUSH`] in all.
    async fn final_flush(&mut self, reader: &LedgerReader, metrics: &ExportMetrics) {
        let flush = async {
            loop {
                let batch = match batch::read(reader, self.acked.saturating_add(1)).await {
                    Ok(b) if !b.is_empty() => Arc::new(b),
                    _ => return,
                };
                match self.sink.send(&batch).await {
                    Ok(()) => self.acknowledged(&batch, metrics).await,
                    Err(f) => {
                        metrics.failure();
                        tracing::warn!(sink = %self.config.name, reason = %f.reason, acked = self.acked, "The export's last records were not delivered at stop; the sink gets them after the next start.");
                        return;
                    }
                }
            }
        };
        if tokio::time::timeout(FINAL_FLUSH, flush).await.is_err() {
            tracing::warn!(sink = %self.config.name, acked = self.acked, "The export's final flush ran out of time; the sink gets the rest after the next start.");
        }
    }
}

/// Appends the lag record `lag` calls for now, if any.
async fn announce(lag: &mut LagWatch, acked: u64, head: u64, ledger: &Ledger) {
    let Some(record) = lag.check(Instant::now(), acked, head) else {
        return;
    };
    let lagging = record.kind == warden_core::RecordKind::ExportLagging;
    let sink = record.payload.get("sink").cloned().unwrap_or_default();
    match ledger.append(record).await {
        Ok(_) if lagging => {
            tracing::warn!(sink = %sink, acked, head, "An export sink is lagging; `export_lagging` recorded.");
        }
        Ok(_) => {
            tracing::info!(sink = %sink, acked, head, "An export sink caught up; `export_recovered` recorded.")
        }
        Err(e) => {
            tracing::warn!(sink = %sink, error = %e, "The export's lag record could not be appended.")
        }
    }
}

/// A file export's last record must be this ledger's record of that number.
async fn check_continues(
    config: &SinkConfig,
    reader: &LedgerReader,
    head: u64,
    written: &crate::file::Written,
) -> Result<(), ExportError> {
    let Target::File { dir } = &config.target else {
        return Ok(());
    };
    let mismatch = |reason: String| ExportError::Mismatch {
        dir: dir.clone(),
        reason,
    };
    if written.seq > head {
        return Err(mismatch(format!(
            "it holds record {} but the ledger ends at {head}",
            written.seq
        )));
    }
    if let (Some(hash), Some(record)) = (&written.hash, reader.get(written.seq).await?)
        && *hash != warden_core::canonical::hex(&record.hash)
    {
        return Err(mismatch(format!(
            "its record {} has another hash than the ledger's",
            written.seq
        )));
    }
    Ok(())
}
