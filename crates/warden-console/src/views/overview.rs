//! The overview (`GET /ui`, admins; an approver is sent to its inbox): active sessions,
//! pending approvals, recent alerts and the controls in force, decisions per minute by verdict
//! and model tokens per agent over the last hour, the ledger's head and the last verification
//! (`POST /ui/verify`).
//!
//! What it guarantees:
//! - **Bounded memory.** [`Activity`] is a fixed ring of 60 one-minute buckets (a bounded
//!   number of agents each), fed by [`follow`] from the ledger's committed records: on start
//!   from the decisions and completions of the last hour only (at most [`BACKFILL_MAX`]
//!   records, read through the kind index), then the decisions and completions among the
//!   records the committed head moves past, in batches of [`BATCH`] (the ledger's other
//!   records are skipped by the query, never decoded).
//! - **Off the action path, bounded work.** [`follow`] reads the ledger at most once every
//!   [`FOLLOW_EVERY`] (a head that moves after a quiet spell is read at once), however often
//!   it commits: under load one read takes every record committed since the last, instead of
//!   one read (and one wake-up of a blocking thread) per group commit. The figures lag the
//!   ledger by at most that interval. The page lists at most [`MAX_SHOWN`] sessions, alerts and
//!   controls.
//! - **One verification at a time.** `POST /ui/verify` (an admin's form, its CSRF token
//!   checked) runs [`LedgerReader::verify`](warden_audit::LedgerReader::verify) off the async
//!   runtime; a second request while one runs is told so and waits for nothing. The result and
//!   its time are kept in [`LastVerify`] (not persisted: a restart forgets it).
//! - **Live**: the figures are one `data-live` part (`GET /ui/overview/live`), re-fetched when
//!   the ledger's head moves.

pub mod activity;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use warden_approval::Status;
use warden_approval::workflow::MAX_LIST;
use warden_audit::Record;
use warden_core::text::{percent_encode, rfc3339};

pub use activity::{Activity, ActivitySnapshot};

use crate::ConsoleState;
use crate::auth::{CsrfForm, Signed};
use crate::page::{Layout, error_page, render};

/// Records read from the ledger at a time while following it.
pub const BATCH: u64 = 1000;
/// The kinds the activity counts: decisions and model completions. Only these are read.
const COUNTED: [&str; 2] = ["action_decided", "model_completed"];
/// The most records read when the overview starts (the last hour's decisions and completions).
pub const BACKFILL_MAX: u64 = 100_000;
/// The shortest time between two reads of the ledger by [`follow`].
pub const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// The most sessions, alerts and controls the overview lists.
pub const MAX_SHOWN: usize = 20;

/// The result of a verification run from the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// When it ended (RFC 3339).
    pub at: String,
    /// Who ran it.
    pub by: String,
    /// Whether the chain verified intact.
    pub intact: bool,
    /// Records verified intact.
    pub records: u64,
    /// The last record verified intact.
    pub head: Option<u64>,
    /// What is wrong (the first problem), or why the ledger could not be read.
    pub problem: Option<String>,
}

/// The last ledger verification run from the console, and whether one is running.
#[derive(Debug, Default)]
pub struct LastVerify {
    running: AtomicBool,
    last: Mutex<Option<Verified>>,
}

impl LastVerify {
    /// The last result, if any.
    pub fn last(&self) -> Option<Verified> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Whether a verification is running.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

/// The agent of a session, as the gateway holds it (`?` when it no longer does).
fn agent_of(state: &ConsoleState, record: &Record) -> String {
    record
        .session
        .as_deref()
        .and_then(|s| state.operator.sessions.get(s))
        .map_or_else(|| "?".to_owned(), |s| s.agent.clone())
}

/// Counts the last hour's decisions and completions that committed up to `head`.
async fn backfill(state: &ConsoleState, head: u64) {
    let Some(since) = state
        .operator
        .clock
        .now()
        .checked_sub(time::Duration::hours(1))
    else {
        return;
    };
    let mut before = head.saturating_add(1);
    let mut read = 0u64;
    while read < BACKFILL_MAX {
        let page = match state
            .ledger
            .newest_of_kinds(&COUNTED, Some(before), BATCH)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "The console cannot read the last hour of the ledger.");
                return;
            }
        };
        let Some(last) = page.last().map(|r| r.seq) else {
            return;
        };
        let now = state.operator.clock.now();
        let mut done = false;
        for r in &page {
            if r.time < since {
                done = true;
                break;
            }
            state.activity.count(r, &agent_of(state, r), now);
        }
        read = read.saturating_add(u64::try_from(page.len()).unwrap_or(u64::MAX));
        if done {
            return;
        }
        before = last;
    }
}

/// Follows the ledger's committed head into `state.activity` until the gateway stops.
pub(crate) async fn follow(state: Arc<ConsoleState>) {
    let mut head = state.head.clone();
    let start = *head.borrow_and_update();
    tokio::select! {
        () = state.stop.cancelled() => return,
        () = backfill(&state, start) => {}
    }
    let mut next = start.saturating_add(1);
    let mut last_read: Option<tokio::time::Instant> = None;
    loop {
        // Coalesced: a head that moves again within `FOLLOW_EVERY` of the last read waits out
        // the rest of the interval, then everything committed meanwhile is read at once.
        if let Some(at) = last_read {
            tokio::select! {
                () = state.stop.cancelled() => return,
                () = tokio::time::sleep_until(at + FOLLOW_EVERY) => {}
            }
        }
        last_read = Some(tokio::time::Instant::now());
        let target = *head.borrow_and_update();
        while next <= target {
            let batch = tokio::select! {
                () = state.stop.cancelled() => return,
                b = state.ledger.kinds_in_range(&COUNTED, next, target, BATCH) => b,
            };
            match batch {
                Ok(records) => {
                    let now = state.operator.clock.now();
                    for r in &records {
                        state.activity.count(r, &agent_of(&state, r), now);
                    }
                    // A short page took every counted record up to `target`.
                    next = match records.last() {
                        Some(last) if u64::try_from(records.len()).unwrap_or(u64::MAX) >= BATCH => {
                            last.seq.saturating_add(1)
                        }
                        _ => target.saturating_add(1),
                    };
                }
                Err(e) => {
                    // Tried again when the head next moves; never in a tight loop.
                    tracing::warn!(error = %e, "The console cannot follow the ledger.");
                    break;
                }
            }
        }
        tokio::select! {
            () = state.stop.cancelled() => return,
            changed = head.changed() => {
                if changed.is_err() {
                    state.stop.cancelled().await;
                    return;
                }
            }
        }
    }
}

/// A session in the overview.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    /// Its id.
    pub id: String,
    /// The id, percent-encoded for a link.
    pub href: String,
    /// The agent.
    pub agent: String,
    /// The principal.
    pub principal: String,
    /// When it was opened.
    pub opened: String,
}

/// An alert or a control in the overview.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The record to link (`/ui/records/N`), when known.
    pub seq: Option<u64>,
    /// When.
    pub time: String,
    /// What (`alert`, `freeze_tool`, ...) and to what.
    pub what: String,
    /// Why.
    pub reason: String,
}

/// The live part of the overview.
#[derive(Template)]
#[template(path = "overview_live.html")]
pub struct OverviewLive {
    /// Active sessions (at most [`MAX_SHOWN`]).
    pub sessions: Vec<ActiveSession>,
    /// How many sessions are active.
    pub active: usize,
    /// Pending approval requests (`None` when the store could not be read).
    pub pending: Option<usize>,
    /// Recent alerts, newest first.
    pub alerts: Vec<Notice>,
    /// Controls in force.
    pub controls: Vec<Notice>,
    /// The last hour.
    pub activity: ActivitySnapshot,
    /// The ledger's committed head.
    pub head: u64,
    /// The last verification.
    pub verified: Option<Verified>,
    /// Whether one is running.
    pub verifying: bool,
}

/// `GET /ui`.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    /// The layout.
    pub layout: Layout,
    /// The live part, as first shown.
    pub live: OverviewLive,
    /// A message after a verification request.
    pub notice: Option<String>,
}

const TAB: &str = "overview";

/// The view's routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/ui", get(overview))
        .route("/ui/", get(overview))
        .route("/ui/overview/live", get(live_part))
        .route("/ui/verify", post(verify))
}

/// What the overview shows now.
async fn gather(state: &ConsoleState) -> OverviewLive {
    let now = state.operator.clock.now();
    let mut active: Vec<ActiveSession> = Vec::new();
    let mut count = 0usize;
    for s in state.operator.sessions.list(now) {
        if s.status != "active" {
            continue;
        }
        count = count.saturating_add(1);
        if active.len() < MAX_SHOWN {
            active.push(ActiveSession {
                href: percent_encode(&s.id),
                id: s.id,
                agent: s.agent,
                principal: s.principal,
                opened: s.opened_at,
            });
        }
    }
    let pending = state
        .operator
        .approvals
        .store()
        .list(Some(Status::Pending), MAX_LIST)
        .await
        .ok()
        .map(|l| l.len());
    let alerts = state
        .ledger
        .newest_of_kinds(&["observer_alert"], None, MAX_SHOWN as u64)
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| Notice {
            seq: Some(r.seq),
            time: crate::views::timeline::rows::show_time(r),
            what: format!(
                "{} {}",
                r.payload
                    .get("action")
                    .and_then(|v| v.as_str())
                    .unwrap_or("alert"),
                r.payload
                    .get("detector")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
            ),
            reason: r
                .payload
                .get("reason")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned(),
        })
        .collect();
    let controls = state
        .operator
        .controls
        .controls
        .in_force(now)
        .into_iter()
        .take(MAX_SHOWN)
        .map(|c| Notice {
            seq: None,
            time: rfc3339(c.set_at),
            what: format!(
                "{} on {}{}",
                c.action.as_str(),
                serde_json::to_value(c.scope)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                c.target.map(|t| format!(" `{t}`")).unwrap_or_default()
            ),
            reason: c.reason,
        })
        .collect();
    OverviewLive {
        sessions: active,
        active: count,
        pending,
        alerts,
        controls,
        activity: state.activity.snapshot(now),
        head: *state.head.borrow(),
        verified: state.last_verify.last(),
        verifying: state.last_verify.is_running(),
    }
}

/// Admins only: an approver goes to its inbox.
#[expect(
    clippy::result_large_err,
    reason = "a response is the refusal; built once, on the refusing path"
)]
fn admin_or_inbox(signed: &Signed) -> Result<(), Response> {
    if signed.is_admin() {
        Ok(())
    } else {
        Err(Redirect::to("/ui/approvals").into_response())
    }
}

/// `?verify=` after a verification request: what to say.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OverviewQuery {
    verify: Option<String>,
}

async fn overview(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    axum::extract::Query(q): axum::extract::Query<OverviewQuery>,
) -> Response {
    if let Err(to_inbox) = admin_or_inbox(&signed) {
        return to_inbox;
    }
    let notice = match q.verify.as_deref() {
        Some("busy") => Some("A verification is already running; its result will show here."),
        Some("done") => Some("The verification ended; its result is below."),
        Some("failed") => Some("The ledger could not be read; see the result below."),
        _ => None,
    }
    .map(str::to_owned);
    render(&OverviewPage {
        layout: signed.layout(TAB),
        live: gather(&state).await,
        notice,
    })
}

async fn live_part(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    render(&gather(&state).await)
}

/// The verify form: nothing but its CSRF token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct VerifyForm {}

/// Clears the running flag when the verification ends, however it ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

async fn verify(State(state): State<Arc<ConsoleState>>, form: CsrfForm<VerifyForm>) -> Response {
    let signed = form.signed;
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    let lv = &state.last_verify;
    if lv
        .running
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return Redirect::to("/ui?verify=busy").into_response();
    }
    let _running = Running(&lv.running);
    let report = state.ledger.verify().await;
    let at = rfc3339(state.operator.clock.now());
    let by = signed.identity.name.clone();
    let (verified, outcome) = match report {
        Ok(r) => (
            Verified {
                at,
                by,
                intact: r.is_intact(),
                records: r.records,
                head: r.head.map(|h| h.seq),
                problem: r.first_problem.map(|p| p.to_string()),
            },
            "done",
        ),
        Err(e) => (
            Verified {
                at,
                by,
                intact: false,
                records: 0,
                head: None,
                problem: Some(format!("the ledger could not be read: {e}")),
            },
            "failed",
        ),
    };
    match lv.last.lock() {
        Ok(mut last) => *last = Some(verified),
        Err(_) => {
            return error_page(
                signed.layout(TAB),
                StatusCode::INTERNAL_SERVER_ERROR,
                "the verification ran but its result could not be kept",
            );
        }
    }
    // 303: the browser follows with a GET.
    Redirect::to(&format!("/ui?verify={outcome}")).into_response()
}
