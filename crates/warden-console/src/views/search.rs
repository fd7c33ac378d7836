//! Search (`GET /ui/search?q=&session=`): full-text search over what the ledger captured
//! (prompts, completions, intents, attempted actions, approval requests), through the derived
//! index `search.db` ([`warden_audit::SearchIndex`]).
//!
//! What it guarantees:
//! - Each search opens the index on a blocking thread, brings it up to date with the ledger
//!   (`update`) and searches (at most [`MAX_HITS`] hits, newest first); nothing runs on the
//!   async runtime's threads. At most [`MAX_RUNNING`] searches run at once; more are told to
//!   try again (`503`).
//! - The query is taken literally as a phrase (never FTS syntax). An empty query shows the
//!   form; a query over [`MAX_QUERY_BYTES`] or a session id over [`MAX_SESSION_BYTES`] is a
//!   `400` page saying so.
//! - **Snippets are text**, escaped like every value (the index's `[` `]` marks around the
//!   matched words are shown as emphasis by splitting the text, never by rendering HTML).
//! - Each hit links its record (`/ui/records/N`) and its session's timeline.
//! - Admins only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use warden_audit::{Hit, SearchIndex};
use warden_core::text::percent_encode;

use crate::ConsoleState;
use crate::auth::Signed;
use crate::page::{Layout, render_with};

/// The longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 512;
/// The longest session id a search is narrowed to, in bytes.
pub const MAX_SESSION_BYTES: usize = 128;
/// The most hits shown.
pub const MAX_HITS: u64 = 100;
/// The most searches running at once.
pub const MAX_RUNNING: usize = 2;

static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// A piece of a snippet: matched words or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The text.
    pub text: String,
    /// Whether it is what matched.
    pub matched: bool,
}

/// One hit as shown.
#[derive(Debug, Clone)]
pub struct HitLine {
    /// The record.
    pub seq: u64,
    /// Its time.
    pub time: String,
    /// Its session, and the session percent-encoded for the link.
    pub session: Option<(String, String)>,
    /// Its kind.
    pub kind: String,
    /// The snippet, in pieces.
    pub snippet: Vec<Piece>,
}

/// `GET /ui/search`.
#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    /// The layout.
    pub layout: Layout,
    /// The query as typed (bounded).
    pub q: String,
    /// The session it is narrowed to, as typed (bounded).
    pub session: String,
    /// The hits, when a search ran.
    pub hits: Option<Vec<HitLine>>,
    /// Why no search ran, when one was asked for.
    pub problem: Option<String>,
}

/// The search's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
    session: Option<String>,
}

const TAB: &str = "search";

/// The view's routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new().route("/ui/search", get(search))
}

/// An FTS snippet (`[` and `]` around matches) cut into pieces; brackets that do not pair
/// stay text.
pub fn pieces(snippet: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = snippet;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest.get(open..).and_then(|r| r.find(']')) else {
            break;
        };
        let (before, from_open) = rest.split_at(open);
        let inner = from_open.get(1..close).unwrap_or("");
        if !before.is_empty() {
            out.push(Piece {
                text: before.to_owned(),
                matched: false,
            });
        }
        out.push(Piece {
            text: inner.to_owned(),
            matched: true,
        });
        rest = from_open.get(close.saturating_add(1)..).unwrap_or("");
    }
    if !rest.is_empty() {
        out.push(Piece {
            text: rest.to_owned(),
            matched: false,
        });
    }
    out
}

fn line(hit: Hit) -> HitLine {
    HitLine {
        seq: hit.seq,
        time: hit.time,
        session: hit.session.map(|s| {
            let href = percent_encode(&s);
            (s, href)
        }),
        kind: hit.kind,
        snippet: pieces(&hit.snippet),
    }
}

/// Releases a search slot however the search ends.
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

fn take_slot() -> Option<Slot> {
    RUNNING
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_RUNNING).then_some(n.saturating_add(1))
        })
        .ok()
        .map(|_| Slot)
}

async fn search(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Query(query): Query<SearchQuery>,
) -> Response {
    if let Err(refused) = signed.require_admin(TAB) {
        return refused;
    }
    let asked = query.q.is_some();
    let q = query.q.unwrap_or_default();
    let session = query.session.unwrap_or_default();
    let shown = |s: &str, max: usize| warden_core::text::prefix_within(s, max).to_owned();
    let mut page = SearchPage {
        layout: signed.layout(TAB),
        q: shown(&q, MAX_QUERY_BYTES),
        session: shown(&session, MAX_SESSION_BYTES),
        hits: None,
        problem: None,
    };
    let fail = |mut page: SearchPage, status: StatusCode, problem: String| {
        page.problem = Some(problem);
        render_with(status, &page)
    };
    if q.len() > MAX_QUERY_BYTES {
        return fail(
            page,
            StatusCode::BAD_REQUEST,
            format!("the query is longer than {MAX_QUERY_BYTES} bytes; shorten it"),
        );
    }
    if session.len() > MAX_SESSION_BYTES {
        return fail(
            page,
            StatusCode::BAD_REQUEST,
            format!("a session id is at most {MAX_SESSION_BYTES} bytes"),
        );
    }
    if q.trim().is_empty() {
        if asked {
            page.problem = Some("type some words to search for".to_owned());
        }
        return render_with(StatusCode::OK, &page);
    }
    let Some(slot) = take_slot() else {
        return fail(
            page,
            StatusCode::SERVICE_UNAVAILABLE,
            "other searches are running; try again in a moment".to_owned(),
        );
    };
    let dir = state.data_dir.clone();
    let text = q.clone();
    let narrowed = Some(session.trim().to_owned()).filter(|s| !s.is_empty());
    let ran = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut index = SearchIndex::open(&dir)?;
        index.update()?;
        index.search(&text, narrowed.as_deref(), MAX_HITS)
    })
    .await;
    match ran {
        Ok(Ok(hits)) => {
            page.hits = Some(hits.into_iter().map(line).collect());
            render_with(StatusCode::OK, &page)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "A console search failed.");
            fail(
                page,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the search failed: {e}"),
            )
        }
        Err(_) => fail(
            page,
            StatusCode::INTERNAL_SERVER_ERROR,
            "the search stopped unexpectedly".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_split_at_the_match_marks_and_stay_text() {
        let p = pieces("a [b] <script>[c]");
        let text: Vec<(&str, bool)> = p.iter().map(|p| (p.text.as_str(), p.matched)).collect();
        assert_eq!(
            text,
            vec![
                ("a ", false),
                ("b", true),
                (" <script>", false),
                ("c", true)
            ]
        );
        let odd = pieces("x [y");
        assert_eq!(odd.len(), 1);
        assert_eq!(odd.first().map(|p| p.text.as_str()), Some("x [y"));
        assert!(pieces("").is_empty());
    }
}
