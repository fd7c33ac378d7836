//! `GET /ui/live`: the server-sent-event stream that tells a page the ledger's committed head
//! moved.
//!
//! What it guarantees:
//! - **Signed in only**, like every page: without a console session it answers what
//!   [`Signed`] answers (a redirect to the sign-in form).
//! - **What it says**: `event: head` with `data: <committed head seq>` when the stream opens
//!   and whenever the head moves or an approval request becomes known (it is stored after its
//!   `approval_requested` record moved the head, so an inbox refreshed on the head alone
//!   could miss it), at most [`MAX_EVENTS_PER_SECOND`] a second (changes in between are
//!   folded into the next event, which carries the newest head); a `: keep-alive`
//!   comment every [`KEEP_ALIVE`] when idle. It never carries a record: pages fetch their
//!   live parts (which check the session again) when told.
//! - **Bounded**: at most [`MAX_LIVE_STREAMS`] streams at once, over all operators; beyond,
//!   `503` with a page (the script retries later).
//! - **It ends** when the gateway stops, at once when its console session ends (sign-out,
//!   expiry found by a request or the sweep, revocation found by a request), and at the next
//!   [`KEEP_ALIVE`] tick after the session expired or its credential was revoked.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ConsoleState;
use crate::auth::Signed;
use crate::page::error_page;

/// Most live streams open at once.
pub const MAX_LIVE_STREAMS: usize = 32;
/// Most `head` events a stream sends in a second.
pub const MAX_EVENTS_PER_SECOND: u32 = 4;
/// How often an idle stream sends a comment, and checks that its console session still holds.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The open live streams: a count, bounded by [`MAX_LIVE_STREAMS`].
#[derive(Debug, Default)]
pub struct LiveStreams {
    open: Arc<AtomicUsize>,
}

impl LiveStreams {
    /// How many streams are open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// A place for one more stream, unless there are [`MAX_LIVE_STREAMS`] already.
    fn try_open(&self) -> Option<StreamGuard> {
        self.open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_LIVE_STREAMS).then_some(n + 1)
            })
            .ok()
            .map(|_| StreamGuard(self.open.clone()))
    }
}

/// Holds a stream's place; gives it back when dropped (the stream ended or its client left).
#[derive(Debug)]
struct StreamGuard(Arc<AtomicUsize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What one stream follows.
struct Follow {
    state: Arc<ConsoleState>,
    head: watch::Receiver<u64>,
    /// Approval requests becoming known ([`warden_approval::ApprovalStore::watch_arrivals`]).
    arrivals: watch::Receiver<u64>,
    session: String,
    credential: String,
    ended: CancellationToken,
    last: Option<tokio::time::Instant>,
    first: bool,
    _guard: StreamGuard,
}

impl Follow {
    /// Whether the console session still holds (not expired, credential not revoked).
    async fn still_signed_in(&self) -> bool {
        let now = self.state.operator.clock.now();
        self.state.signins.is_live(&self.session, now)
            && matches!(
                self.state
                    .operator
                    .operators
                    .is_active(&self.credential)
                    .await,
                Ok(true)
            )
    }

    /// The next event, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        if self.first {
            self.first = false;
            return Some(self.event());
        }
        loop {
            tokio::select! {
                () = self.state.stop.cancelled() => return None,
                () = self.ended.cancelled() => return None,
                changed = self.head.changed() => {
                    changed.ok()?;
                    break;
                }
                changed = self.arrivals.changed() => {
                    changed.ok()?;
                    break;
                }
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    if !self.still_signed_in().await {
                        return None;
                    }
                }
            }
        }
        // At most MAX_EVENTS_PER_SECOND: wait out the gap, then tell the newest head.
        let gap = Duration::from_secs(1) / MAX_EVENTS_PER_SECOND;
        if let Some(due) = self.last.map(|l| l + gap) {
            tokio::select! {
                () = self.state.stop.cancelled() => return None,
                () = self.ended.cancelled() => return None,
                () = tokio::time::sleep_until(due) => {}
            }
        }
        Some(self.event())
    }

    fn event(&mut self) -> Event {
        self.last = Some(tokio::time::Instant::now());
        self.arrivals.mark_unchanged();
        let seq = *self.head.borrow_and_update();
        Event::default().event("head").data(seq.to_string())
    }
}

fn events(follow: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(
        follow,
        |mut f| async move { f.next().await.map(|e| (Ok(e), f)) },
    )
}

/// `GET /ui/live`.
async fn live(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    let Some(guard) = state.live.try_open() else {
        return error_page(
            signed.layout(""),
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live views are open; close one, or reload later",
        );
    };
    let follow = Follow {
        head: state.head.clone(),
        arrivals: state.operator.approvals.store().watch_arrivals(),
        state: state.clone(),
        session: signed.session,
        credential: signed.identity.id,
        ended: signed.ended,
        last: None,
        first: true,
        _guard: guard,
    };
    Sse::new(events(follow))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response()
}

/// The live routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new().route("/ui/live", get(live))
}
