//! What both writers (SQLite, `writer.rs`; PostgreSQL, `postgres/writer.rs`) share: the
//! commands the handles send, the groups they are drained into, the appends queued without a
//! waiting caller and carried to the next group when theirs failed, and where a commit is
//! published.
//!
//! The queue is FIFO and a group is committed whole or not at all, so records commit in the
//! order their appends were queued. A queued append (one whose caller did not wait, see
//! [`Ledger::append_queued`](super::Ledger::append_queued)) whose group failed is carried to
//! the front of the next group and retried (after a pause growing to
//! [`MAX_RETRY_PAUSE`]); nothing queued after it commits before it does. So a record that
//! committed implies that every append queued before it committed too; the one exception is
//! a writer that stops (shutdown, or every handle dropped) while its carried appends still
//! fail: those are then dropped, with an error logged and the failure reported.
//!
//! A group of queued appends only (nobody waits on its commit) lingers up to
//! [`QUEUED_LINGER`] for more work to join it ([`Intake::linger`]): under steady traffic an
//! action's queued result is committed with the next action's attempt, one commit (one fsync)
//! per action instead of two. An append with a waiting caller, a shutdown, or a full group
//! ends the wait at once, so no waiting caller is ever delayed by it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, watch};

use super::schema::Tail;
use super::{Appended, CommitObserver, LedgerError, TreeHead};
use crate::merkle::Frontier;

/// The longest a group of queued appends only waits for more work before it is committed.
pub(super) const QUEUED_LINGER: Duration = Duration::from_millis(10);

/// The longest pause before carried appends are tried again.
pub(super) const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What the [`Ledger`](super::Ledger) handles send to the writer.
pub(super) enum Command {
    Append(Job),
    Shutdown(oneshot::Sender<Result<(), LedgerError>>),
}

/// One append: committed whole or not at all.
pub(super) struct Job {
    pub(super) records: Vec<Pending>,
    pub(super) ack: Ack,
}

/// A record with its payload already in canonical form.
pub(super) type Pending = super::CanonicalRecord;

/// Who hears how an append ended.
pub(super) enum Ack {
    /// A caller waiting for the commit.
    Waiting(oneshot::Sender<Result<Vec<Appended>, LedgerError>>),
    /// Nobody waits: the outcome goes to the ledger's health (and a failure to the log).
    Queued(Arc<Health>),
}

impl Job {
    /// Whether its caller gave up waiting (timed out, or went away): then it is not written.
    /// A queued append is never given up.
    pub(super) fn abandoned(&self) -> bool {
        matches!(&self.ack, Ack::Waiting(tx) if tx.is_closed())
    }

    /// Whether nobody waits for it.
    pub(super) fn queued(&self) -> bool {
        matches!(self.ack, Ack::Queued(_))
    }

    /// Tells its caller (or the health, for a queued append) that it committed.
    pub(super) fn committed(self, appended: Vec<Appended>) {
        match self.ack {
            Ack::Waiting(tx) => {
                let _ = tx.send(Ok(appended));
            }
            Ack::Queued(health) => {
                if let Some(last) = appended.last() {
                    health.succeeded(last.seq);
                }
            }
        }
    }

    /// A carried append found committed when the chain's end was read again (its group's
    /// commit happened, its answer was lost), up to `seq`.
    pub(super) fn found_committed(self, seq: u64) {
        if let Ack::Queued(health) = self.ack {
            health.succeeded(seq);
        }
    }

    /// Tells its caller (or, for a queued append, the health and the log) that it failed for
    /// good.
    pub(super) fn failed(self, e: &LedgerError) {
        match self.ack {
            Ack::Waiting(tx) => {
                let _ = tx.send(Err(e.clone()));
            }
            Ack::Queued(health) => {
                health.failed();
                tracing::error!(error = %e, records = self.records.len(), "The ledger lost queued records: they could not be committed.");
            }
        }
    }
}

/// What every handle of a ledger and its writer share about appends: the highest acknowledged
/// `seq` and when the last append failed.
#[derive(Debug)]
pub(super) struct Health {
    /// The highest `seq` an append was acknowledged with.
    head: AtomicU64,
    /// When the last append failed, in milliseconds since `opened` plus one; 0 when the last
    /// append succeeded (or none failed).
    failed_at: AtomicU64,
    opened: Instant,
}

impl Health {
    pub(super) fn new() -> Health {
        Health {
            head: AtomicU64::new(0),
            failed_at: AtomicU64::new(0),
            opened: Instant::now(),
        }
    }

    /// An append committed up to `seq`.
    pub(super) fn succeeded(&self, seq: u64) {
        self.head.fetch_max(seq, Ordering::AcqRel);
        self.failed_at.store(0, Ordering::Release);
    }

    /// An append failed now.
    pub(super) fn failed(&self) {
        let at = self.since_opened_ms().saturating_add(1);
        self.failed_at.store(at, Ordering::Release);
    }

    pub(super) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Whether an append failed within `window`, with none succeeding since.
    pub(super) fn failed_within(&self, window: Duration) -> bool {
        let failed_at = self.failed_at.load(Ordering::Acquire);
        failed_at != 0
            && self
                .since_opened_ms()
                .saturating_sub(failed_at.saturating_sub(1))
                < u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
    }

    fn since_opened_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Where a writer publishes what it committed.
pub(super) struct Publish {
    /// The committed head: the last record's `seq`.
    pub(super) head: watch::Sender<u64>,
    /// The tree head of the committed records.
    pub(super) tree: watch::Sender<TreeHead>,
    /// Told how long each commit took.
    pub(super) observer: Option<Arc<dyn CommitObserver>>,
}

impl Publish {
    /// Publishes the committed head `seq` and the tree `frontier` of the records `1..=seq`
    /// (at open, and after each commit once it is durable, before its appenders hear of it).
    pub(super) fn committed(&self, seq: u64, frontier: &Frontier) {
        self.head.send_replace(seq);
        self.tree.send_replace(TreeHead {
            size: frontier.size(),
            root: frontier.root(),
        });
    }

    /// Tells the observer how long a commit of `records` took and whether it committed.
    pub(super) fn observe(&self, records: usize, took: Duration, committed: bool) {
        if let Some(observer) = &self.observer {
            observer.committed(records, took, committed);
        }
    }
}

/// One group to commit: the carried appends first, then what was queued after them.
pub(super) struct Group {
    pub(super) jobs: Vec<Job>,
    /// How many of `jobs` (at the front) were carried from a failed group.
    pub(super) carried: usize,
    /// The tail the failed group would have ended at: when the chain's end read again is
    /// exactly this, that commit did happen (its answer was lost) and the carried appends
    /// are committed already.
    pub(super) carried_tail: Option<Tail>,
}

/// A failed commit: its queued appends (to carry, in order), the tail it would have ended at
/// (when known) and its error.
pub(super) struct Failed {
    pub(super) queued: Vec<Job>,
    pub(super) tail: Option<Tail>,
    pub(super) error: LedgerError,
}

/// The writer's side of the queue: drains it into groups and keeps the carried appends.
pub(super) struct Intake {
    rx: mpsc::Receiver<Command>,
    max_batch: usize,
    carried: Vec<Job>,
    carried_tail: Option<Tail>,
    /// Failed groups in a row that left appends carried.
    retries: u32,
    /// A shutdown was asked for, or every handle is gone: no new appends.
    closing: bool,
    shutdowns: Vec<oneshot::Sender<Result<(), LedgerError>>>,
}

/// What a writer does next.
pub(super) enum Next {
    /// Wait for the next command (blocking or not, as the writer runs).
    Receive,
    /// Pause this long, then retry the carried appends.
    Retry(Duration),
}

impl Intake {
    pub(super) fn new(rx: mpsc::Receiver<Command>, max_batch: usize) -> Intake {
        Intake {
            rx,
            max_batch,
            carried: Vec::new(),
            carried_tail: None,
            retries: 0,
            closing: false,
            shutdowns: Vec::new(),
        }
    }

    /// What to do before the next group.
    pub(super) fn next(&self) -> Next {
        if self.carried.is_empty() {
            return Next::Receive;
        }
        let pause = Duration::from_millis(50)
            .saturating_mul(2u32.saturating_pow(self.retries.min(8)))
            .min(MAX_RETRY_PAUSE);
        Next::Retry(pause)
    }

    /// The receiving end, for the writer's wait.
    pub(super) fn rx(&mut self) -> &mut mpsc::Receiver<Command> {
        &mut self.rx
    }

    /// The next group: the carried appends, `first` (just received), and everything already
    /// queued, up to `max_batch` records (a larger append is still committed whole).
    pub(super) fn group(&mut self, first: Option<Command>) -> Group {
        let mut jobs = std::mem::take(&mut self.carried);
        let carried = jobs.len();
        let mut records: usize = jobs.iter().map(|j| j.records.len()).sum();
        if let Some(command) = first {
            self.take(command, &mut jobs, &mut records);
        }
        while records < self.max_batch && !self.closing {
            match self.rx.try_recv() {
                Ok(command) => self.take(command, &mut jobs, &mut records),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.closing = true,
            }
        }
        if self.closing {
            // No new appends; the ones already queued are still committed.
            self.rx.close();
        }
        Group {
            jobs,
            carried,
            carried_tail: self.carried_tail.take(),
        }
    }

    /// Lets `group` wait, up to [`QUEUED_LINGER`], for more work when it holds queued appends
    /// only (and none carried from a failed commit): every command that arrives meanwhile
    /// joins it in order. The wait ends at once when an append with a waiting caller (a
    /// `flush` too) or a shutdown arrives, the group is full, or every handle is gone. A group
    /// with a waiting caller in it never waits here.
    pub(super) async fn linger(&mut self, group: &mut Group) {
        let lingers = |intake: &Intake, group: &Group, records: usize| {
            !intake.closing
                && group.carried == 0
                && records < intake.max_batch
                && !group.jobs.is_empty()
                && group.jobs.iter().all(Job::queued)
        };
        let mut records: usize = group.jobs.iter().map(|j| j.records.len()).sum();
        if !lingers(self, group, records) {
            return;
        }
        let deadline = tokio::time::Instant::now() + QUEUED_LINGER;
        while lingers(self, group, records) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(command)) => self.take(command, &mut group.jobs, &mut records),
                Ok(None) => self.closing = true,
                Err(_) => break,
            }
        }
        // What else is queued already rides along, as in `group`.
        while records < self.max_batch && !self.closing {
            match self.rx.try_recv() {
                Ok(command) => self.take(command, &mut group.jobs, &mut records),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.closing = true,
            }
        }
        if self.closing {
            self.rx.close();
        }
    }

    fn take(&mut self, command: Command, jobs: &mut Vec<Job>, records: &mut usize) {
        match command {
            Command::Append(job) => {
                *records += job.records.len();
                jobs.push(job);
            }
            Command::Shutdown(ack) => {
                self.shutdowns.push(ack);
                self.closing = true;
            }
        }
    }

    /// After a commit: the queued appends of a failed group (`failed`, in order, with the
    /// tail the group would have ended at) are carried to the next group, or, once the
    /// writer is stopping, dropped and reported.
    pub(super) fn after_commit(&mut self, failed: Option<Failed>) {
        let Some(Failed {
            queued: failed,
            tail,
            error: e,
        }) = failed.filter(|f| !f.queued.is_empty())
        else {
            self.retries = 0;
            return;
        };
        let e = &e;
        if self.closing && self.retries > 0 {
            for job in failed {
                job.failed(e);
            }
            self.retries = 0;
            return;
        }
        for job in &failed {
            if let Ack::Queued(health) = &job.ack {
                health.failed();
            }
        }
        tracing::error!(error = %e, appends = failed.len(), "The ledger could not commit queued records; they are retried before anything queued after them.");
        self.retries = self.retries.saturating_add(1);
        self.carried = failed;
        self.carried_tail = tail;
    }

    /// The shutdowns to answer once the writer has closed.
    pub(super) fn shutdowns(&mut self) -> Vec<oneshot::Sender<Result<(), LedgerError>>> {
        std::mem::take(&mut self.shutdowns)
    }
}
