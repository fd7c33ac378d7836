//! The sessions list and a session's timeline: one chronological trace of everything the
//! ledger holds about a session (model requests and completions, the calls the model proposed,
//! each attempt with its decision and determining rules, approvals and votes, results, labels,
//! trusted text, alerts and controls).
//!
//! What it guarantees:
//! - **Bounded pages.** A page holds at most [`PAGE`] records, read through the ledger's
//!   session index (`?after=SEQ`, `?before=SEQ`, `?around=SEQ`, first and last links), so a
//!   session of any length costs one page to show. The live part
//!   (`GET /ui/sessions/{id}/rows?after=SEQ`, only on the last page) answers at most [`PAGE`]
//!   rows and the sequence number to continue from (`X-Warden-Last-Seq`).
//! - **Every row is `id="seq-N"`**, and `/ui/records/N` leads to it (the timeline page around
//!   it), or shows the record when it belongs to no session.
//! - **Intents are matched as the observer matches them** (an attempt takes the oldest pending
//!   intent of the same tool, see [`rows::intents`]), over the page and the intents and
//!   attempts among the session's [`LOOKBACK`] records before it (a bounded read of the
//!   session index): an attempt shows "from intent #N" or "no intent". An intent proposed
//!   more than [`LOOKBACK`] records of the session earlier is not seen.
//! - **Everything shown is escaped** (askama); long values are clipped and expand in a
//!   `<details>`.
//! - Admins only; an unknown session is a `404` page; a malformed bound is a `400` page.

mod chain;
mod fields;
pub mod instances;
pub mod rows;

use std::collections::HashSet;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use warden_audit::{LedgerReader, PageBound, Record};
use warden_charter::CompiledCharter;
use warden_core::text::percent_encode;

use crate::ConsoleState;
use crate::auth::Signed;
use crate::page::{Clip, Layout, clip, error_page, render, render_with};
use rows::{IntentMatch, Row};

/// The most records a timeline page (or a live append) holds.
pub const PAGE: u64 = 200;
/// Earlier records of the session (the intents and attempts among them) read to match the
/// attempts of a page.
pub const LOOKBACK: u64 = 2000;
/// The most sessions the list shows (newest first).
pub const MAX_LISTED: usize = 200;
/// The longest session id looked up.
const MAX_ID_BYTES: usize = 128;
/// Characters of a task shown in the list before it is clipped.
const TASK_CHARS: usize = 120;

/// One session in the list.
#[derive(Debug, Clone)]
pub struct SessionLine {
    /// The session id.
    pub id: String,
    /// The id, percent-encoded for a link.
    pub href: String,
    /// The agent.
    pub agent: String,
    /// The principal.
    pub principal: String,
    /// The task, clipped.
    pub task: Clip,
    /// When it was opened.
    pub opened: String,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// Its records in the ledger (`None` when the ledger could not be read).
    pub records: Option<u64>,
    /// Its delegation chain, root first (empty for a session an operator opened).
    pub chain: Vec<ChainHop>,
}

/// One ancestor of a delegated session, as a link.
#[derive(Debug, Clone)]
pub struct ChainHop {
    /// The ancestor's agent.
    pub agent: String,
    /// The ancestor session.
    pub session: String,
    /// Its id, percent-encoded for a link.
    pub href: String,
}

/// The chain of `info`, as links.
fn hops(chain: &[warden_session::Link]) -> Vec<ChainHop> {
    chain
        .iter()
        .map(|l| ChainHop {
            agent: l.agent.clone(),
            session: l.session.clone(),
            href: percent_encode(&l.session),
        })
        .collect()
}

/// `GET /ui/sessions`.
#[derive(Template)]
#[template(path = "sessions.html")]
pub struct SessionsPage {
    /// The layout.
    pub layout: Layout,
    /// The sessions shown.
    pub sessions: Vec<SessionLine>,
    /// How many the gateway holds in all.
    pub total: usize,
}

/// A link between pages.
#[derive(Debug, Clone, Default)]
pub struct Paging {
    /// The first page.
    pub first: String,
    /// The page before, when there is one.
    pub prev: Option<String>,
    /// The page after, when there is one.
    pub next: Option<String>,
    /// The last page.
    pub last: String,
}

/// `GET /ui/sessions/{id}`.
#[derive(Template)]
#[template(path = "timeline.html")]
pub struct TimelinePage {
    /// The layout.
    pub layout: Layout,
    /// The session id.
    pub session: String,
    /// The session id, percent-encoded for a query.
    pub session_q: String,
    /// Who and what, when the gateway still holds the session.
    pub about: Option<SessionLine>,
    /// The session's records in the ledger.
    pub count: u64,
    /// The rows of this page, oldest first.
    pub rows: Vec<Row>,
    /// Links to the other pages.
    pub paging: Paging,
    /// On the last page: the live-append URL and the sequence number to continue after.
    pub live: Option<(String, u64)>,
    /// The instance whose chain is shown, when not this one's (a fleet).
    pub shown: Option<String>,
    /// The other instances holding records of the session.
    pub elsewhere: Vec<instances::Elsewhere>,
}

/// The rows of a live append (`GET /ui/sessions/{id}/rows`).
#[derive(Template)]
#[template(path = "timeline_rows.html")]
pub struct RowsFragment {
    /// The rows.
    pub rows: Vec<Row>,
}

/// `GET /ui/records/{seq}` of a record without a session.
#[derive(Template)]
#[template(path = "timeline_record.html")]
pub struct RecordPage {
    /// The layout.
    pub layout: Layout,
    /// The record, as one row.
    pub rows: Vec<Row>,
}

/// The view's routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/ui/sessions", get(list))
        .route("/ui/sessions/{id}", get(timeline))
        .route("/ui/sessions/{id}/rows", get(more_rows))
        .route("/ui/records/{seq}", get(record))
}

const TAB: &str = "sessions";

fn bad_request(layout: Layout, message: &str) -> Response {
    error_page(layout, StatusCode::BAD_REQUEST, message)
}

fn ledger_unavailable(layout: Layout) -> Response {
    error_page(
        layout,
        StatusCode::SERVICE_UNAVAILABLE,
        "the ledger cannot be read right now; try again",
    )
}

async fn list(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    let now = state.operator.clock.now();
    let all = state.operator.sessions.list(now);
    let total = all.len();
    let mut sessions = Vec::with_capacity(total.min(MAX_LISTED));
    for info in all.into_iter().take(MAX_LISTED) {
        let records = state.ledger.session_count(&info.id).await.ok();
        sessions.push(SessionLine {
            href: percent_encode(&info.id),
            task: clip(&info.task, TASK_CHARS),
            state: info.status.to_owned(),
            id: info.id,
            agent: info.agent,
            principal: info.principal,
            opened: info.opened_at,
            records,
            chain: hops(&info.chain),
        });
    }
    render(&SessionsPage {
        layout: signed.layout(TAB),
        sessions,
        total,
    })
}

/// The bounds a timeline page may be asked for (each a sequence number).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Bounds {
    before: Option<String>,
    after: Option<String>,
    around: Option<String>,
    /// Another instance's chain (a fleet), see `instances`.
    instance: Option<String>,
}

/// A sequence number from the query, or a sentence saying what is wrong.
fn seq_of(name: &str, text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("`{name}` must be a record's sequence number (a whole number)"))
}

/// What a request asks for: one bound at most.
fn bound_of(b: &Bounds) -> Result<Option<(&'static str, u64)>, String> {
    let given: Vec<(&'static str, &String)> = [
        ("before", b.before.as_ref()),
        ("after", b.after.as_ref()),
        ("around", b.around.as_ref()),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|v| (n, v)))
    .collect();
    match given.as_slice() {
        [] => Ok(None),
        [(name, text)] => Ok(Some((name, seq_of(name, text)?))),
        _ => Err("give one of `before`, `after` and `around`, not several".to_owned()),
    }
}

/// The intent-mismatch window the observer uses, when the charter declares the detector.
fn intent_window(charter: &CompiledCharter) -> Option<time::Duration> {
    charter
        .observer
        .detectors
        .iter()
        .filter(|d| d.kind == warden_charter::DetectorKind::IntentMismatch)
        .map(|d| d.window.unwrap_or(std::time::Duration::from_secs(300)))
        .max()
        .and_then(|w| time::Duration::try_from(w).ok())
}

/// The rows of `records` (one session's, oldest first), their attempts matched to the
/// session's intents over the page and the [`LOOKBACK`] records of the session before it.
async fn rows_of(
    state: &ConsoleState,
    ledger: &LedgerReader,
    session: &str,
    records: &[Record],
) -> Result<Vec<Row>, warden_audit::LedgerError> {
    // The charter of the session's agent in force now, if it still has one.
    let charter = state
        .operator
        .sessions
        .get(session)
        .and_then(|s| state.operator.charter.agent(&s.agent));
    let charter = charter.as_deref();
    let Some(first) = records.first().map(|r| r.seq) else {
        return Ok(Vec::new());
    };
    let mut earlier = ledger
        .session_kinds_before(
            session,
            &["model_intent", "action_attempted", "model_requested"],
            first,
            LOOKBACK,
            LOOKBACK,
        )
        .await?;
    earlier.reverse();
    let matched = rows::intents(
        earlier.iter().chain(records.iter()),
        charter.and_then(intent_window),
    );
    let on_page: HashSet<u64> = records.iter().map(|r| r.seq).collect();
    let on_page = |seq: u64| on_page.contains(&seq);
    Ok(records
        .iter()
        .map(|r| rows::row(r, charter, matched.get(&r.seq).copied(), &on_page))
        .collect())
}

/// Whether a session is known: held by the gateway, or with records in the ledger.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES
}

async fn timeline(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    Query(bounds): Query<Bounds>,
) -> Response {
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    let layout = signed.layout(TAB);
    let bound = match bound_of(&bounds) {
        Ok(b) => b,
        Err(message) => return bad_request(layout, &message),
    };
    let chain = match instances::chain_of(&state, bounds.instance.as_deref()).await {
        Ok(c) => c,
        Err(e) => return chain_refused(layout, e),
    };
    let held = state.operator.sessions.get(&id);
    let count = if valid_id(&id) {
        match chain.reader.session_count(&id).await {
            Ok(n) => n,
            Err(_) => return ledger_unavailable(layout),
        }
    } else {
        0
    };
    let elsewhere = instances::elsewhere(&state, &id, bounds.instance.as_deref()).await;
    if held.is_none() && count == 0 && elsewhere.is_empty() {
        return error_page(
            layout,
            StatusCode::NOT_FOUND,
            format!("there is no session `{id}` (neither open in the gateway nor in the ledger)"),
        );
    }
    match page_of(&chain.reader, &id, bound).await {
        Ok((records, older, newer)) => {
            let href = format!("/ui/sessions/{}", percent_encode(&id));
            let mut rows = match rows_of(&state, &chain.reader, &id, &records).await {
                Ok(rows) => rows,
                Err(_) => return ledger_unavailable(layout),
            };
            instances::qualify(&mut rows, &chain.query);
            let first_seq = records.first().map(|r| r.seq);
            let last_seq = records.last().map(|r| r.seq);
            let q = &chain.query;
            let paging = Paging {
                first: format!("{href}?after=0{q}"),
                prev: first_seq
                    .filter(|_| older)
                    .map(|s| format!("{href}?before={s}{q}")),
                next: last_seq
                    .filter(|_| newer)
                    .map(|s| format!("{href}?after={s}{q}")),
                last: format!("{href}?before={}{q}", chain.head.saturating_add(1)),
            };
            let live = (!newer).then(|| {
                let after = last_seq.or(bound.map(|(_, s)| s)).unwrap_or(0);
                let rows_href = match q.strip_prefix('&') {
                    Some(q) => format!("{href}/rows?{q}"),
                    None => format!("{href}/rows"),
                };
                (rows_href, after)
            });
            let now = state.operator.clock.now();
            let about = held.map(|s| {
                let info = s.info(now);
                SessionLine {
                    href: percent_encode(&info.id),
                    task: clip(&info.task, TASK_CHARS * 4),
                    state: info.status.to_owned(),
                    id: info.id,
                    agent: info.agent,
                    principal: info.principal,
                    opened: info.opened_at,
                    records: Some(count),
                    chain: hops(&info.chain),
                }
            });
            render(&TimelinePage {
                layout,
                session_q: percent_encode(&id),
                session: id,
                about,
                count,
                rows,
                paging,
                live,
                shown: bounds.instance.clone().filter(|i| !i.is_empty()),
                elsewhere,
            })
        }
        Err(_) => ledger_unavailable(layout),
    }
}

/// The page for a chain that cannot be read.
fn chain_refused(layout: Layout, e: instances::ChainError) -> Response {
    match e {
        instances::ChainError::Unknown(why) => error_page(layout, StatusCode::NOT_FOUND, why),
        instances::ChainError::Unavailable => ledger_unavailable(layout),
    }
}

/// The records of a page, and whether the session has records before and after it.
async fn page_of(
    ledger: &LedgerReader,
    id: &str,
    bound: Option<(&'static str, u64)>,
) -> Result<(Vec<Record>, bool, bool), warden_audit::LedgerError> {
    let records = match bound {
        None => ledger.session_page(id, PageBound::After(0), PAGE).await?,
        Some(("after", s)) => ledger.session_page(id, PageBound::After(s), PAGE).await?,
        Some(("around", s)) => {
            let half = PAGE / 2;
            let mut r = ledger
                .session_page(id, PageBound::Before(s.saturating_add(1)), half)
                .await?;
            r.extend(ledger.session_page(id, PageBound::After(s), half).await?);
            r
        }
        Some((_, s)) => ledger.session_page(id, PageBound::Before(s), PAGE).await?,
    };
    let older = match records.first() {
        Some(r) => !ledger
            .session_page(id, PageBound::Before(r.seq), 1)
            .await?
            .is_empty(),
        None => false,
    };
    let newer = match records.last() {
        Some(r) => !ledger
            .session_page(id, PageBound::After(r.seq), 1)
            .await?
            .is_empty(),
        // An empty page after a bound: anything later is newer.
        None => match bound {
            Some(("before", s)) => !ledger
                .session_page(id, PageBound::After(s.saturating_sub(1)), 1)
                .await?
                .is_empty(),
            _ => false,
        },
    };
    Ok((records, older, newer))
}

/// `?instance=` of a record page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OfInstance {
    instance: Option<String>,
}

/// `after` of a live append.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct After {
    after: Option<String>,
    /// Another instance's chain.
    instance: Option<String>,
}

async fn more_rows(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<After>,
) -> Response {
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    let layout = signed.layout(TAB);
    let after = match q.after.as_deref().map(|t| seq_of("after", t)) {
        Some(Ok(s)) => s,
        Some(Err(message)) => return bad_request(layout, &message),
        None => return bad_request(layout, "`after` is required"),
    };
    if !valid_id(&id) {
        return error_page(layout, StatusCode::NOT_FOUND, "no such session");
    }
    let chain = match instances::chain_of(&state, q.instance.as_deref()).await {
        Ok(c) => c,
        Err(e) => return chain_refused(layout, e),
    };
    let records = match chain
        .reader
        .session_page(&id, PageBound::After(after), PAGE)
        .await
    {
        Ok(r) => r,
        Err(_) => return ledger_unavailable(layout),
    };
    let last = records.last().map_or(after, |r| r.seq);
    let mut rows = match rows_of(&state, &chain.reader, &id, &records).await {
        Ok(rows) => rows,
        Err(_) => return ledger_unavailable(layout),
    };
    instances::qualify(&mut rows, &chain.query);
    let mut response = render_with(StatusCode::OK, &RowsFragment { rows });
    if let Ok(v) = HeaderValue::from_str(&last.to_string()) {
        response.headers_mut().insert("x-warden-last-seq", v);
    }
    response
}

async fn record(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(seq): Path<String>,
    Query(q): Query<OfInstance>,
) -> Response {
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    let layout = signed.layout(TAB);
    let seq = match seq_of("seq", &seq) {
        Ok(s) => s,
        Err(message) => return bad_request(layout, &message),
    };
    let chain = match instances::chain_of(&state, q.instance.as_deref()).await {
        Ok(c) => c,
        Err(e) => return chain_refused(layout, e),
    };
    let record = match chain.reader.get(seq).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error_page(
                layout,
                StatusCode::NOT_FOUND,
                format!("the ledger has no record {seq}"),
            );
        }
        Err(_) => return ledger_unavailable(layout),
    };
    match &record.session {
        Some(session) => Redirect::to(&format!(
            "/ui/sessions/{}?around={seq}{}#seq-{seq}",
            percent_encode(session),
            chain.query
        ))
        .into_response(),
        None => {
            // A record of no session belongs to no agent: its rule ids are shown as recorded.
            let mut rows = vec![rows::row(&record, None, None::<IntentMatch>, &|s: u64| {
                s == record.seq
            })];
            instances::qualify(&mut rows, &chain.query);
            render(&RecordPage { layout, rows })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
