//! Changes other instances made, as they happen: PostgreSQL `LISTEN`/`NOTIFY`, with a poll as
//! the fallback.
//!
//! A store that changes a shared row announces it with [`notify`] **in the same transaction**
//! (PostgreSQL delivers a notification only when, and only if, its transaction commits). One
//! listener task per instance receives them and re-broadcasts them as [`Notice::Changed`].
//! Notifications can be lost (while the listening connection is down); so the task also sends
//! [`Notice::Poll`] when it reconnects and every [`POLL_EVERY`] whatever happens, and each
//! consumer answers a `Poll` by reading what changed since it last looked. Together: a change
//! reaches every instance within about a second, and a lost notification costs at most one
//! poll interval.
//!
//! On SQLite there is one instance and no listener: [`Notices`] carries nothing.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often consumers are told to poll, notification or not.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// How many notices wait for a slow consumer before it misses some (it is then told
/// [`Notice::Poll`]-equivalent by `RecvError::Lagged`, and must poll).
const CAPACITY: usize = 4096;

/// What a shared row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A control (its id).
    Controls,
    /// An approval request (its id).
    Approvals,
    /// A session (its id): revoked, labels or trusted text added.
    Sessions,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 3] = [Channel::Controls, Channel::Approvals, Channel::Sessions];

    /// The PostgreSQL channel name.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Controls => "warden_controls",
            Channel::Approvals => "warden_approvals",
            Channel::Sessions => "warden_sessions",
        }
    }

    fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What the listener tells consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A row of `channel` with id `id` changed (and its transaction committed).
    Changed {
        /// Which kind of row.
        channel: Channel,
        /// Its id (the notification's payload, at most 8000 bytes by PostgreSQL's limit).
        id: String,
    },
    /// Read what changed since the last look: notifications may have been missed.
    Poll,
}

/// The notices of one instance: subscribe to receive them.
#[derive(Debug, Clone)]
pub struct Notices {
    tx: broadcast::Sender<Notice>,
    live: bool,
}

impl Notices {
    /// Notices that never come (SQLite: one instance).
    pub fn none() -> Notices {
        let (tx, _) = broadcast::channel(1);
        Notices { tx, live: false }
    }

    /// Starts the listener on `pool`'s database, on `tasks`, until `stop` is cancelled.
    pub fn listen(pool: PgPool, tasks: &TaskTracker, stop: CancellationToken) -> Notices {
        let (tx, _) = broadcast::channel(CAPACITY);
        let sender = tx.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = run(pool, sender) => {}
            }
        });
        Notices { tx, live: true }
    }

    /// A receiver of every notice from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.tx.subscribe()
    }

    /// Whether notices come at all (false on SQLite).
    pub fn is_live(&self) -> bool {
        self.live
    }
}

/// Announces that row `id` of `channel` changed, to be run inside the transaction that
/// changed it.
pub async fn notify<'e, E>(executor: E, channel: Channel, id: &str) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel.name())
        .bind(id)
        .execute(executor)
        .await?;
    Ok(())
}

async fn run(pool: PgPool, tx: broadcast::Sender<Notice>) {
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for other instances' changes; polling meanwhile.");
                let _ = tx.send(Notice::Poll);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let names: Vec<&str> = Channel::ALL.iter().map(|c| c.name()).collect();
        if let Err(e) = listener.listen_all(names).await {
            tracing::warn!(error = %e, "Cannot listen for other instances' changes; polling meanwhile.");
            let _ = tx.send(Notice::Poll);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = Duration::from_millis(100);
        // Whatever happened while not listening is read now.
        let _ = tx.send(Notice::Poll);
        loop {
            tokio::select! {
                _ = poll.tick() => {
                    let _ = tx.send(Notice::Poll);
                }
                got = listener.try_recv() => match got {
                    Ok(Some(n)) => {
                        if let Some(channel) = Channel::from_name(n.channel()) {
                            let _ = tx.send(Notice::Changed { channel, id: n.payload().to_owned() });
                        }
                    }
                    // The connection was lost (and is re-established by the next call):
                    // notifications may have been missed.
                    Ok(None) => {
                        let _ = tx.send(Notice::Poll);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Lost the notification listener; reconnecting.");
                        let _ = tx.send(Notice::Poll);
                        break;
                    }
                },
            }
        }
    }
}
