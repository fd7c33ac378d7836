//! The WAL's checkpoints, off the commit path.
//!
//! SQLite copies the pages the WAL holds into the database file at a checkpoint. By default
//! the committing connection runs one itself whenever its commit leaves 1,000 pages or more in
//! the WAL, so that commit, and every append waiting on it, also waits for the copy and for
//! the database file's fsync (about 1.3 ms on the benchmark machine, five times the WAL's own
//! fsync). Here the writer's connection never checkpoints on its own (its WAL hook, which
//! only notes the WAL's size, replaces SQLite's automatic checkpoint), and a thread of its
//! own, with its own connection, runs them.
//!
//! What it guarantees:
//! - **Durability is unchanged.** A commit is durable when the WAL's fsync returns, with or
//!   without a checkpoint; a checkpoint only copies committed pages, and SQLite recovers one
//!   cut short by a crash (the WAL is kept until a checkpoint completes). The checkpointer's
//!   connection syncs as the writer's does (`synchronous = FULL`).
//! - **Off the commit path.** The writer asks for a checkpoint after every
//!   [`CHECKPOINT_EVERY`] pages it committed and goes on committing: the ask never blocks
//!   (asks made while one is pending are one), and the checkpoint is passive (it never waits
//!   for the writer or a reader, and never makes them wait). The commits after an ask each ask
//!   for a catch-up pass too, up to [`CATCH_UP_PASSES`], until the WAL starts again from its
//!   beginning, so that it does on a loaded machine too.
//! - **A bounded WAL.** When the WAL reaches [`WAL_BOUND`] pages (the checkpointer is behind,
//!   failed, or could not start) the writer runs a checkpoint itself after that commit, as
//!   SQLite would have; without a checkpointer it does so every [`CHECKPOINT_EVERY`] pages. A
//!   reader holding an old snapshot keeps any checkpoint from going past it, as with SQLite's
//!   own.
//! - **Every checkpoint is told** to the commit observer (its duration, and whether it ran on
//!   the commit path).

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::Connection;

use super::{CommitObserver, LedgerConfig, schema};

/// Pages committed between two checkpoints (SQLite's default for its own).
pub(super) const CHECKPOINT_EVERY: i32 = 1000;
/// The WAL's size, in pages, past which the writer checkpoints itself.
pub(super) const WAL_BOUND: i32 = 8 * CHECKPOINT_EVERY;
/// Catch-up passes asked for after a checkpoint, one after each of the commits that follow it,
/// until the WAL starts again from its beginning.
///
/// A passive checkpoint copies the frames the WAL held when it began, and the WAL starts again
/// only at a transaction that begins with all of it copied. A transaction already under way
/// when the checkpoint began (the writer commits every few milliseconds under load), or one
/// that began before it ended (a loaded machine, a slow disk), adds frames it did not copy; no
/// transaction after that begins with the WAL all copied, and the WAL would grow to
/// [`WAL_BOUND`], where the writer checkpoints on the commit path. A pass after each commit
/// copies what that commit added, a few milliseconds' work, so the next pause of the writer
/// longer than that starts the WAL again. A writer that is never idle gives no such pause:
/// after this many passes the next ask, or the bound, goes on.
pub(super) const CATCH_UP_PASSES: u32 = 8;

thread_local! {
    /// The WAL's size in pages after the last commit of the writer running on this thread (the
    /// WAL hook runs on the committing thread, inside its `COMMIT`).
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// The writer's side: when to ask, and the checkpointer's thread.
pub(super) struct Checkpoints {
    /// Asks the checkpointer for one (a channel of one: an ask while one is pending is that
    /// one). `None` without a checkpointer: the writer checkpoints itself.
    ask: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The WAL's size when a checkpoint was last asked for or run.
    asked_at: i32,
    /// Catch-up passes still to ask for, one after each commit, until the WAL starts again.
    catch_up_left: u32,
    observer: Option<Arc<dyn CommitObserver>>,
}

impl Checkpoints {
    /// Puts the WAL hook on the writer's connection `writer` (which must be used on this
    /// thread only) and starts the checkpointer on the database at `path`. If the checkpointer
    /// cannot start, the writer checkpoints itself (said once, as a warning).
    pub(super) fn start(
        writer: &Connection,
        path: &Path,
        config: &LedgerConfig,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> Checkpoints {
        writer.wal_hook(Some(note_wal_pages));
        WAL_PAGES.with(|p| p.set(0));
        let mut checkpoints = Checkpoints {
            ask: None,
            thread: None,
            asked_at: 0,
            catch_up_left: 0,
            observer,
        };
        let conn = match schema::connect_checkpointer(path, config) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "The ledger's writer checkpoints its WAL itself, on the commit path: the checkpointer cannot open the database.");
                return checkpoints;
            }
        };
        let (ask, asked) = sync_channel(1);
        let observer = checkpoints.observer.clone();
        match std::thread::Builder::new()
            .name("warden-ledger-wal".to_owned())
            .spawn(move || run(&conn, &asked, observer.as_deref()))
        {
            Ok(thread) => {
                checkpoints.ask = Some(ask);
                checkpoints.thread = Some(thread);
            }
            Err(e) => {
                tracing::warn!(error = %e, "The ledger's writer checkpoints its WAL itself, on the commit path: the checkpointer's thread cannot start.");
            }
        }
        checkpoints
    }

    /// After a commit of the writer's connection `writer`: asks for a checkpoint every
    /// [`CHECKPOINT_EVERY`] pages, and for a catch-up pass after each of the next
    /// [`CATCH_UP_PASSES`] commits until the WAL starts again; or runs one at [`WAL_BOUND`] (or
    /// without a checkpointer).
    pub(super) fn after_commit(&mut self, writer: &Connection) {
        let pages = WAL_PAGES.with(Cell::get);
        if pages < self.asked_at {
            // The WAL restarted from its beginning (everything in it had been copied).
            self.asked_at = 0;
            self.catch_up_left = 0;
        }
        let due = pages.saturating_sub(self.asked_at) >= CHECKPOINT_EVERY;
        if pages >= WAL_BOUND || (due && self.ask.is_none()) {
            checkpoint(writer, self.observer.as_deref(), true);
            self.asked_at = 0;
            self.catch_up_left = 0;
            return;
        }
        if due {
            self.asked_at = pages;
            self.catch_up_left = CATCH_UP_PASSES;
        } else if self.catch_up_left > 0 {
            self.catch_up_left -= 1;
        } else {
            return;
        }
        if let Some(ask) = &self.ask
            && let Err(TrySendError::Disconnected(())) = ask.try_send(())
        {
            tracing::warn!(
                "The ledger's writer checkpoints its WAL itself, on the commit path: the checkpointer stopped."
            );
            self.ask = None;
        }
    }

    /// Stops the checkpointer and waits for it (before the writer closes its connection, so
    /// that close is the last one and checkpoints the whole WAL).
    pub(super) fn stop(mut self) {
        drop(self.ask.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The checkpointer's thread: a checkpoint per ask, until the writer is gone.
fn run(conn: &Connection, asked: &Receiver<()>, observer: Option<&dyn CommitObserver>) {
    while asked.recv().is_ok() {
        checkpoint(conn, observer, false);
    }
}

/// One passive checkpoint on `conn`, told to `observer` unless another was running (SQLite
/// then answers "busy" and does nothing); a failure is logged (the WAL keeps the pages: the
/// next checkpoint copies them).
fn checkpoint(conn: &Connection, observer: Option<&dyn CommitObserver>, on_commit_path: bool) {
    let started = Instant::now();
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(busy) => {
            if let Some(observer) = observer
                && busy == 0
            {
                observer.checkpointed(started.elapsed(), on_commit_path);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, on_commit_path, "A checkpoint of the ledger's WAL failed; the next one copies its pages.");
        }
    }
}
